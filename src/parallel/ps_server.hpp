// One parameter server (parameter_server.hpp): owns a shard of the flat parameter vector and the optimizer
// state for it, and serves the workers from a progress thread of its own, so that it answers pulls (for
// evaluation or saving) while its training thread takes part in the job's collectives.
#pragma once
#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "ringtrain/comm/communicator.hpp"
#include "ringtrain/comm/timeline.hpp"
#include "ringtrain/nn/model.hpp"
#include "ringtrain/nn/optimizer.hpp"
#include "ringtrain/parallel/parameter_server.hpp"
#include "ps_protocol.hpp"

namespace ringtrain::ps {

class Server {
 public:
  // comm: the mode's communicator, workers 0..workers-1 and this server among the ranks after them.
  // updates_per_epoch: pushes (over all workers) that make one epoch. resume: a checkpoint's optimizer
  // state and position (every worker is taken to have pushed resume.step steps). clip_grad_norm: see
  // parameter_server.hpp; `servers`: the servers' own communicator, which the progress thread alone uses (for
  // the norm of a round), null with one server. Starts the progress thread.
  Server(std::unique_ptr<Communicator> comm, Model& model, const PsConfig& config, const OptimizerConfig& optimizer,
         float clip_grad_norm, std::unique_ptr<Communicator> servers, int workers, int index,
         int64_t updates_per_epoch, const ResumePoint& resume, Timeline* timeline);
  ~Server();  // joins the thread (it ends once every worker has said goodbye)
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Blocks until every worker has ended `epoch` (true), or until the job stops early and every worker has
  // said goodbye (false); rethrows the progress thread's error. A stop request (stop_request.hpp) made
  // meanwhile halts the job.
  bool wait_epoch_end(int64_t epoch);
  // Stops the job early: once every worker has reached the step the furthest one has pushed, pulls are
  // answered kHalted.
  void halt() { halting_ = true; }
  // Whether a worker's goodbye said the job ends with an error (after wait_epoch_end returned false).
  bool failed() const { return failed_; }
  PsStats take_stats();

 private:
  struct Pull {
    int worker;
    Header header;
  };
  void serve();
  void handle(int worker, int tag, const float* message);
  void apply(int worker, const Header& header, const float* gradient);
  // The optimizer's step over the shard, its gradient scaled by clip_factor(sum_squares) first when clipping.
  void step(double lr, double sum_squares);
  // Staleness 0 with more than one server: a round's norm sums every server's shard, over servers_.
  void start_round_norm(double lr);
  void finish_round_norm();
  double shard_sum_squares() const;  // of the shard's gradient (0 when not clipping)
  void begin_halt();
  void answer_pulls();
  bool answer(const Pull& pull);  // false: it must wait (staleness bound)
  void reply(int worker, const Header& header, bool with_parameters);
  void send_state(int worker);  // after a snapshot reply
  void check_for_silent_workers();

  std::unique_ptr<Communicator> comm_;
  PsConfig config_;
  int workers_, index_;
  int64_t begin_ = 0, end_ = 0;  // this shard of the flat parameter vector
  int64_t updates_per_epoch_;
  Timeline* timeline_;
  std::vector<Param> shard_;  // each model parameter's slice that falls in this shard
  std::vector<size_t> shard_param_;     // which model parameter each slice is of
  std::vector<int64_t> shard_offset_;   // and where in it the slice starts
  std::vector<Param*> shard_ptrs_;
  std::unique_ptr<Optimizer> optimizer_;
  int round_pushes_ = 0;  // staleness 0: pushes of the current round summed so far
  float clip_grad_norm_;  // 0: off
  std::unique_ptr<Communicator> servers_;
  // A round whose step waits for the servers' sum of squares (progress thread only); pulls wait for it.
  std::unique_ptr<Transfer> round_norm_;
  double round_sum_squares_ = 0.0, round_lr_ = 0.0;
  std::atomic<bool> failed_{false};

  // Progress thread only.
  std::vector<std::vector<float>> inbox_, outbox_;  // per worker
  std::vector<std::unique_ptr<Transfer>> receiving_, replying_;
  std::vector<Pull> waiting_;
  std::vector<int64_t> pushes_;      // per worker
  std::vector<int64_t> ended_;       // per worker: epochs ended
  std::vector<Timeline::Clock::time_point> heard_;  // per worker: its last message
  std::vector<float> state_out_;     // a snapshot's optimizer state (one at a time: worker 0 waits for it)
  std::unique_ptr<Transfer> sending_state_;
  int goodbyes_ = 0;
  int64_t halt_round_ = -1;           // halting: pulls for this step and later are answered kHalted

  mutable std::mutex mu_;  // guards what the training thread reads
  std::condition_variable epoch_ended_;
  std::map<int64_t, int> ended_count_;  // epoch -> workers that ended it
  PsStats stats_;
  Timeline::Clock::time_point stats_since_ = Timeline::Clock::now();
  std::exception_ptr error_;
  bool finished_ = false;             // every worker has said goodbye
  std::atomic<bool> halting_{false};  // the job stops early
  std::atomic<bool> abandon_{false};  // the training thread is leaving on an error
  std::thread thread_;
};

}  // namespace ringtrain::ps
