// Flag and config-file parsing for each subcommand: the only place that knows option names. Produces the
// plain config structs the lower layers take.
#pragma once
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ringtrain/data/prep.hpp"
#include "ringtrain/train/config.hpp"
#include "ringtrain/train/generate.hpp"

// Included after options.cpp's own float parser, which Boost's headers must not precede.
namespace boost::program_options {
class options_description;
class variables_map;
}  // namespace boost::program_options

namespace ringtrain::cli {

// Each returns nullopt after printing --help. Throws UsageError for bad flags or config files.
std::optional<PrepConfig> parse_prep(const std::vector<std::string>& args);
std::optional<TrainConfig> parse_train(const std::vector<std::string>& args);
std::optional<EvalConfig> parse_eval(const std::vector<std::string>& args);
std::optional<PredictConfig> parse_predict(const std::vector<std::string>& args);
std::optional<DoctorConfig> parse_doctor(const std::vector<std::string>& args);
std::optional<GenerateConfig> parse_generate(const std::vector<std::string>& args);

// `ringtrain sweep` (sweep_options.cpp): parses its flags and does what they ask; returns the exit code.
int run_sweep(const std::vector<std::string>& args);

// A sweep's trial: train's flags `args` (and their --config file) with `overrides`, INI text of the trial's
// values, winning over both; its settings.ini text in run_dir.settings.
TrainConfig parse_trial(const std::vector<std::string>& args, const std::string& overrides);
// The names of train's options that are settings of a run (not --config, --run-dir, --resume, --help).
std::set<std::string> train_settings();

// Flags into `vm` as every command reads them: a flag given twice takes its later value (list flags gather),
// and a stray word or text Boost cannot report errors about is refused (UsageError); Boost's own errors pass.
void store_flags(const std::vector<std::string>& args, const boost::program_options::options_description& options,
                 boost::program_options::variables_map& vm);

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace ringtrain::cli
