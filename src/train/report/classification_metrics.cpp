#include "ringtrain/train/report/metrics.hpp"

namespace ringtrain {

namespace {

double ratio(int64_t part, int64_t whole) {
  return whole == 0 ? 0.0 : static_cast<double>(part) / static_cast<double>(whole);
}

std::vector<ClassScores> scores_per_class(const std::vector<int64_t>& confusion, int64_t classes) {
  std::vector<ClassScores> out(static_cast<size_t>(classes));
  for (int64_t c = 0; c < classes; ++c) {
    int64_t predicted = 0, support = 0;
    for (int64_t other = 0; other < classes; ++other) {
      predicted += confusion[static_cast<size_t>(other * classes + c)];
      support += confusion[static_cast<size_t>(c * classes + other)];
    }
    const int64_t hits = confusion[static_cast<size_t>(c * classes + c)];
    ClassScores& s = out[static_cast<size_t>(c)];
    s.precision = ratio(hits, predicted);
    s.recall = ratio(hits, support);
    s.f1 = s.precision + s.recall > 0.0 ? 2.0 * s.precision * s.recall / (s.precision + s.recall) : 0.0;
    s.support = support;
  }
  return out;
}

// The mean of each score over the classes, plain or weighted by support.
AverageScores average(const std::vector<ClassScores>& per_class, bool by_support) {
  AverageScores sum;
  double weights = 0.0;
  for (const ClassScores& s : per_class) {
    const double w = by_support ? static_cast<double>(s.support) : 1.0;
    sum.precision += w * s.precision, sum.recall += w * s.recall, sum.f1 += w * s.f1;
    weights += w;
  }
  if (weights > 0.0) sum.precision /= weights, sum.recall /= weights, sum.f1 /= weights;
  return sum;
}

// Two classes: class 1's probability against its labels. More: each class against the rest.
void add_roc_curves(ClassificationMetrics& m, const std::vector<int32_t>& labels,
                    const std::vector<float>& probabilities) {
  const auto n = static_cast<size_t>(m.samples), k = static_cast<size_t>(m.classes);
  for (size_t c = m.classes == 2 ? 1 : 0; c < k; ++c) {
    std::vector<bool> positive(n);
    std::vector<float> scores(n);
    for (size_t i = 0; i < n; ++i) positive[i] = static_cast<size_t>(labels[i]) == c, scores[i] = probabilities[i * k + c];
    m.roc.push_back(roc_curve(positive, scores));
  }
  double sum = 0.0;
  int64_t defined = 0;
  for (const RocCurve& curve : m.roc)
    if (curve.auc) sum += *curve.auc, ++defined;
  if (defined > 0) m.auc = sum / static_cast<double>(defined);
}

}  // namespace

ClassificationMetrics classification_metrics(const std::vector<int32_t>& labels, const std::vector<int32_t>& predicted,
                                             const std::vector<float>& probabilities, int64_t classes) {
  ClassificationMetrics m;
  m.classes = classes;
  m.samples = static_cast<int64_t>(labels.size());
  m.confusion.assign(static_cast<size_t>(classes * classes), 0);
  int64_t correct = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    ++m.confusion[static_cast<size_t>(labels[i] * classes + predicted[i])];
    correct += labels[i] == predicted[i];
  }
  m.accuracy = ratio(correct, m.samples);
  m.per_class = scores_per_class(m.confusion, classes);
  m.macro = average(m.per_class, false);
  m.weighted = average(m.per_class, true);
  add_roc_curves(m, labels, probabilities);
  return m;
}

}  // namespace ringtrain
