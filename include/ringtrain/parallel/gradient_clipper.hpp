// --clip-grad-norm in the synchronous modes: once a step's gradients are averaged and found finite, and
// before the optimizer, they are clipped by their global norm (nn/gradient_clip.hpp). The norm is that of the
// averaged gradient, so every replica clips alike. Where a rank holds only part of the gradients (pipeline
// stages, ZeRO shards) the parts' sums of squares are summed over `group` first: one scalar allreduce.
#pragma once
#include <memory>
#include <vector>

#include "ringtrain/comm/communicator.hpp"
#include "ringtrain/nn/gradient_clip.hpp"

namespace ringtrain {

class GradientClipper {
 public:
  // max_norm 0: off (clip does nothing, not even a collective). `group`: the ranks holding the other parts of
  // the gradients, over MPI, and `device_group` the same ranks over the device's communicator when the
  // gradients are on a GPU (as NonfiniteGuard's); null where this rank holds all of them.
  GradientClipper(Device device, float max_norm, Communicator* group, Communicator* device_group);

  // Collective over the group when on: the spans (this rank's part) scaled by the factor of the whole norm.
  void clip(const std::vector<GradSpan>& spans);

 private:
  float max_norm_;
  Communicator* group_;
  std::unique_ptr<GradientClip> clip_;
};

}  // namespace ringtrain
