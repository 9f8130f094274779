#include "ringtrain/comm/heartbeat.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>

namespace ringtrain {

namespace {
using Clock = std::chrono::steady_clock;
constexpr int kBeat = 1, kGoodbye = 2;
}  // namespace

Heartbeat::Heartbeat(MPI_Comm world, double timeout_s) : timeout_s_(timeout_s), comm_(world) {
  MPI_Comm_rank(comm_.get(), &rank_);
  MPI_Comm_size(comm_.get(), &size_);
  if (size_ > 1 && timeout_s_ > 0.0) thread_ = std::thread([this] { run(); });
}

Heartbeat::~Heartbeat() {
  // Leaving on an error: this rank's error handling ends the job (or every rank raised the same error), and
  // the previous rank may never say goodbye, so wait for nothing.
  {
    std::lock_guard lock(mu_);
    abandon_ = std::uncaught_exceptions() > 0;
    leaving_ = true;
  }
  woken_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Heartbeat::run() {
  const int next = (rank_ + 1) % size_, previous = (rank_ + size_ - 1) % size_;
  const auto period = std::chrono::duration<double>(std::min(1.0, timeout_s_ / 4));
  // Each wake-up enters MPI (MPI_Test) beside the training threads, and on a busy node every entry costs
  // them, so the thread looks in a few times a beat; when leaving it looks often, to be done quickly.
  const auto poll = std::chrono::duration<double>(std::min(0.25, timeout_s_ / 16));
  const auto poll_leaving = std::chrono::milliseconds(5);
  char out = 0, in = 0;
  MPI_Request receiving;
  MPI_Irecv(&in, 1, MPI_CHAR, previous, MPI_ANY_TAG, comm_.get(), &receiving);
  Clock::time_point heard = Clock::now(), beaten = Clock::time_point{}, woke = Clock::now();
  bool said_goodbye = false, previous_gone = false;
  while (!(said_goodbye && previous_gone)) {
    if (abandon_) {
      if (!previous_gone) {  // a receive still posted: withdraw it
        MPI_Cancel(&receiving);
        MPI_Wait(&receiving, MPI_STATUS_IGNORE);
      }
      return;
    }
    const Clock::time_point now = Clock::now();
    // A whole job suspended (SLURM gang scheduling, a debugger) resumes with every clock stale: only silence
    // while this thread was awake counts.
    if (now - woke > std::chrono::duration<double>(timeout_s_ / 2)) heard = now;
    woke = now;
    if (!said_goodbye && (leaving_ || now - beaten >= period)) {
      said_goodbye = leaving_;
      MPI_Request sending;  // one byte goes eagerly; nothing waits on it
      MPI_Isend(&out, 1, MPI_CHAR, next, said_goodbye ? kGoodbye : kBeat, comm_.get(), &sending);
      MPI_Request_free(&sending);
      beaten = now;
    }
    int arrived = 0;
    MPI_Status status;
    while (!previous_gone && (MPI_Test(&receiving, &arrived, &status), arrived)) {
      heard = now;
      if (status.MPI_TAG == kGoodbye) previous_gone = true;
      else MPI_Irecv(&in, 1, MPI_CHAR, previous, MPI_ANY_TAG, comm_.get(), &receiving);
    }
    const double silent = std::chrono::duration<double>(now - heard).count();
    if (!previous_gone && silent > timeout_s_) {
      std::fprintf(stderr,
                   "ringtrain: error: rank %d has sent no heartbeat for %.0f s: it died or its node failed "
                   "(--peer-timeout-s); rank %d stops the job\n",
                   previous, silent, rank_);
      std::fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    std::unique_lock lock(mu_);
    woken_.wait_for(lock, said_goodbye ? std::chrono::duration<double>(poll_leaving) : poll,
                    [&] { return leaving_ && !said_goodbye; });
  }
}

}  // namespace ringtrain
