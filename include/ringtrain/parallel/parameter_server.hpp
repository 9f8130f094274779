// Asynchronous parameter servers with bounded staleness (stale-synchronous parallel, Ho et al. 2013).
// The last K ranks are servers: each owns a contiguous shard of the flat parameter vector (all parameters in
// model order) and runs the optimizer for it. The other W ranks are workers: each step a worker pulls the
// parameters from every server, computes the gradient of its batch (its loss scaled by 1/W) and pushes each
// server its shard of it. A server answers a pull for step t only once every worker still in the epoch has
// pushed step t - S - 1 (its staleness bound S); the staleness of that step is how many steps the slowest
// worker is behind. With S = 0 a server sums each round's W gradients and applies them as one step, which
// is synchronous data parallel exactly; with S > 0 it applies every push as it arrives.
//
// An epoch ends when the servers have received an epoch's worth of pushes (W x the steps a worker's share
// of the data makes): fast workers do more of them than slow ones, and a worker's data stream runs on into
// its next pass. Non-blocking MPI throughout; each server serves from a progress thread.
//
// --clip-grad-norm: the servers clip the gradient they apply, by its norm over every server's shard, so all
// servers scale alike. With S = 0 that is the round's sum (the average over the workers, as data parallel
// clips): each server sums its shard's squares and the servers add theirs by one non-blocking scalar
// allreduce among themselves; the round's step waits for it, and so do the pulls. With S > 0 each push is
// an update of its own: its worker measures the whole gradient it pushes and sends the sum of squares in
// the push's header, so the servers agree without a word between them.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "ringtrain/parallel/parallel_mode.hpp"

namespace ringtrain {

namespace ps {
class Server;
}

// What the servers and workers measured over an epoch (summed over the ranks for each epoch's report).
struct PsStats {
  int64_t updates = 0;                   // pushes applied
  std::map<int64_t, int64_t> staleness;  // staleness -> updates
  double busy_s = 0.0, wall_s = 0.0;     // servers: handling messages / all the time
  double pull_s = 0.0, push_s = 0.0;     // workers: blocked on pulls (the bound included) / on pushes
  int64_t pulls = 0, pushes = 0;
};

class ParameterServerMode final : public ParallelMode {
 public:
  // Collective. Workers move the model to parts.device; servers keep their shards on the host and make their
  // optimizers from parts.optimizer_config.
  ParameterServerMode(const ParallelConfig& config, Communicator& world, const ModeParts& parts);
  ~ParameterServerMode() override;  // workers say goodbye; servers wait for every goodbye

  // A worker pulls the parameters first (null once the servers say the epoch's updates are in); its data runs
  // on into its next pass. A server serves the whole epoch and returns null.
  const Batch* next_batch(BatchStream& stream) override;
  void train_step(const Batch& batch, float lr) override;
  bool end_epoch() override;  // a worker tells the servers; false once a server has answered "halted"
  bool steps_in_lockstep() const override { return false; }
  bool takes_steps() const override { return !server_; }
  Score evaluate(BatchLoader& loader) override;
  void sync_buffers() override;
  void gather_model() override;
  bool agree_to_stop(bool requested) override;
  // A worker's non-finite stop (it halted the job as a signal would) is raised here on every rank.
  void end_run() override;
  void gather_state(OptimizerState& optimizer) override;
  // "  parameter servers: ranks 2..3, 2 workers x batch 64, staleness bound 0 (synchronous)"
  std::string description() const override;
  // "  ps: 944 updates, staleness mean ..." and the ps_* columns of the metrics CSV.
  EpochReport epoch_report() override;

 private:
  PsStats take_stats();  // collective: this epoch's figures, summed over servers and workers, then reset
  bool pull(int64_t flags);  // false: a server said the epoch is over, or that the job stops
  void wait_for(Transfer& transfer, int server, const char* what);
  void finish_pushes();  // waits for the last step's pushes (their buffer is reused)
  void request_halt();   // asks the servers to stop every rank at the same step (ps_server.hpp)
  void say_goodbye(int64_t flags);  // a worker is done with the servers (flags: ps::kFailed or 0)
  double pushed_sum_squares() const;  // of the whole gradient in push_wire_

  float clip_grad_norm_ = 0.0f;

  PsConfig config_;
  int64_t batch_ = 0;
  Model& model_;
  Device device_;
  Timeline* timeline_;
  int workers_ = 1;
  std::unique_ptr<Communicator> comm_;     // workers and servers
  std::unique_ptr<Communicator> workers_comm_;  // workers only (BatchNorm statistics); on a server, servers only
  std::unique_ptr<ps::Server> server_;     // on a server rank
  // Worker: messages to and from server k at k x header + begin of its shard (header, then the shard).
  std::vector<float> pull_wire_, push_wire_;
  std::vector<std::unique_ptr<Transfer>> pushing_;  // the last step's pushes, one per server
  std::vector<int64_t> shard_begin_;  // K + 1 boundaries of the flat vector
  std::vector<Param*> params_;
  int64_t step_ = 0, epoch_ = 0, staleness_ = 0;
  bool stopping_ = false;   // a server answered kHalted (or, on a server, every worker left after a halt)
  bool halt_sent_ = false, said_goodbye_ = false;
  // This worker's non-finite stop: workers are at different steps, so the job halts as for a signal and
  // end_run raises it on every rank, rather than one worker ending the job alone (each worker that went bad
  // would print its own line).
  std::string failure_;
  PsStats worker_stats_;
};

}  // namespace ringtrain
