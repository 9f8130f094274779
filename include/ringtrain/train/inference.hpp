// A saved model's predictions over a source's samples, in the source's order: what `ringtrain predict`
// writes and `ringtrain eval --report` scores. Each rank runs the model over its own contiguous share of the
// samples, in whole batches of the one-rank run's, and rank 0 gathers them: a sample meets the same batch on
// any number of ranks, so N ranks' predictions are one rank's bit for bit (a GEMM's rounding may depend on
// the rows it is given with).
#pragma once
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "ringtrain/comm/communicator.hpp"
#include "ringtrain/data/loader.hpp"
#include "ringtrain/data/sample_source.hpp"
#include "ringtrain/nn/model.hpp"
#include "ringtrain/tensor/targets.hpp"

namespace ringtrain {

struct Predictions {
  bool classification = true;
  int64_t width = 0;  // values per row: the classes, or the regression targets
  int64_t first = 0;  // the source's index of the first row
  // rows x width: each class's probability (the softmax of the model's outputs), or the predicted values in
  // the target's units (the model's outputs with the training data's target standardisation undone).
  std::vector<float> values;
  std::vector<int32_t> predicted;  // classification: each row's most probable class (the first of equals)
  std::vector<int32_t> labels;     // the source's class labels, when it has them (what eval scores against)

  int64_t rows() const { return width > 0 ? static_cast<int64_t>(values.size()) / width : 0; }
};

struct InferenceConfig {
  int64_t batch = 256;  // samples per forward pass
  int prefetch = 4;     // batches the loader prepares ahead
};

// The samples [first, last) that `rank` of `world` ranks scores: contiguous, in rank order, whole batches of
// `batch` counted from sample 0 (the last may be short), the ranks' numbers of batches differing by one at
// most.
std::pair<int64_t, int64_t> share_of(int64_t samples, int64_t batch, int rank, int world);

// Error unless the data's samples have the model's input shape.
void check_input_shape(const ShardMeta& data, const Model& model);

// Sees each batch's model outputs (on the model's device) with the batch: eval scores its loss with it.
using BatchObserver = std::function<void(const Tensor& out, const Batch& batch)>;

// This rank's share of `source` through `model` (on its device), whose outputs are `task`'s. An output that
// is not finite is an Error naming the sample.
Predictions predict_share(Model& model, const TargetSpace& task, const SampleSource& source,
                          const InferenceConfig& config, int rank, int world, const BatchObserver& observe = {});

// Collective: every rank's share, in rank order, on rank 0 (the others keep their own).
Predictions gather_predictions(Communicator& world, Predictions mine);

}  // namespace ringtrain
