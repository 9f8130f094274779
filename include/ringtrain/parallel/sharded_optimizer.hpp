// ZeRO stage 1 (--shard-optimizer) for synchronous data parallel on the host. After backward the trained
// gradients are reduce-scattered: each rank then holds the sum over the ranks (the average: the loss is
// scaled by 1 / ranks) of its owned part of each exchange bucket (Communicator::owned_range). Each rank steps
// the optimizer over its parts alone (Optimizer::step_spans, the update unsharded runs use), so it keeps
// about 1/N of the optimizer's state, and the updated parts are allgathered into every rank's parameters.
// The reduce-scatter and the allgather cross the wire with the bytes of one allreduce. Unlike the allreduce
// engine's, this exchange starts once backward has ended (it does not overlap it).
//
// Buckets, as the allreduce engine fuses gradients: a parameter of 1 MiB or more (or of --fusion-mb) is
// exchanged alone, in place, in its own gradient and value tensors (no copy, no extra memory); consecutive
// smaller ones travel together through a flat buffer of up to --fusion-mb, so that a model's many small
// tensors (biases, batchnorm scales) cost few exchanges. A parameter exchanged alone is summed in the order
// the engine's allreduce sums it alone; so is every one when --fusion-mb is below the smallest (the two runs
// then train bit for bit alike). Fused, the order follows the bucket's layout, and the engine's fusion
// follows the timing of backward, so the last bits of fused sums differ between the two.
//
// Checkpoints keep the full optimizer state keyed by parameter, as unsharded runs do: gather_state
// assembles it, and a resumed run takes its own part of it, whatever the rank count or sharding it was
// written with.
#pragma once
#include <vector>

#include "ringtrain/comm/communicator.hpp"
#include "ringtrain/nn/gradient_clip.hpp"
#include "ringtrain/nn/model.hpp"
#include "ringtrain/nn/optimizer.hpp"

namespace ringtrain {

class ShardedOptimizer {
 public:
  // `params`: the model's trained parameters, host tensors, the same on every rank (rank 0's: broadcast
  // already); `positions`: theirs among the model's (Model::trained_positions). `resume`: a checkpoint's state
  // for the whole model, or null for a fresh start. `optimizer` is this rank's, still unstepped, on the host.
  // `fusion_bytes`: the largest bucket of small parameters (--fusion-mb).
  ShardedOptimizer(Communicator& world, Optimizer& optimizer, std::vector<Param*> params,
                   std::vector<size_t> positions, size_t fusion_bytes, const OptimizerState* resume);

  // Collective, once backward has ended: this rank's parts of the gradients hold the sums over the ranks. The
  // rest of each gradient holds partial sums or this rank's own: a non-finite value anywhere in them means a
  // non-finite sum (parts of a reduction's own order), so the non-finite check may look at whole gradients.
  void reduce_gradients();
  // This rank's parts of the gradients (those that hold the sums after reduce_gradients).
  std::vector<GradSpan> grad_spans() const;
  // Collective: the optimizer's step over this rank's parts, then every rank's parameters updated with all.
  void step(float lr);
  // Collective: on rank 0 `state` (zero_optimizer_state for the whole model) receives the full state.
  void gather_state(OptimizerState& state);
  // The elements of the optimizer's state per state name this rank keeps, and the whole model's.
  size_t share_size() const;
  size_t total_size() const;

 private:
  // Parameters exchanged together: one alone in place, or the small ones through flat_.
  struct Bucket {
    std::vector<size_t> members;  // indices into params_, in order
    size_t size = 0;              // their elements
    bool in_place = true;
    ElementRange owned;           // this rank's part of the bucket's elements
  };
  // Where this rank's part of a bucket cuts through one parameter.
  struct Part {
    size_t bucket, at;   // the part's first element in the bucket
    size_t param, from;  // the parameter (index into params_) and the part's first element in it
    size_t size;
  };

  void plan_buckets(size_t fusion_bytes);
  void take_state(const OptimizerState& full);
  // The bucket's gradients or values (field) as one buffer: the parameter's own tensor, or flat_ packed;
  // unpack copies flat_ back into the fused parameters' tensors.
  float* buffer(const Bucket& b, Tensor Param::*field);
  void unpack(const Bucket& b, Tensor Param::*field);
  // This rank's parts as the optimizer steps them (the tensors' addresses, taken afresh).
  std::vector<ParamSpan> spans() const;

  Communicator& world_;
  Optimizer& optimizer_;
  std::vector<Param*> params_;
  std::vector<size_t> positions_;
  std::vector<Bucket> buckets_;
  std::vector<Part> parts_;  // in bucket order
  std::vector<float> flat_;  // the fused buckets' exchange buffer (the largest one's size)
};

}  // namespace ringtrain
