#include "ringtrain/nn/lr_schedule.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>


namespace ringtrain {

float LrSchedule::at(int64_t step) const {
  if (step < warmup_steps)
    return warmup_from + (base_lr - warmup_from) * static_cast<float>(step + 1) / static_cast<float>(warmup_steps);
  const int64_t after = step - warmup_steps;
  switch (kind) {
    case LrScheduleKind::constant: return base_lr;
    case LrScheduleKind::step: return base_lr * std::pow(gamma, static_cast<float>(after / decay_every));
    case LrScheduleKind::cosine: {
      const int64_t span = std::max<int64_t>(1, total_steps - warmup_steps);
      const double progress = std::min(1.0, static_cast<double>(after) / static_cast<double>(span));
      return min_lr + (base_lr - min_lr) * static_cast<float>(0.5 * (1.0 + std::cos(std::numbers::pi * progress)));
    }
  }
  return base_lr;
}

}  // namespace ringtrain
