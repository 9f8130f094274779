#include "ringtrain/nn/lr_schedule.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

float LrSchedule::at(int64_t step) const {
  if (step < warmup_steps)
    return warmup_from + (base_lr - warmup_from) * static_cast<float>(step + 1) / static_cast<float>(warmup_steps);
  const int64_t after = step - warmup_steps;
  if (kind == "step") return base_lr * std::pow(gamma, static_cast<float>(after / decay_every));
  if (kind == "cosine") {
    const int64_t span = std::max<int64_t>(1, total_steps - warmup_steps);
    const double progress = std::min(1.0, static_cast<double>(after) / static_cast<double>(span));
    return min_lr + (base_lr - min_lr) * static_cast<float>(0.5 * (1.0 + std::cos(std::numbers::pi * progress)));
  }
  return base_lr;
}

void validate(const LrSchedule& s) {
  if (s.kind != "constant" && s.kind != "step" && s.kind != "cosine")
    throw Error("unknown learning-rate schedule '" + s.kind + "' (expected constant, step or cosine)");
  if (!(s.base_lr > 0.0f)) throw Error("learning rate must be positive, got " + std::to_string(s.base_lr));
  if (s.warmup_steps < 0) throw Error("warm-up must not be negative");
  if (s.kind == "step" && s.decay_every < 1) throw Error("step schedule needs a decay interval of at least one step");
}

}  // namespace ringtrain
