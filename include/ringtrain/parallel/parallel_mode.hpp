// How ranks share one training job. A mode owns the step: the trainer hands it this rank's batch and the
// learning rate, and the mode does forward, backward, whatever exchange between ranks it needs, and the
// update. Synchronous data parallel (data_parallel.hpp), pipeline model parallel with its data-parallel
// hybrid (pipeline_parallel.hpp), and asynchronous parameter servers (parameter_server.hpp).
//
// The trainer drives an epoch the same way in every mode (src/train/trainer.cpp):
//   at each step boundary: agree_to_stop; batch = next_batch(stream); null: the epoch's steps are over;
//                          else train_step(batch, lr)
//   then end_epoch, and the collectives every rank takes part in: sum_over_ranks, sync_buffers, evaluate.
// Where an epoch ends and who reads data is each mode's own protocol, behind next_batch and end_epoch.
#pragma once
#include <iosfwd>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ringtrain/comm/allreduce_engine.hpp"
#include "ringtrain/comm/communicator.hpp"
#include "ringtrain/comm/timeline.hpp"
#include "ringtrain/data/batch_stream.hpp"
#include "ringtrain/data/loader.hpp"
#include "ringtrain/nn/loss.hpp"
#include "ringtrain/nn/model.hpp"
#include "ringtrain/nn/optimizer.hpp"
#include "ringtrain/parallel/nonfinite_guard.hpp"
#include "ringtrain/parallel/pipeline_schedule.hpp"
#include "ringtrain/tensor/enum_names.hpp"

namespace ringtrain {

enum class ModeKind {
  sync,  // gradients averaged every step: data parallel, or a pipeline (and its hybrid)
  ps,    // parameter servers, workers bounded by a staleness
};
inline constexpr EnumNames<ModeKind, 2> kModeKindNames{{{ModeKind::sync, "sync"}, {ModeKind::ps, "ps"}}};
constexpr const auto& enum_names(ModeKind) { return kModeKindNames; }

struct PsConfig {
  int servers = 1;         // K: the last K ranks serve, the others work
  int staleness = 0;       // S: a worker runs at most S steps ahead of the slowest (0: synchronous)
  double timeout_s = 30.0; // a worker or server silent this long while others wait for it stops the job
};

// Checked by validate (train/validate.hpp) before any mode is made: the modes trust it.
struct ParallelConfig {
  ModeKind mode = ModeKind::sync;
  EngineConfig engine;
  PipelineConfig pipeline;    // sync with more than one stage or micro-batch: the pipeline (and hybrid) mode
  PsConfig ps;
  // A NaN or infinite gradient (after averaging) stops the job naming the step and the parameter; with
  // this, the step's update is skipped instead and counted.
  bool skip_nonfinite = false;
  // Batchnorm statistics over the whole global batch (every replica's samples), not each rank's own.
  bool sync_batchnorm = false;
  // ZeRO stage 1 (data parallel, host): each rank keeps and updates 1/N of the optimizer's state
  // (parallel/sharded_optimizer.hpp).
  bool shard_optimizer = false;
  // --clip-grad-norm: the averaged gradient clipped to this global L2 norm before each update (0: off). In a
  // pipeline the norm spans the stages; parameter servers clip what they apply (parameter_server.hpp).
  float clip_grad_norm = 0.0f;
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

// Scores every batch `loader` gives, in evaluation mode, on the model's device (the whole model, one rank).
// The loss's running score must be empty (take_score) when called.
Score score_batches(Model& model, Loss& loss, BatchLoader& loader);
// Collective: the sum of every rank's score.
Score sum_scores(Communicator& comm, const Score& mine);

// What a mode adds to an epoch's output: a line under the epoch's own, and columns of the metrics CSV.
struct EpochReport {
  std::string line;  // "" or whole lines, each ending in a newline
  std::vector<std::pair<std::string, std::string>> columns;  // name, value
};

class ParallelMode {
 public:
  ParallelMode(Communicator& world, Loss& loss) : world_(world), loss_(loss) {}
  virtual ~ParallelMode() = default;

