#include "ringtrain/comm/heartbeat.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

namespace {
using Clock = std::chrono::steady_clock;
constexpr int kBeat = 1, kGoodbye = 2;

// Where a rank runs, so that a silent one on this node can be looked at.
struct Whereabouts {
  char host[256] = {};
  int pid = 0;
  double timeout_s = 0.0;
};

// The state letter of process `pid` in /proc (R, S, D, T stopped, t traced, Z zombie...), or 0 when there is no
// such process.
char process_state(int pid) {
  std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
  if (!f) return 0;
  char text[512] = {};
  const size_t n = std::fread(text, 1, sizeof text - 1, f);
  std::fclose(f);
  const char* name_end = std::strrchr(text, ')');  // the command name may hold spaces and parentheses
  return n > 0 && name_end && name_end[1] == ' ' ? name_end[2] : 0;
}

std::string format_seconds(double s) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", s);
  return text;
}

}  // namespace

Heartbeat::Heartbeat(MPI_Comm world, double timeout_s) : timeout_s_(timeout_s), comm_(world) {
  MPI_Comm_rank(comm_.get(), &rank_);
  MPI_Comm_size(comm_.get(), &size_);
  if (size_ < 2) return;
  Whereabouts mine;
  ::gethostname(mine.host, sizeof mine.host - 1);
  mine.pid = static_cast<int>(::getpid());
  mine.timeout_s = timeout_s_;
  std::vector<Whereabouts> all(static_cast<size_t>(size_));
  MPI_Allgather(&mine, sizeof mine, MPI_BYTE, all.data(), sizeof mine, MPI_BYTE, comm_.get());
  // A rank without a heartbeat would look dead to its neighbour: every rank must watch alike.
  for (const Whereabouts& theirs : all)
    if (theirs.timeout_s != timeout_s_)
      throw CollectiveError("ranks disagree on --peer-timeout-s: " + format_seconds(all[0].timeout_s) + " and " +
                            format_seconds(theirs.timeout_s));
  if (timeout_s_ <= 0.0) return;
  const Whereabouts& previous = all[static_cast<size_t>((rank_ + size_ - 1) % size_)];
  if (std::strcmp(previous.host, mine.host) == 0) previous_pid_here_ = previous.pid;
  // A node that dropped off the network takes all its ranks: the error names the node and them.
  std::string node_ranks;
  for (int r = 0; r < size_; ++r)
    if (std::strcmp(all[static_cast<size_t>(r)].host, previous.host) == 0)
      node_ranks += (node_ranks.empty() ? "" : ",") + std::to_string(r);
  previous_node_ = std::string(previous.host) + " (ranks " + node_ranks + ")";
  thread_ = std::thread([this] { run(); });
}

std::string Heartbeat::why_silent(int previous, double silent) const {
  // A rank of another node is named with the node: when the node dropped off the network, all its ranks did.
  const std::string where = previous_pid_here_ == 0 ? " on node " + previous_node_ : "";
  const std::string head = "rank " + std::to_string(previous) + where + " has sent no heartbeat for " +
                           std::to_string(std::lround(silent)) + " s: ";
  const std::string tail = "; rank " + std::to_string(rank_) + " stops the job (--peer-timeout-s " +
                           format_seconds(timeout_s_) +
                           "; 0 turns the heartbeat off, as a debugger session needs)";
  if (previous_pid_here_ == 0) return head + "dead, stopped or its node unreachable" + tail;
  // On this node its process can be looked at: gone, stopped, or there but starved.
  const std::string pid = " (pid " + std::to_string(previous_pid_here_) + " on this node)";
  switch (process_state(previous_pid_here_)) {
    case 0:
    case 'Z':
    case 'X': return head + "it died" + pid + tail;
    case 'T': return head + "it is stopped" + pid + ", by SIGSTOP or Ctrl-Z" + tail;
    case 't': return head + "it is stopped in a debugger" + pid + tail;
    default: return head + "it runs but its heartbeat thread does not" + pid + " (an overloaded node?)" + tail;
  }
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
      std::fprintf(stderr, "ringtrain: error: %s\n", why_silent(previous, silent).c_str());
      std::fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    std::unique_lock lock(mu_);
    woken_.wait_for(lock, said_goodbye ? std::chrono::duration<double>(poll_leaving) : poll,
                    [&] { return leaving_ && !said_goodbye; });
  }
}

}  // namespace ringtrain
