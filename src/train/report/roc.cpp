#include <algorithm>
#include <limits>
#include <numeric>

#include "ringtrain/train/report/metrics.hpp"

namespace ringtrain {

namespace {

// The counts of true and false positives above each distinct score, as the threshold falls.
struct Counts {
  std::vector<int64_t> tp, fp;
  std::vector<double> thresholds;
};

Counts counts_per_threshold(const std::vector<bool>& positive, const std::vector<float>& scores) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  Counts c;
  int64_t tp = 0, fp = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    (positive[order[i]] ? tp : fp) += 1;
    // A point once every sample of this score is counted: tied samples move the curve together.
    if (i + 1 < order.size() && scores[order[i + 1]] == scores[order[i]]) continue;
    c.tp.push_back(tp);
    c.fp.push_back(fp);
    c.thresholds.push_back(scores[order[i]]);
  }
  return c;
}

// Whether point i lies inside a straight run (its neighbours on a line with it along one axis), which draws
// nothing: scikit-learn's drop_intermediate leaves these out, and so does the report (a curve of 10,000
// samples keeps its corners, hundreds of points, not thousands).
bool inside_a_run(const Counts& c, size_t i) {
  if (i == 0 || i + 1 == c.tp.size()) return false;
  return c.tp[i - 1] - 2 * c.tp[i] + c.tp[i + 1] == 0 && c.fp[i - 1] - 2 * c.fp[i] + c.fp[i + 1] == 0;
}

}  // namespace

RocCurve roc_curve(const std::vector<bool>& positive, const std::vector<float>& scores) {
  const auto positives = static_cast<int64_t>(std::count(positive.begin(), positive.end(), true));
  const auto negatives = static_cast<int64_t>(positive.size()) - positives;
  RocCurve curve;
  // Either rate divides by zero: scikit-learn's curve is NaN there and roc_auc_score an error.
  if (positives == 0 || negatives == 0) return curve;
  const Counts c = counts_per_threshold(positive, scores);
  curve.fpr = {0.0};
  curve.tpr = {0.0};
  curve.thresholds = {std::numeric_limits<double>::infinity()};
  for (size_t i = 0; i < c.tp.size(); ++i) {
    if (c.tp.size() > 2 && inside_a_run(c, i)) continue;
    curve.fpr.push_back(static_cast<double>(c.fp[i]) / static_cast<double>(negatives));
    curve.tpr.push_back(static_cast<double>(c.tp[i]) / static_cast<double>(positives));
    curve.thresholds.push_back(c.thresholds[i]);
  }
  double area = 0.0;
  for (size_t i = 1; i < curve.fpr.size(); ++i)
    area += (curve.fpr[i] - curve.fpr[i - 1]) * (curve.tpr[i] + curve.tpr[i - 1]) / 2.0;
  curve.auc = area;
  return curve;
}

}  // namespace ringtrain
