// RAII for MPI_Init_thread / MPI_Finalize. Every ringtrain job is an MPI job: started without a launcher
// it is a one-rank world (MPI singleton), under mpirun or srun it is one rank of many.
#pragma once

#include "ringtrain/tensor/enum_names.hpp"

namespace ringtrain {

// How far MPI lets threads call it, lowest first as MPI orders its levels (MPI_THREAD_SINGLE ...).
enum class MpiThreadLevel { single, funneled, serialized, multiple };
inline constexpr EnumNames<MpiThreadLevel, 4> kMpiThreadLevelNames{
    {{MpiThreadLevel::single, "MPI_THREAD_SINGLE"},
     {MpiThreadLevel::funneled, "MPI_THREAD_FUNNELED"},
     {MpiThreadLevel::serialized, "MPI_THREAD_SERIALIZED"},
     {MpiThreadLevel::multiple, "MPI_THREAD_MULTIPLE"}}};
constexpr const auto& enum_names(MpiThreadLevel) { return kMpiThreadLevelNames; }

// Held by whatever may call MPI from a thread of its own (the allreduce engine's state, which its thread
// owns once detached on an error path): MPI_Finalize waits until none is held, since a thread that calls
// MPI after it crashes the process. Thread-safe.
class MpiThreadGuard {
 public:
  MpiThreadGuard();
  ~MpiThreadGuard();
  MpiThreadGuard(const MpiThreadGuard&) = delete;
  MpiThreadGuard& operator=(const MpiThreadGuard&) = delete;
};

class MpiSession {
 public:
  // Asks for MPI_THREAD_MULTIPLE and throws Error when the library provides less, unless
  // `require_thread_multiple` is false: `ringtrain doctor` reports the level instead of refusing it.
  MpiSession(int* argc, char*** argv, bool require_thread_multiple = true);
  // Finalizes MPI once no MpiThreadGuard is held; one still held after 10 s (a thread stuck in a collective
  // with a rank that is gone) ends the job by MPI_Abort instead.
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  MpiThreadLevel thread_level() const { return thread_level_; }
  // Ends every rank of the job with this exit code: the way out for an error on one rank while others
  // may be waiting in a collective.
  [[noreturn]] void abort(int code) const;

 private:
  int rank_ = 0, size_ = 1;
  MpiThreadLevel thread_level_ = MpiThreadLevel::single;
};

}  // namespace ringtrain
