// The numbers of `ringtrain eval --report`, computed from predictions in the source's order: for
// classification the confusion matrix, per-class precision, recall, F1 and support, their macro and weighted
// averages, accuracy, and ROC curves with their AUC; for regression MAE, RMSE and R^2 in the target's units.
// Each is defined as scikit-learn defines it (sklearn.metrics), so that a report can be checked against it:
// a ratio whose denominator is 0 is 0 (zero_division=0), an ROC curve has a point per distinct score, and
// R^2 of a constant target is 1 for an exact prediction, else 0.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

namespace ringtrain {

// A receiver operating characteristic: (false positive rate, true positive rate) as the threshold falls
// through the distinct scores, from (0, 0) above every score to (1, 1) at the lowest. thresholds[0] is
// +infinity (nothing is called positive); tied scores make one point, so ties give a diagonal segment; a
// point inside a straight run of them is left out, as scikit-learn's roc_curve does (drop_intermediate).
struct RocCurve {
  std::vector<double> fpr, tpr, thresholds;
  // The area under the curve (trapezoids); none when the samples are all positive or all negative.
  std::optional<double> auc;
};

// `positive[i]`: whether sample i belongs to the class; `scores[i]`: the model's probability of it.
RocCurve roc_curve(const std::vector<bool>& positive, const std::vector<float>& scores);

struct ClassScores {
  double precision = 0.0, recall = 0.0, f1 = 0.0;
  int64_t support = 0;  // samples of the class
};

struct AverageScores {
  double precision = 0.0, recall = 0.0, f1 = 0.0;
};

struct ClassificationMetrics {
  int64_t classes = 0, samples = 0;
  std::vector<int64_t> confusion;  // classes x classes, row: the true class, column: the predicted one
  std::vector<ClassScores> per_class;
  AverageScores macro;     // the classes' plain mean, every class counted (one without samples scores 0)
  AverageScores weighted;  // weighted by support
  double accuracy = 0.0;
  // Two classes: one curve, of class 1 (the positive class) against class 0. More: one per class, that class
  // against the rest (one-vs-rest).
  std::vector<RocCurve> roc;
  // Two classes: the curve's AUC. More: the mean AUC of the classes that have one (a class without samples,
  // or with every sample, has none); none if no class has.
  std::optional<double> auc;
};

// labels, predicted: one class index per sample; probabilities: samples x classes. classes >= 2.
ClassificationMetrics classification_metrics(const std::vector<int32_t>& labels, const std::vector<int32_t>& predicted,
                                             const std::vector<float>& probabilities, int64_t classes);

struct RegressionScores {
  double mae = 0.0, rmse = 0.0, r2 = 0.0;
};

struct RegressionMetrics {
  int64_t targets = 0, samples = 0;
  std::vector<RegressionScores> per_target;
  RegressionScores overall;  // the targets' plain mean of each (scikit-learn's multioutput="uniform_average")
};

// truth, predicted: samples x targets, in the target's units.
RegressionMetrics regression_metrics(const std::vector<float>& truth, const std::vector<float>& predicted,
                                     int64_t targets);

}  // namespace ringtrain
