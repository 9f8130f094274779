// `ringtrain eval`: scores a saved model on a split of a dataset.
#pragma once
#include <iosfwd>

#include "ringtrain/comm/communicator.hpp"
#include "ringtrain/nn/loss.hpp"
#include "ringtrain/train/config.hpp"

namespace ringtrain {

// Collective: each rank scores its share of the split and the scores are summed.
Score evaluate_saved_model(const EvalConfig& config, Communicator& world, std::ostream& log);

}  // namespace ringtrain