  // At a step boundary: the batch of this rank's next step, or null when the epoch's steps are over. The
  // default: a pass over this rank's data is an epoch.
  virtual const Batch* next_batch(BatchStream& stream) { return stream.next_in_pass(); }
  // One optimisation step on this rank's share of the global batch (on the model's device). The score goes
  // to the loss's running score (Loss::take_score).
  virtual void train_step(const Batch& batch, float lr) = 0;
  // After an epoch's steps: false when the job stops here instead (a mode whose ranks are out of step may
  // learn of a stop only as its epoch ends).
  virtual bool end_epoch() { return true; }
  // false: ranks are at different steps, so per-step collectives (progress lines) are not possible.
  virtual bool steps_in_lockstep() const { return true; }
  // false on a parameter server, whose rank takes no training steps of its own (it applies the workers').
  virtual bool takes_steps() const { return true; }

  // Collective over the ranks that read the same batches: scores every batch `loader` gives, in evaluation
  // mode. Returns this rank's part (zero on ranks that compute no loss); the loss's score must be empty.
  virtual Score evaluate(BatchLoader& loader) = 0;
  // This rank's running training score since the last call (Loss::take_score), after settle_checks: on a
  // GPU both are read from the device here, a step's one wait for it. Call it at the same steps on every rank.
  Score take_score();
  // Acts on what the non-finite check found since the last call (on a GPU: reads it from the device): throws
  // the non-finite error for a bad step unless skipping, else counts it. Call it at the same steps on every
  // rank; take_score, a checkpoint and the run's end do, so none records or ends a run past a bad step.
  void settle_checks();
  // Collective, after the last step (also of a stopped run): settle_checks, and what the mode put off ends
  // the run here on every rank alike (a parameter-server worker's non-finite stop).
  virtual void end_run() { settle_checks(); }
  // Collective: the sum of every rank's score.
  Score sum_over_ranks(const Score& mine) { return sum_scores(world_, mine); }
  // Collective, before evaluating or saving: makes non-trained state (BatchNorm statistics) agree.
  virtual void sync_buffers() = 0;
  // Collective, before rank 0 saves: rank 0's model then holds every layer's trained parameters and buffers.
  virtual void gather_model() = 0;

  // At a step boundary: whether the job stops here. `requested`: this rank was asked to (stop_request.hpp).
  // Any rank's request stops every rank at the same step boundary: lockstep modes agree by a collective,
  // parameter servers relay it. Once true, it stays true.
  virtual bool agree_to_stop(bool requested) = 0;
  // Collective at a step boundary, before rank 0 writes a checkpoint: what gather_model does, and on rank 0
  // `optimizer` (zero_optimizer_state for the whole model) filled with the optimizer's state. Parameter
  // servers: worker 0 (rank 0) gets it from the servers; the other ranks take no part.
  virtual void gather_state(OptimizerState& optimizer) = 0;

  // The mode's lines under the run's header ("" or whole lines), and, collective, after each epoch.
  virtual std::string description() const { return ""; }
  virtual EpochReport epoch_report() { return {}; }
  // Steps whose update was skipped for a non-finite gradient (ParallelConfig::skip_nonfinite) so far, as of
  // the last take_score.
  int64_t skipped_steps() const { return guard_ ? guard_->skipped() : 0; }

 protected:
  Communicator& world_;
  Loss& loss_;
  std::unique_ptr<NonfiniteGuard> guard_;  // where this rank trains: after each step's gradients are final
};

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
  int64_t batch;            // per rank (a step's samples on a worker or replica)
  int64_t steps_per_epoch;  // of a rank's data share
  Timeline* timeline;
  std::ostream& warnings;   // stall warnings
  ResumePoint resume;       // the model itself is loaded already
};

// Collective. world: every rank of the job; the mode takes communicators of its own from it. `config` has
// passed validate (train/validate.hpp).
std::unique_ptr<ParallelMode> make_parallel_mode(const ParallelConfig& config, Communicator& world,
                                                 const ModeParts& parts);

}  // namespace ringtrain
