// `ringtrain predict`: a saved model (or checkpoint) run over new data in batches, its predictions written in
// the input's order: per sample the predicted class and every class's probability, or the regression values
// in the target's units. Spread over the ranks of an mpirun/srun job, each scoring a contiguous share; rank 0
// gathers them and writes the file.
#pragma once
#include <iosfwd>
#include <memory>
#include <string>

#include "ringtrain/comm/communicator.hpp"
#include "ringtrain/data/sample_source.hpp"
#include "ringtrain/train/config.hpp"
#include "ringtrain/train/inference.hpp"
#include "ringtrain/train/model_file.hpp"

namespace ringtrain {

// The samples to predict on, as the model sees them: --input's shards (a shard file, a glob, a directory of
// shards, or a `prep` directory, whose --split is read), or an IDX images file (MNIST's format, .gz or
// plain), standardised as the model's training data was. Error when it is none of these or does not fit
// the model.
std::unique_ptr<SampleSource> open_prediction_input(const PredictConfig& config, const LoadedModel& loaded);

// Writes `all` (every row, from index 0) to `path` atomically: CSV with a header row (index, predicted,
// p_<class>... or index, value[_<target>]...) or HDF5 (datasets index, predicted and probabilities, or index
// and values).
void write_predictions(const std::string& path, PredictionFormat format, const Predictions& all);

// Collective: the whole command. Prints the rows, the seconds and the samples a second.
void predict_saved_model(const PredictConfig& config, Communicator& world, std::ostream& log);

}  // namespace ringtrain
