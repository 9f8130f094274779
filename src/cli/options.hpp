// Flag and config-file parsing for each subcommand: the only place that knows option names. Produces the
// plain config structs the lower layers take.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "ringtrain/data/prep.hpp"
#include "ringtrain/train/config.hpp"

namespace ringtrain::cli {

// Each returns nullopt after printing --help. Throws UsageError for bad flags or config files.
std::optional<PrepConfig> parse_prep(const std::vector<std::string>& args);
std::optional<TrainConfig> parse_train(const std::vector<std::string>& args);
std::optional<EvalConfig> parse_eval(const std::vector<std::string>& args);
std::optional<PredictConfig> parse_predict(const std::vector<std::string>& args);

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace ringtrain::cli
