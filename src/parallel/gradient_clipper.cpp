#include "ringtrain/parallel/gradient_clipper.hpp"

namespace ringtrain {

GradientClipper::GradientClipper(Device device, float max_norm, Communicator* group, Communicator* device_group)
    : max_norm_(max_norm), group_(device == Device::cpu ? group : device_group),
      clip_(max_norm > 0.0f ? make_gradient_clip(device) : nullptr) {}

void GradientClipper::clip(const std::vector<GradSpan>& spans) {
  if (!clip_) return;
  clip_->measure(spans);
  if (group_) group_->allreduce_sum(clip_->sum_squares(), 1);
  clip_->clip(spans, max_norm_);
}

}  // namespace ringtrain
