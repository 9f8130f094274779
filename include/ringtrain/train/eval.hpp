// `ringtrain eval`: scores a saved model on a split of a dataset.
#pragma once
#include <iosfwd>

#include "ringtrain/nn/loss.hpp"
#include "ringtrain/train/config.hpp"

namespace ringtrain {

Score evaluate_saved_model(const EvalConfig& config, std::ostream& log);

}  // namespace ringtrain
