#include "ringtrain/nn/loss.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "cuda_factories.hpp"
#include "exp_nonpositive.hpp"
#include "ringtrain/tensor/cpu_features.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

void check_labels(const Targets& targets, int64_t rows, int64_t classes) {
  if (static_cast<int64_t>(targets.labels.size()) != rows)
    throw Error("batch has " + std::to_string(targets.labels.size()) + " labels for " + std::to_string(rows) +
                " rows of outputs (one a sample, or one a position of a sequence)");
  for (int32_t label : targets.labels)
    if (label < 0 || label >= classes)
      throw Error("label " + std::to_string(label) + " is out of range for a model with " + std::to_string(classes) +
                  " outputs");
}

void check_target_values(const Targets& targets, const Tensor& out) {
  if (targets.values.numel() != out.numel())
    throw Error("batch targets " + shape_str(targets.values.shape()) + " do not match model outputs " +
                shape_str(out.shape()));
}

ScoredRows scored_rows(const Tensor& logits) {
  // [batch, T, classes]: every position of a sequence is a row. A 4-D output (a conv net's [batch, C, 1, 1])
  // is one row per sample as a 2-D one is.
  const int64_t classes = logits.rank() == 3 ? logits.dim(2) : logits.numel() / logits.dim(0);
  return {logits.numel() / classes, classes};
}

namespace {

// One row's softmax into p and its loss and hit: -sum_j target_j log p_j with log p_j = z_j - zmax - log(sum):
// the label's share on_label of its z, and per_class of every class's (left out without smoothing, where an
// infinite logit would make it 0 * inf). exp_nonpositive rather than std::exp so that the loop vectorises: a
// language model's loss runs it on every position over the whole vocabulary.
struct RowScore {
  double loss;
  bool hit;
};
RowScore softmax_row(const float* __restrict z, float* __restrict p, int64_t classes, int32_t label,
                     double on_label, double per_class) {
  float zmax = z[0];
#pragma omp simd reduction(max : zmax)
  for (int64_t j = 1; j < classes; ++j) zmax = std::max(zmax, z[j]);
  int64_t best = 0;  // the first class at the maximum, as a strict > scan finds it
  while (best + 1 < classes && z[best] != zmax) ++best;
  double sum = 0.0, shifted = 0.0;
#pragma omp simd reduction(+ : sum, shifted)
  for (int64_t j = 0; j < classes; ++j) {
    p[j] = exp_nonpositive(z[j] - zmax);
    sum += p[j];
    shifted += static_cast<double>(z[j] - zmax);
  }
  const float inv = static_cast<float>(1.0 / sum);
#pragma omp simd
  for (int64_t j = 0; j < classes; ++j) p[j] *= inv;
  double loss = std::log(sum) - on_label * static_cast<double>(z[label] - zmax);
  if (per_class > 0.0) loss -= per_class * shifted;
  return {loss, best == label};
}

constexpr int64_t kParallelFrom = int64_t{1} << 15;  // elements: below, a thread team costs more than it saves

}  // namespace

// Rows in parallel, each row's loss kept and summed in order afterwards, so that the score is the same
// whatever the thread count.
void SoftmaxCrossEntropy::forward(const Tensor& logits, const Targets& targets) {
  // Named copies, not a structured binding: clang 14 (the sanitized build) cannot capture a binding in the
  // OpenMP region or the lambda below.
  const ScoredRows rows = scored_rows(logits);
  const int64_t n = rows.rows, classes = rows.classes;
  check_labels(targets, n, classes);
  labels_ = &targets.labels;
  logits_shape_ = logits.shape();  // the gradient's, whatever rows the loss saw
  probs_.resize({n, classes});
  std::vector<double> row_loss(static_cast<size_t>(n));  // each row's, summed in order after the parallel rows
  std::vector<char> row_hit(static_cast<size_t>(n));
  const double on_label = 1.0 - static_cast<double>(smoothing_);
  const double per_class = static_cast<double>(smoothing_) / static_cast<double>(classes);
  const float* z = logits.data();
  float* p = probs_.data();
  const int32_t* labels = targets.labels.data();
#pragma omp parallel for schedule(static) if (n * classes >= kParallelFrom)
  for (int64_t r = 0; r < n; ++r) {
    RowScore row{};
    run_vectorised([&] { row = softmax_row(z + r * classes, p + r * classes, classes, labels[r], on_label, per_class); });
    row_loss[static_cast<size_t>(r)] = row.loss;
    row_hit[static_cast<size_t>(r)] = row.hit;
  }
  Score score;
  score.samples = n;
  for (int64_t r = 0; r < n; ++r) {
    score.loss_sum += row_loss[static_cast<size_t>(r)];
    score.metric_sum += row_hit[static_cast<size_t>(r)] ? 1.0 : 0.0;
  }
  score_ += score;
}

const Tensor& SoftmaxCrossEntropy::backward(float scale) {
  const int64_t n = probs_.dim(0), classes = probs_.dim(1);
  grad_.resize(logits_shape_);
  const float k = scale / static_cast<float>(n);
  // The target: eps / K everywhere and 1 - eps more on the label (1 and 0 without smoothing).
  const float off_label = smoothing_ / static_cast<float>(classes), on_label = 1.0f - smoothing_ + off_label;
  const float* p = probs_.data();
  float* g = grad_.data();
  const int32_t* labels = labels_->data();
  for_each_chunk(n * classes, [&](int64_t begin, int64_t end) {
    const float* __restrict pp = p;
    float* __restrict gg = g;
    for (int64_t i = begin; i < end; ++i) gg[i] = k * (pp[i] - off_label);
  });
  for (int64_t r = 0; r < n; ++r) g[r * classes + labels[r]] = k * (p[r * classes + labels[r]] - on_label);
  return grad_;
}

void MeanSquaredError::forward(const Tensor& out, const Targets& targets) {
  const int64_t n = out.dim(0), outputs = out.numel() / n;
  check_target_values(targets, out);
  diff_.resize({n, outputs});
  Score score;
  score.samples = n;
  for (int64_t r = 0; r < n; ++r) {
    double sq = 0.0, abs = 0.0;
    for (int64_t j = 0; j < outputs; ++j) {
      const float d = out[r * outputs + j] - targets.values[r * outputs + j];
      diff_[r * outputs + j] = d;
      sq += static_cast<double>(d) * d;
      abs += std::fabs(d);
    }
    score.loss_sum += sq / static_cast<double>(outputs);
    score.metric_sum += abs / static_cast<double>(outputs);
  }
  score_ += score;
}

const Tensor& MeanSquaredError::backward(float scale) {
  grad_.resize(diff_.shape());
  const float k = 2.0f * scale / static_cast<float>(diff_.numel());
  for (int64_t i = 0; i < diff_.numel(); ++i) grad_[i] = k * diff_[i];
  return grad_;
}

std::unique_ptr<Loss> make_loss(const TargetSpace& targets, Device device, float label_smoothing) {
  if (device == Device::cuda) return cuda::make_cuda_loss(targets, label_smoothing);
  if (targets.classification) return std::make_unique<SoftmaxCrossEntropy>(label_smoothing);
  return std::make_unique<MeanSquaredError>(targets.scale);
}

}  // namespace ringtrain
