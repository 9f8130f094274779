#include <cmath>

#include "ringtrain/train/report/metrics.hpp"

namespace ringtrain {

namespace {

// One target's scores: column `t` of samples x targets.
RegressionScores scores_of_target(const std::vector<float>& truth, const std::vector<float>& predicted,
                                  int64_t targets, int64_t t) {
  const auto n = static_cast<int64_t>(truth.size()) / targets;
  double mean = 0.0;
  for (int64_t i = 0; i < n; ++i) mean += truth[static_cast<size_t>(i * targets + t)];
  mean /= static_cast<double>(n);
  double absolute = 0.0, squared = 0.0, spread = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double y = truth[static_cast<size_t>(i * targets + t)];
    const double error = static_cast<double>(predicted[static_cast<size_t>(i * targets + t)]) - y;
    absolute += std::fabs(error);
    squared += error * error;
    spread += (y - mean) * (y - mean);
  }
  RegressionScores s;
  s.mae = absolute / static_cast<double>(n);
  s.rmse = std::sqrt(squared / static_cast<double>(n));
  // A constant target has no variance to explain: scikit-learn (force_finite) scores it 1 when the
  // prediction is exact and 0 otherwise, rather than dividing by zero.
  s.r2 = spread > 0.0 ? 1.0 - squared / spread : squared == 0.0 ? 1.0 : 0.0;
  return s;
}

}  // namespace

RegressionMetrics regression_metrics(const std::vector<float>& truth, const std::vector<float>& predicted,
                                     int64_t targets) {
  RegressionMetrics m;
  m.targets = targets;
  m.samples = static_cast<int64_t>(truth.size()) / targets;
  if (m.samples == 0) return m;
  for (int64_t t = 0; t < targets; ++t) {
    m.per_target.push_back(scores_of_target(truth, predicted, targets, t));
    m.overall.mae += m.per_target.back().mae / static_cast<double>(targets);
    m.overall.rmse += m.per_target.back().rmse / static_cast<double>(targets);
    m.overall.r2 += m.per_target.back().r2 / static_cast<double>(targets);
  }
  return m;
}

}  // namespace ringtrain
