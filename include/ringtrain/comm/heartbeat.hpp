// Liveness of the ranks, apart from training. A rank killed by SIGKILL, or whose node died, never joins the
// collective the others wait in; MPI itself may wait forever. Each rank's heartbeat thread sends a one-byte
// beat to the next rank of a ring every period and watches the previous rank's: when that rank has been
// silent for `timeout_s`, the thread prints one line naming it and saying what it knows, and aborts the job
// (MPI_Abort), so every survivor stops. A rank on the same node is looked up in /proc: died, stopped by a
// signal or a debugger, or running but starved. One on another node is "dead, stopped or its node
// unreachable", and the line names that node and all its ranks, which a node dropping off the network takes
// with it. The thread runs beside compute and MPI waits, so a busy rank still beats. A rank that finishes
// says goodbye first; the destructor then waits for the previous rank's goodbye, so no message is left
// unreceived.
#pragma once
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include <mpi.h>

#include "ringtrain/comm/mpi_communicator.hpp"

namespace ringtrain {

class Heartbeat {
 public:
  // Collective over `world` (every rank, whatever its timeout: ranks that disagree on it are a
  // CollectiveError). timeout_s <= 0, or a one-rank world: no heartbeat.
  Heartbeat(MPI_Comm world, double timeout_s);
  ~Heartbeat();  // says goodbye and waits for the previous rank's (not when leaving on an exception)
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

 private:
  void run();
  std::string why_silent(int previous, double silent) const;  // the error line for a silent previous rank

  double timeout_s_;
  int previous_pid_here_ = 0;  // the previous rank's process when it runs on this node, else 0
  std::string previous_node_;  // its host, and the ranks there: "node7 (ranks 4,5)"
  MpiComm comm_;
  int rank_ = 0, size_ = 1;
  std::atomic<bool> leaving_{false}, abandon_{false};
  std::mutex mu_;
  std::condition_variable woken_;  // the destructor wakes the thread to say goodbye
  std::thread thread_;
};

}  // namespace ringtrain
