// Gradient clipping by global norm (torch.nn.utils.clip_grad_norm_, --clip-grad-norm): the L2 norm over all
// the gradients given; where max_norm / (norm + 1e-6) is below 1, every gradient is scaled by it. Split in
// two, so that ranks holding other parts of the gradients (pipeline stages, ZeRO shards) can add their sums
// of squares in between: measure, an allreduce of sum_squares() where the caller needs one, then clip. On a
// GPU all three stay on the device (the host never waits inside a step), as the non-finite check does.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "ringtrain/nn/layer.hpp"

namespace ringtrain {

// A run of gradient elements that are clipped together with the rest.
struct GradSpan {
  float* grad = nullptr;
  int64_t size = 0;
};
std::vector<GradSpan> grad_spans(const std::vector<Param*>& params);

// The host's pieces, also used where gradients live in a parameter server's shard: the sum of x^2 (in double,
// the same order every run), and the factor clip_grad_norm_ scales by for a total sum of squares (1: none).
double sum_of_squares(const float* x, int64_t n);
float clip_factor(double sum_squares, float max_norm);
void scale_gradient(float* x, int64_t n, float factor);

class GradientClip {
 public:
  virtual ~GradientClip() = default;
  // Sums the squares of the gradients in `spans` (the same list every step).
  virtual void measure(const std::vector<GradSpan>& spans) = 0;
  // That sum, on the clip's device, where other ranks' sums may be added (an allreduce) before clip.
  virtual float* sum_squares() = 0;
  // Scales the spans' gradients by clip_factor(sum_squares(), max_norm).
  virtual void clip(const std::vector<GradSpan>& spans, float max_norm) = 0;
};

std::unique_ptr<GradientClip> make_gradient_clip(Device device);

}  // namespace ringtrain
