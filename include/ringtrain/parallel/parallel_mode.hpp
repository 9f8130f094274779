// How ranks share one training job. A mode owns the step: the trainer hands it this rank's batch and the
// learning rate, and the mode does forward, backward, whatever exchange between ranks it needs, and the
// update. Synchronous data parallel (data_parallel.hpp), pipeline model parallel with its data-parallel
// hybrid (pipeline_parallel.hpp), and asynchronous parameter servers (parameter_server.hpp).
//
// The trainer drives an epoch the same way in every mode:
//   reads_data():  while (begin_step()) { batch = next batch; train_step(batch, lr); }  end_epoch();
//   otherwise:     serve_epoch();   (a parameter server)
// then the collectives every rank takes part in: sum_over_ranks, sync_buffers, evaluate.
#pragma once
#include <iosfwd>
#include <memory>
#include <string>

#include "ringtrain/comm/allreduce_engine.hpp"
#include "ringtrain/comm/communicator.hpp"
#include "ringtrain/comm/timeline.hpp"
#include "ringtrain/data/loader.hpp"
#include "ringtrain/nn/loss.hpp"
#include "ringtrain/nn/model.hpp"
#include "ringtrain/nn/optimizer.hpp"
#include "ringtrain/parallel/pipeline_schedule.hpp"

namespace ringtrain {

struct PsConfig {
  int servers = 1;         // K: the last K ranks serve, the others work
  int staleness = 0;       // S: a worker runs at most S steps ahead of the slowest (0: synchronous)
  double timeout_s = 30.0; // a worker or server silent this long while others wait for it stops the job
};

struct ParallelConfig {
  std::string mode = "sync";  // sync: gradients averaged every step | ps: parameter servers
  EngineConfig engine;
  PipelineConfig pipeline;    // sync with more than one stage or micro-batch: the pipeline (and hybrid) mode
  PsConfig ps;
  // A NaN or infinite gradient (after averaging) stops the job naming the step and the parameter; with
  // this, the step's update is skipped instead and counted.
  bool skip_nonfinite = false;
};

// Where a resumed run picks up (a checkpoint's): the optimizer's state for the whole model, the steps
// taken and the epochs finished. No optimizer: a fresh start.
struct ResumePoint {
  const OptimizerState* optimizer = nullptr;
  int64_t step = 0, epoch = 0;
};

// Which share of the data a rank reads: the model's replicas split the global batch between them (the
// loader's rank and world); the ranks of one replica (pipeline stages) read the same batches. Parameter
// servers read none (they are given worker 0's share, to count its steps).
struct DataShare {
  int replica = 0, replicas = 1;
};
DataShare data_share(const ParallelConfig& config, int rank, int world);

class ParallelMode {
 public:
  virtual ~ParallelMode() = default;
  // One optimisation step on this rank's share of the global batch (on the model's device). The score goes
  // to the loss's running score (Loss::take_score).
  virtual void train_step(const Batch& batch, float lr) = 0;
  // The epoch protocol above. Defaults: every rank trains, in lockstep, one pass over its data an epoch.
  virtual bool reads_data() const { return true; }
  virtual bool begin_step() { return true; }  // false: the epoch is over before this step
  virtual void end_epoch() {}
  virtual void serve_epoch() {}
  // false: the epoch ends when begin_step says so, and a rank's data runs on into its next pass.
  virtual bool epoch_ends_with_data() const { return true; }
  // false: ranks are at different steps, so per-step collectives (progress lines) are not possible.
  virtual bool steps_in_lockstep() const { return true; }
  // Collective over the ranks that read the same batches: scores every batch `loader` gives, in evaluation
  // mode. Returns this rank's part (zero on ranks that compute no loss); the loss's score must be empty.
  virtual Score evaluate(BatchLoader& loader) = 0;
  // Collective: the sum of every rank's score.
  virtual Score sum_over_ranks(const Score& mine) = 0;
  // Collective, before evaluating or saving: makes non-trained state (BatchNorm statistics) agree.
  virtual void sync_buffers() = 0;
  // Collective, before rank 0 saves: rank 0's model then holds every layer's trained parameters and buffers.
  virtual void gather_model() = 0;

  // Before each step: whether the job stops here. `requested`: this rank was asked to (stop_request.hpp).
  // Any rank's request stops every rank at the same step boundary: lockstep modes agree by a collective,
  // parameter servers relay it. Once true, it stays true.
  virtual bool agree_to_stop(bool requested) = 0;
  // Collective at a step boundary, before rank 0 writes a checkpoint: what gather_model does, and on rank 0
  // `optimizer` (zero_optimizer_state for the whole model) filled with the optimizer's state. Parameter
  // servers: worker 0 (rank 0) gets it from the servers; the other ranks take no part.
  virtual void gather_state(OptimizerState& optimizer) = 0;
  // Steps whose update was skipped for a non-finite gradient (ParallelConfig::skip_nonfinite) so far.
  int64_t skipped_steps() const { return skipped_; }

 protected:
  // Who reaches a verdict on a step's gradients: every rank alike (they hold the same gradients, or agreed),
  // or this rank alone (a parameter-server worker, on its own gradient).
  enum class Verdict { every_rank, this_rank };
  // After a step's gradients are final (averaged): false to apply the update. When `bad_param` is not ""
  // (Model::nonfinite_gradient) and not skipping, throws the error naming the parameter and `step`: a
  // CollectiveError when every rank throws it, else an Error (this rank then ends the job).
  bool update_allowed(const std::string& bad_param, int64_t step, bool skip_nonfinite, Verdict verdict);

  int64_t skipped_ = 0;
};

// Scores every batch `loader` gives, in evaluation mode, on the model's device (the whole model, one rank).
// The loss's running score must be empty (take_score) when called.
Score score_batches(Model& model, Loss& loss, BatchLoader& loader);
// Collective: the sum of every rank's score.
Score sum_scores(Communicator& comm, const Score& mine);
// Collective: root's tensor into every rank's / every rank's tensor replaced by the mean over the ranks.
// A GPU tensor travels through host memory when `comm` moves host buffers (setup and evaluation only).
void broadcast_tensor(Communicator& comm, Tensor& tensor, int root);
void average_tensor(Communicator& comm, Tensor& tensor);

// What a mode is made of. `model` is on the host; the mode moves what this rank runs of it to `device`
// (loss and optimizer are made for that device; parameter servers make their own from optimizer_config).
struct ModeParts {
  Model& model;
  Device device;
  Loss& loss;
  Optimizer& optimizer;
  const OptimizerConfig& optimizer_config;
  int64_t steps_per_epoch;  // of a rank's data share
  Timeline* timeline;
  std::ostream& warnings;   // stall warnings
  ResumePoint resume;       // the model itself is loaded already
};

// Collective. world: every rank of the job; the mode takes communicators of its own from it. Throws Error
// for an unknown mode or a layout that cannot run.
std::unique_ptr<ParallelMode> make_parallel_mode(const ParallelConfig& config, Communicator& world,
                                                 const ModeParts& parts);

}  // namespace ringtrain
