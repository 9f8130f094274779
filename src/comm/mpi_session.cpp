#include "ringtrain/comm/mpi_session.hpp"

#include <mpi.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

namespace {

MpiThreadLevel thread_level_of(int provided) {
  if (provided >= MPI_THREAD_MULTIPLE) return MpiThreadLevel::multiple;
  if (provided >= MPI_THREAD_SERIALIZED) return MpiThreadLevel::serialized;
  return provided >= MPI_THREAD_FUNNELED ? MpiThreadLevel::funneled : MpiThreadLevel::single;
}

}  // namespace

MpiSession::MpiSession(int* argc, char*** argv, bool require_thread_multiple) {
  // The communicator's background thread and the training thread both call MPI.
  int provided = 0;
  // Started alone (no mpirun or srun), Open MPI 4 forks an orted daemon for the one process: half a second
  // of every single-process run (a debug run, each CLI test) spent on a helper for spawning, which ringtrain
  // never does. Other MPIs ignore the variable; a user's own setting wins.
  ::setenv("OMPI_MCA_ess_singleton_isolated", "1", 0);
  if (MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS)
    throw Error("MPI_Init_thread failed");
  thread_level_ = thread_level_of(provided);
  if (require_thread_multiple && thread_level_ != MpiThreadLevel::multiple) {
    MPI_Finalize();
    throw Error("this MPI library does not provide MPI_THREAD_MULTIPLE, which the allreduce engine's thread needs");
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
}

namespace {

struct MpiThreads {
  std::mutex mu;
  std::condition_variable released;
  int held = 0;
};

MpiThreads& mpi_threads() {
  static MpiThreads threads;  // never destroyed before a guard: guards live within main
  return threads;
}

}  // namespace

MpiThreadGuard::MpiThreadGuard() {
  std::lock_guard lock(mpi_threads().mu);
  ++mpi_threads().held;
}

MpiThreadGuard::~MpiThreadGuard() {
  MpiThreads& t = mpi_threads();
  std::lock_guard lock(t.mu);
  if (--t.held == 0) t.released.notify_all();
}

MpiSession::~MpiSession() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  MpiThreads& t = mpi_threads();
  std::unique_lock lock(t.mu);
  if (!t.released.wait_for(lock, std::chrono::seconds(10), [&] { return t.held == 0; })) {
    std::fprintf(stderr, "ringtrain: error: rank %d: a communication thread did not finish; ending the job\n", rank_);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  lock.unlock();
  MPI_Finalize();
}

void MpiSession::abort(int code) const {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

}  // namespace ringtrain
