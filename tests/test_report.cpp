// eval --report's numbers (train/report/metrics.hpp) on cases worked out by hand: ROC curves with tied
// scores, a class the model never predicts, a class without samples, support-weighted averages, and
// regression errors with a constant target. The comparison with scikit-learn on a trained model's
// predictions is tests/report_vs_sklearn.py.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/train/report/metrics.hpp"
#include "ringtrain/train/report/report.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

constexpr double kTight = 1e-12;

TEST(RocCurve, TiedScoresMakeOnePointAndADiagonalSegment) {
  // A positive and a negative share 0.9: the curve moves up and right at once, and that pair counts half.
  const RocCurve c = roc_curve({true, false, true, false}, {0.9f, 0.9f, 0.5f, 0.1f});
  ASSERT_EQ(c.fpr.size(), 4u);
  const double fpr[] = {0.0, 0.5, 0.5, 1.0}, tpr[] = {0.0, 0.5, 1.0, 1.0};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_DOUBLE_EQ(c.fpr[i], fpr[i]) << i;
    EXPECT_DOUBLE_EQ(c.tpr[i], tpr[i]) << i;
  }
  EXPECT_EQ(c.thresholds[0], std::numeric_limits<double>::infinity());
  EXPECT_DOUBLE_EQ(c.thresholds[1], 0.9f);
  EXPECT_DOUBLE_EQ(c.thresholds[3], 0.1f);
  // Pairs (positive, negative) ranked right: (0.9, 0.1), (0.5, 0.1), and (0.9, 0.9) half: 2.5 of 4.
  ASSERT_TRUE(c.auc);
  EXPECT_NEAR(*c.auc, 0.625, kTight);
}

TEST(RocCurve, PointsInsideAStraightRunAreLeftOut) {
  // Three positives above the negative: the climb up the left edge keeps its ends.
  const RocCurve c = roc_curve({true, true, true, false}, {0.9f, 0.8f, 0.7f, 0.1f});
  EXPECT_EQ(c.tpr, (std::vector<double>{0.0, 1.0 / 3.0, 1.0, 1.0}));
  EXPECT_EQ(c.fpr, (std::vector<double>{0.0, 0.0, 0.0, 1.0}));
  EXPECT_DOUBLE_EQ(c.thresholds[2], 0.7f);
  EXPECT_NEAR(*c.auc, 1.0, kTight);
}

TEST(RocCurve, PerfectAndReversedRankings) {
  EXPECT_NEAR(*roc_curve({true, true, false}, {0.8f, 0.7f, 0.1f}).auc, 1.0, kTight);
  EXPECT_NEAR(*roc_curve({false, false, true}, {0.8f, 0.7f, 0.1f}).auc, 0.0, kTight);
  EXPECT_NEAR(*roc_curve({true, false}, {0.5f, 0.5f}).auc, 0.5, kTight);  // all tied: the diagonal
}

TEST(RocCurve, IsUndefinedWithoutBothClasses) {
  const RocCurve c = roc_curve({true, true}, {0.2f, 0.4f});
  EXPECT_FALSE(c.auc);
  EXPECT_TRUE(c.fpr.empty());
  EXPECT_FALSE(roc_curve({false, false}, {0.2f, 0.4f}).auc);
}

// Six samples of three classes; class 2 (one sample) is never predicted. Probabilities give predicted's
// argmax.
struct ThreeClasses {
  std::vector<int32_t> labels{0, 0, 0, 1, 1, 2};
  std::vector<int32_t> predicted{0, 0, 1, 1, 1, 0};
  std::vector<float> probabilities{0.7f, 0.2f, 0.1f, 0.6f, 0.3f, 0.1f, 0.4f, 0.5f, 0.1f,
                                   0.2f, 0.7f, 0.1f, 0.3f, 0.6f, 0.1f, 0.5f, 0.3f, 0.2f};
};

