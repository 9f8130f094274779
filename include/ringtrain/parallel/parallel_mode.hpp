// How ranks share one training job. A mode owns the step: the trainer hands it this rank's batch and the
// learning rate, and the mode does forward, backward, whatever exchange between ranks it needs, and the
// update. Synchronous data parallel (data_parallel.hpp) and pipeline model parallel with its data-parallel
// hybrid (pipeline_parallel.hpp).
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

struct ParallelConfig {
  std::string mode = "sync";  // sync: data parallel, gradients averaged every step
  EngineConfig engine;
  PipelineConfig pipeline;    // more than one stage or micro-batch: the pipeline (and hybrid) mode
};

// Which share of the data a rank reads: the model's replicas split the global batch between them (the
// loader's rank and world); the ranks of one replica (pipeline stages) read the same batches.
struct DataShare {
  int replica = 0, replicas = 1;
};

class ParallelMode {
 public:
  virtual ~ParallelMode() = default;
  // One optimisation step on this rank's share of the global batch (on the model's device). The score goes
  // to the loss's running score (Loss::take_score).
  virtual void train_step(const Batch& batch, float lr) = 0;
  // Collective over the ranks that read the same batches: scores every batch `loader` gives, in evaluation
  // mode. Returns this rank's part (zero on ranks that compute no loss); the loss's score must be empty.
  virtual Score evaluate(BatchLoader& loader) = 0;
  // Collective: the sum of every rank's score.
  virtual Score sum_over_ranks(const Score& mine) = 0;
  // Collective, before evaluating or saving: makes non-trained state (BatchNorm statistics) agree.
  virtual void sync_buffers() = 0;
  // Collective, before rank 0 saves: rank 0's model then holds every layer's trained parameters and buffers.
  virtual void gather_model() = 0;
  virtual DataShare data_share() const = 0;
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

// Collective. world: every rank of the job; the mode takes communicators of its own from it. `model` is
// on the host; the mode moves what this rank runs of it to `device` (loss and optimizer are made for that
// device). Stall warnings go to `warnings`. Throws Error for an unknown mode or a pipeline that cannot run.
std::unique_ptr<ParallelMode> make_parallel_mode(const ParallelConfig& config, Communicator& world, Model& model,
                                                 Device device, Loss& loss, Optimizer& optimizer,
                                                 Timeline* timeline, std::ostream& warnings);

}  // namespace ringtrain
