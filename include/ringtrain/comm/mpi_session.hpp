// RAII for MPI_Init_thread / MPI_Finalize. Every ringtrain job is an MPI job: started without a launcher
// it is a one-rank world (MPI singleton), under mpirun or srun it is one rank of many.
#pragma once

namespace ringtrain {

class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  // Ends every rank of the job with this exit code: the way out for an error on one rank while others
  // may be waiting in a collective.
  [[noreturn]] void abort(int code) const;

 private:
  int rank_ = 0, size_ = 1;
};

}  // namespace ringtrain