TEST(ClassificationMetrics, ConfusionMatrixAndPerClassScores) {
  const ThreeClasses d;
  const ClassificationMetrics m = classification_metrics(d.labels, d.predicted, d.probabilities, 3);
  EXPECT_EQ(m.samples, 6);
  EXPECT_EQ(m.confusion, (std::vector<int64_t>{2, 1, 0, 0, 2, 0, 1, 0, 0}));
  EXPECT_NEAR(m.accuracy, 4.0 / 6.0, kTight);
  // class 0: 2 of the 3 predicted 0 are right, 2 of its 3 found.
  EXPECT_NEAR(m.per_class[0].precision, 2.0 / 3.0, kTight);
  EXPECT_NEAR(m.per_class[0].recall, 2.0 / 3.0, kTight);
  EXPECT_NEAR(m.per_class[0].f1, 2.0 / 3.0, kTight);
  EXPECT_EQ(m.per_class[0].support, 3);
  // class 1: 2 of 3 predicted right, both found; F1 = 2 (2/3)(1) / (5/3) = 0.8.
  EXPECT_NEAR(m.per_class[1].precision, 2.0 / 3.0, kTight);
  EXPECT_NEAR(m.per_class[1].recall, 1.0, kTight);
  EXPECT_NEAR(m.per_class[1].f1, 0.8, kTight);
  // class 2, never predicted: precision 0/0 is 0 (scikit-learn's zero_division=0), and so are recall and F1.
  EXPECT_EQ(m.per_class[2].precision, 0.0);
  EXPECT_EQ(m.per_class[2].recall, 0.0);
  EXPECT_EQ(m.per_class[2].f1, 0.0);
  EXPECT_EQ(m.per_class[2].support, 1);
}

TEST(ClassificationMetrics, MacroAndWeightedAverages) {
  const ThreeClasses d;
  const ClassificationMetrics m = classification_metrics(d.labels, d.predicted, d.probabilities, 3);
  EXPECT_NEAR(m.macro.precision, 4.0 / 9.0, kTight);
  EXPECT_NEAR(m.macro.recall, 5.0 / 9.0, kTight);
  EXPECT_NEAR(m.macro.f1, 22.0 / 45.0, kTight);
  // Supports 3, 2, 1 of 6.
  EXPECT_NEAR(m.weighted.precision, 5.0 / 9.0, kTight);
  EXPECT_NEAR(m.weighted.recall, 2.0 / 3.0, kTight);
  EXPECT_NEAR(m.weighted.f1, 0.6, kTight);
}

TEST(ClassificationMetrics, OneVersusRestAucPerClassAndTheirMean) {
  const ThreeClasses d;
  const ClassificationMetrics m = classification_metrics(d.labels, d.predicted, d.probabilities, 3);
  ASSERT_EQ(m.roc.size(), 3u);
  // class 0's scores 0.7, 0.6, 0.4 against 0.2, 0.3, 0.5: 8 of 9 pairs in order.
  EXPECT_NEAR(*m.roc[0].auc, 8.0 / 9.0, kTight);
  EXPECT_NEAR(*m.roc[1].auc, 1.0, kTight);
  EXPECT_NEAR(*m.roc[2].auc, 1.0, kTight);
  EXPECT_NEAR(*m.auc, 26.0 / 27.0, kTight);
}

TEST(ClassificationMetrics, BinaryHasOneCurveOfClassOne) {
  const ClassificationMetrics m = classification_metrics({0, 1, 1, 0}, {0, 1, 0, 0},
                                                         {0.8f, 0.2f, 0.3f, 0.7f, 0.6f, 0.4f, 0.9f, 0.1f}, 2);
  ASSERT_EQ(m.roc.size(), 1u);
  // Class 1's probabilities: positives 0.7, 0.4 against negatives 0.2, 0.1: all in order.
  EXPECT_NEAR(*m.auc, 1.0, kTight);
  EXPECT_NEAR(m.accuracy, 0.75, kTight);
}

TEST(ClassificationMetrics, AClassWithoutSamplesHasNoAucAndStaysOutOfTheMean) {
  // Class 2 is in the model but not in the data: no ROC curve; the macro scores still count it (as 0).
  const ClassificationMetrics m = classification_metrics(
      {0, 1, 0, 1}, {0, 1, 1, 1}, {0.6f, 0.3f, 0.1f, 0.2f, 0.7f, 0.1f, 0.3f, 0.6f, 0.1f, 0.1f, 0.8f, 0.1f}, 3);
  EXPECT_EQ(m.per_class[2].support, 0);
  EXPECT_FALSE(m.roc[2].auc);
  EXPECT_NEAR(*m.roc[0].auc, 1.0, kTight);
  EXPECT_NEAR(*m.roc[1].auc, 1.0, kTight);
  EXPECT_NEAR(*m.auc, 1.0, kTight);
  EXPECT_NEAR(m.macro.recall, (0.5 + 1.0 + 0.0) / 3.0, kTight);
}

