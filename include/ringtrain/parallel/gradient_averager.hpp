// Averages the gradients of a group of ranks that hold the same layers, through the allreduce engine
// (Horovod's path): each layer's gradients are handed to the engine the moment that layer's backward ends, so
// communication overlaps the backward of the layers below it. Data parallel averages over the whole world;
// a pipeline stage over the ranks that hold the same stage in the other data-parallel replicas. Frozen
// layers' gradients (Model::freeze) are never handed over: fewer bytes cross the wire each step.
#pragma once
#include <iosfwd>
#include <memory>
#include <vector>

#include "ringtrain/comm/allreduce_engine.hpp"
#include "ringtrain/comm/communicator.hpp"
#include "ringtrain/comm/timeline.hpp"
#include "ringtrain/nn/model.hpp"

namespace ringtrain {

// Collective over `group`: every member starts from member 0's parameters and buffers of `layers`.
void start_from_first(Communicator& group, Model& model, LayerRange layers);
// Collective over `group`: the buffers (BatchNorm statistics) of `layers` replaced by the group's mean; a
// frozen layer's are left as they are.
void average_buffers(Communicator& group, Model& model, LayerRange layers);

class GradientAverager {
 public:
  // Collective over `group` (size > 1): starts every member from member 0's parameters and buffers of
  // `layers`, then opens the engine: negotiation over MPI, gradients over NCCL when the model is on a GPU.
  GradientAverager(Communicator& group, Model& model, LayerRange layers, const EngineConfig& engine,
                   Timeline* timeline, std::ostream& warnings);

  // Layer i's gradients are final: start summing them. The caller has scaled the loss by 1 / group size,
  // so the sum is the average.
  void layer_done(size_t layer);
  // Blocks until every submitted gradient holds the group's average (GPU: the optimizer's stream waits).
  void finish();
  // Collective: BatchNorm statistics and other buffers replaced by the group's mean (a frozen layer's are
  // left as they are).
  void average_buffers();
  // What the engine has reduced so far: only the gradients of layers that train (Model::freeze).
  EngineStats stats() const;

 private:
  Communicator& group_;
  Model& model_;
  LayerRange layers_;
  std::vector<std::vector<NamedParam>> layer_params_;  // indexed by layer - layers_.begin
  std::unique_ptr<AllreduceEngine> engine_;
};

}  // namespace ringtrain
