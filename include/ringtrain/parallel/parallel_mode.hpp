// How ranks share one training job. A mode owns the step: the trainer hands it this rank's batch and the
// learning rate, and the mode does forward, backward, whatever exchange between ranks it needs, and the
// update. Synchronous data parallel now; the parameter server and the pipeline are modes of their own.
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

namespace ringtrain {

struct ParallelConfig {
  std::string mode = "sync";  // sync: data parallel, gradients averaged every step
  EngineConfig engine;
};

class ParallelMode {
 public:
  virtual ~ParallelMode() = default;
  // One optimisation step on this rank's share of the global batch (on the model's device). The score goes
  // to the loss's running score (Loss::take_score).
  virtual void train_step(const Batch& batch, float lr) = 0;
  // Collective: the sum of every rank's score.
  virtual Score sum_over_ranks(const Score& mine) = 0;
  // Collective, before evaluating or saving: makes non-trained state (BatchNorm statistics) agree.
  virtual void sync_buffers() = 0;
};

// Collective: the sum of every rank's score.
Score sum_scores(Communicator& comm, const Score& mine);
// Collective: root's tensor into every rank's / every rank's tensor replaced by the mean over the ranks.
// A GPU tensor travels through host memory when `comm` moves host buffers (setup and evaluation only).
void broadcast_tensor(Communicator& comm, Tensor& tensor, int root);
void average_tensor(Communicator& comm, Tensor& tensor);

// world: every rank of the job; the mode takes communicators of its own from it. Stall warnings go to
// `warnings`. Throws Error for an unknown mode.
std::unique_ptr<ParallelMode> make_parallel_mode(const ParallelConfig& config, Communicator& world, Model& model,
                                                 Loss& loss, Optimizer& optimizer, Timeline* timeline,
                                                 std::ostream& warnings);

}  // namespace ringtrain