TEST(RegressionMetrics, ErrorsAndExplainedVariance) {
  // Errors 0.5, 0, -1, 1 around a target of mean 2.5 (sum of squares 5).
  const RegressionMetrics m = regression_metrics({1, 2, 3, 4}, {1.5f, 2, 2, 5}, 1);
  EXPECT_EQ(m.samples, 4);
  EXPECT_NEAR(m.overall.mae, 0.625, kTight);
  EXPECT_NEAR(m.overall.rmse, 0.75, kTight);
  EXPECT_NEAR(m.overall.r2, 1.0 - 2.25 / 5.0, kTight);
}

TEST(RegressionMetrics, AConstantTargetScoresOneWhenExactElseZero) {
  // Two targets, samples x targets: the second is constant, predicted exactly, then not.
  const RegressionMetrics exact = regression_metrics({1, 7, 2, 7, 3, 7}, {1, 7, 2, 7, 3, 7}, 2);
  EXPECT_EQ(exact.per_target[1].r2, 1.0);
  const RegressionMetrics off = regression_metrics({1, 7, 2, 7, 3, 7}, {1, 7, 2, 8, 3, 7}, 2);
  EXPECT_EQ(off.per_target[1].r2, 0.0);
  EXPECT_EQ(off.per_target[0].r2, 1.0);
  // The overall scores are the targets' plain means (scikit-learn's uniform_average).
  EXPECT_NEAR(off.overall.r2, 0.5, kTight);
  EXPECT_NEAR(off.overall.mae, (0.0 + 1.0 / 3.0) / 2.0, kTight);
  EXPECT_NEAR(off.overall.rmse, (0.0 + std::sqrt(1.0 / 3.0)) / 2.0, kTight);
}

TEST(ReportFiles, HoldTheNumbersAndReplaceOnlyTheirOwnFiles) {
  test::TempDir dir;
  const std::string out = dir.path("report");
  std::filesystem::create_directories(out);
  std::ofstream(dir.path("report/notes.txt")) << "mine";
  prepare_report_dir(out, {});
  const ThreeClasses d;
  ReportSubject subject{"m.h5", "test-00000.h5", {"cat", "dog, big", "bird"}};
  write_classification_report(out, subject, classification_metrics(d.labels, d.predicted, d.probabilities, 3));
  const std::string json = test::read_text(dir.path("report/report.json"));
  EXPECT_NE(json.find("\"class_names\": [\"cat\", \"dog, big\", \"bird\"]"), std::string::npos) << json;
  EXPECT_NE(json.find("\"accuracy\": 0.66666666666666663"), std::string::npos) << json;
  EXPECT_NE(json.find("\"roc_auc\": 0.96296296296296"), std::string::npos) << json;
  EXPECT_NE(json.find("[2, 1, 0]"), std::string::npos) << json;
  // A name holding the separator is quoted in the CSV files.
  EXPECT_EQ(test::read_text(dir.path("report/confusion_matrix.csv")),
            "true\\predicted,cat,\"dog, big\",bird\ncat,2,1,0\n\"dog, big\",0,2,0\nbird,1,0,0\n");
  EXPECT_NE(test::read_text(dir.path("report/per_class.csv")).find("2,bird,0,0,0,1\n"), std::string::npos);
  EXPECT_NE(test::read_text(dir.path("report/roc.csv")).find("0,cat,0,0,inf\n"), std::string::npos);
  EXPECT_EQ(test::read_text(dir.path("report/notes.txt")), "mine");
}

TEST(ReportFiles, ADirectoryThatIsAFileIsRefused) {
  test::TempDir dir;
  std::ofstream(dir.path("report")) << "a file";
  try {
    prepare_report_dir(dir.path("report"), {});
    FAIL() << "a file was taken for the report's directory";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is a file; it names the directory"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ringtrain
