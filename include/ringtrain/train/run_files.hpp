// What a training run reads and writes, checked on rank 0 before training starts, so that a bad output path
// fails now and not hours later, and no output replaces an input or another run's checkpoints.
#pragma once
#include <string>
#include <vector>

#include "ringtrain/data/shard_set.hpp"
#include "ringtrain/train/config.hpp"

namespace ringtrain {

// The shard files `data` names (before staging copies them: the originals), the checkpoint resumed and the
// --config file.
std::vector<std::string> source_files(const DataSources& data, const TrainConfig& c);
// The files of the opened sets (null ones skipped), the checkpoint resumed and the --config file: the run's
// inputs.
std::vector<std::string> input_files(const std::vector<const SampleSource*>& sets, const TrainConfig& c);
// Every output of `c` (output_file.hpp check_output, clearing a killed run's temporaries), no two on one
// path, and no --checkpoint-dir that holds an input (its old checkpoints are pruned) but the run's own.
void check_outputs(const TrainConfig& c, const std::vector<std::string>& inputs);
// Creates the checkpoint directory if need be and proves a file can be made there.
void prepare_checkpoint_dir(const std::string& dir);
// A run that does not resume refuses a directory holding checkpoints: it would prune another run's.
void check_no_foreign_checkpoints(const TrainConfig& c);

}  // namespace ringtrain
