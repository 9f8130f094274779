// Learning rate as a function of the global step: constant, step decay or cosine, each optionally
// preceded by a linear warm-up from warmup_from to base_lr over warmup_steps (Goyal et al. ramp from the
// one-worker rate to the linearly scaled one).
#pragma once
#include <cstdint>

#include "ringtrain/tensor/enum_names.hpp"

namespace ringtrain {

enum class LrScheduleKind { constant, step, cosine };
inline constexpr EnumNames<LrScheduleKind, 3> kLrScheduleKindNames{
    {{LrScheduleKind::constant, "constant"}, {LrScheduleKind::step, "step"}, {LrScheduleKind::cosine, "cosine"}}};
constexpr const auto& enum_names(LrScheduleKind) { return kLrScheduleKindNames; }

struct LrSchedule {
  LrScheduleKind kind = LrScheduleKind::constant;
  float base_lr = 0.05f;
  int64_t warmup_steps = 0;
  float warmup_from = 0.0f;  // rate before the first warm-up step
  int64_t total_steps = 1;   // cosine: decays to min_lr at this step
  int64_t decay_every = 1;   // step: multiply by gamma every this many steps
  float gamma = 0.1f;        // step
  float min_lr = 0.0f;       // cosine

  float at(int64_t step) const;  // step counts from 0
};


}  // namespace ringtrain
