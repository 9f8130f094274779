#include "ringtrain/train/inference.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "ringtrain/data/device_batches.hpp"
#include "ringtrain/data/sample_range.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

namespace {

[[noreturn]] void not_finite(int64_t sample) {
  throw Error("the model's output for sample " + std::to_string(sample) +
              " is not finite (NaN or infinite): its weights or the input are broken");
}

// A row of logits as probabilities (softmax, in double so that large logits do not overflow) and its
// most probable class.
void append_classes(const float* logits, int64_t classes, int64_t sample, Predictions& p) {
  float top = logits[0];
  int32_t best = 0;
  for (int64_t c = 0; c < classes; ++c) {
    if (!std::isfinite(logits[c])) not_finite(sample);
    if (logits[c] > top) top = logits[c], best = static_cast<int32_t>(c);
  }
  double sum = 0.0;
  for (int64_t c = 0; c < classes; ++c) sum += std::exp(static_cast<double>(logits[c]) - top);
  for (int64_t c = 0; c < classes; ++c)
    p.values.push_back(static_cast<float>(std::exp(static_cast<double>(logits[c]) - top) / sum));
  p.predicted.push_back(best);
}

// A row of outputs as values in the target's units: the training data stored raw * scale + shift.
void append_values(const float* outputs, int64_t targets, const TargetSpace& task, int64_t sample, Predictions& p) {
  for (int64_t t = 0; t < targets; ++t) {
    const double value = (static_cast<double>(outputs[t]) - task.shift) / task.scale;
    if (!std::isfinite(outputs[t]) || !std::isfinite(static_cast<float>(value))) not_finite(sample);
    p.values.push_back(static_cast<float>(value));
  }
}

void append_rows(const Tensor& host_out, const TargetSpace& task, Predictions& p) {
  const int64_t rows = host_out.dim(0);
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = host_out.data() + r * p.width;
    const int64_t sample = p.first + p.rows();
    if (task.classification) append_classes(row, p.width, sample, p);
    else append_values(row, p.width, task, sample, p);
  }
}

// The same tag for every piece: messages between two ranks with one tag arrive in the order sent.
constexpr int kGatherTag = 7201;
// MPI counts bytes in an int: larger vectors travel in pieces.
constexpr size_t kPieceBytes = size_t{1} << 28;

template <typename T>
void send_vector(Communicator& comm, const std::vector<T>& v, int peer) {
  const auto* bytes = reinterpret_cast<const char*>(v.data());
  const size_t total = v.size() * sizeof(T);
  for (size_t at = 0; at < total; at += kPieceBytes) comm.send(bytes + at, std::min(kPieceBytes, total - at), peer, kGatherTag);
}

// Appends `count` elements from `peer` to `v`.
template <typename T>
void receive_into(Communicator& comm, std::vector<T>& v, size_t count, int peer) {
  const size_t old = v.size();
  v.resize(old + count);
  auto* bytes = reinterpret_cast<char*>(v.data() + old);
  const size_t total = count * sizeof(T);
  for (size_t at = 0; at < total; at += kPieceBytes) comm.recv(bytes + at, std::min(kPieceBytes, total - at), peer, kGatherTag);
}

}  // namespace

void check_input_shape(const ShardMeta& data, const Model& model) {
  if (data.sample_shape != model.input_shape())
    throw Error("the data's samples are " + shape_str(data.sample_shape) + " but the model expects " +
                shape_str(model.input_shape()));
}

std::pair<int64_t, int64_t> share_of(int64_t samples, int64_t batch, int rank, int world) {
  const int64_t batches = (samples + batch - 1) / batch;
  auto edge = [&](int r) { return std::min(samples, batch * (batches / world * r + std::min<int64_t>(r, batches % world))); };
  return {edge(rank), edge(rank + 1)};
}

Predictions predict_share(Model& model, const TargetSpace& task, const SampleSource& source,
                          const InferenceConfig& config, int rank, int world, const BatchObserver& observe) {
  const auto [begin, end] = share_of(source.samples(), config.batch, rank, world);
  Predictions p;
  p.classification = task.classification;
  p.width = shape_numel(model.output_shape());
  p.first = begin;
  if (begin == end) return p;
  const SampleRange share(source, begin, end);
  LoaderConfig lc;
  lc.batch = config.batch;
  lc.shuffle = false;
  lc.drop_last = false;
  lc.prefetch = config.prefetch;
  lc.window_shards = 1;  // the order runs through the shards once: one in memory at a time
  BatchLoader loader(share, lc);
  DeviceBatches batches(loader, model.device());
  batches.start_epoch(0);
  const bool labelled = source.meta().classification();
  // A language model's rows would be T x V scores a sample (GPT-2's: 200 MB): predict refuses one, and eval
  // scores it through `observe` alone, so none are kept.
  const bool keep = !model.per_position();
  if (keep) p.values.reserve(static_cast<size_t>((end - begin) * p.width));
  while (const Batch* batch = batches.next()) {
    const Tensor& out = model.forward(batch->x, Mode::eval);
    if (observe) observe(out, *batch);
    if (!keep) continue;
    append_rows(out.device() == Device::cpu ? out : out.to(Device::cpu), task, p);
    if (labelled) p.labels.insert(p.labels.end(), batch->y.labels.begin(), batch->y.labels.end());
  }
  return p;
}

Predictions gather_predictions(Communicator& world, Predictions mine) {
  if (world.size() == 1) return mine;
  const int64_t rows = mine.rows();
  std::vector<int64_t> all_rows(static_cast<size_t>(world.size()));
  world.allgather(&rows, all_rows.data(), sizeof rows);
  if (world.rank() != 0) {
    send_vector(world, mine.values, 0);
    send_vector(world, mine.predicted, 0);
    send_vector(world, mine.labels, 0);
    return mine;
  }
  const bool labelled = !mine.labels.empty();  // rank 0's share is never empty: the source has samples
  for (int r = 1; r < world.size(); ++r) {
    const auto theirs = static_cast<size_t>(all_rows[static_cast<size_t>(r)]);
    receive_into(world, mine.values, theirs * static_cast<size_t>(mine.width), r);
    receive_into(world, mine.predicted, mine.classification ? theirs : 0, r);
    receive_into(world, mine.labels, labelled ? theirs : 0, r);
  }
  return mine;
}

}  // namespace ringtrain
