#include <gtest/gtest.h>

#include <cmath>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/nn/loss.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

// Central differences of scale * mean loss w.r.t. each output.
double loss_gradient_error(Loss& loss, Tensor out, const Targets& t) {
  loss.forward(out, t);
  const Tensor analytic = loss.backward(0.5f);
  double worst = 0.0;
  const float eps = 1e-2f;
  for (int64_t i = 0; i < out.numel(); ++i) {
    const float saved = out[i];
    out[i] = saved + eps;
    const double up = test::score_of(loss, out, t).loss();
    out[i] = saved - eps;
    const double down = test::score_of(loss, out, t).loss();
    out[i] = saved;
    const double numeric = 0.5 * (up - down) / (2.0 * eps);
    worst = std::max(worst, std::fabs(numeric - analytic[i]));
  }
  return worst;
}

TEST(Loss, CrossEntropyGradient) {
  SoftmaxCrossEntropy loss;
  Targets t;
  t.labels = {0, 3, 2};
  EXPECT_LT(loss_gradient_error(loss, test::random_tensor({3, 4}, 1, -3.0f, 3.0f), t), 1e-4);
}

TEST(Loss, CrossEntropyValueAndAccuracy) {
  SoftmaxCrossEntropy loss;
  Tensor logits({2, 3});
  logits[0] = 2.0f, logits[1] = 0.0f, logits[2] = 0.0f;     // predicts 0
  logits[3] = 0.0f, logits[4] = 0.0f, logits[5] = 1000.0f;  // predicts 2, stays finite
  Targets t;
  t.labels = {0, 1};
  const Score s = test::score_of(loss, logits, t);
  const double l0 = -std::log(std::exp(2.0) / (std::exp(2.0) + 2.0));
  EXPECT_NEAR(s.loss_sum, l0 + 1000.0, 1e-3);
  EXPECT_EQ(s.metric_sum, 1.0);
  EXPECT_EQ(s.samples, 2);
}

// A sequence model's logits [batch, T, classes] with a label per position: each position is a row, the loss
// the mean over rows of each row's cross-entropy (nats per token) and the gradient has the logits' shape.
TEST(Loss, CrossEntropyScoresEveryPositionOfASequence) {
  SoftmaxCrossEntropy loss;
  const Tensor logits = test::random_tensor({2, 3, 4}, 5, -3.0f, 3.0f);
  Targets t;
  t.labels = {0, 3, 2, 1, 1, 3};
  double by_hand = 0.0;
  for (int64_t r = 0; r < 6; ++r) {
    double sum = 0.0;
    for (int64_t j = 0; j < 4; ++j) sum += std::exp(static_cast<double>(logits[r * 4 + j]));
    by_hand += std::log(sum) - logits[r * 4 + t.labels[static_cast<size_t>(r)]];
  }
  const Score s = test::score_of(loss, logits, t);
  EXPECT_EQ(s.samples, 6);
  EXPECT_NEAR(s.loss(), by_hand / 6.0, 1e-5);
  EXPECT_EQ(loss.backward(1.0f).shape(), (Shape{2, 3, 4}));
  EXPECT_LT(loss_gradient_error(loss, logits, t), 1e-4);
  t.labels.pop_back();  // one label a sample is not enough
  EXPECT_NE(test::error_of([&] { loss.forward(logits, t); }).find("batch has 5 labels for 6 rows of outputs"),
            std::string::npos);
}

// PyTorch's CrossEntropyLoss(label_smoothing=eps) (mean over the batch) and its gradient, computed with
// torch 1.13 in float64 and written here:
//   z = torch.tensor([[2, -1, .5, 3], [0, 0, 0, 0], [-2, 4, 1, -.5]], dtype=torch.float64, requires_grad=True)
//   torch.nn.CrossEntropyLoss(label_smoothing=eps)(z, torch.tensor([0, 3, 1])).backward()  # z.grad
TEST(Loss, LabelSmoothingMatchesPyTorch) {
  const float logits[] = {2.0f, -1.0f, 0.5f, 3.0f, 0.0f, 0.0f, 0.0f, 0.0f, -2.0f, 4.0f, 1.0f, -0.5f};
  struct Reference {
    float eps;
    double loss;
    double grad[12];
  };
  const Reference references[] = {
      {0.1f, 1.0856112342355821,
       {-0.22481624271096173, -0.004175262232632229, 0.010301848472367365, 0.2186896564712267, 0.07500000000000001,
        0.07500000000000001, 0.07500000000000001, -0.225, -0.007556325346796505, 0.005134061209438651,
        0.0072732892698638375, -0.004851025132505843}},
      {0.3f, 1.3689445675689154,
       {-0.17481624271096172, -0.020841928899298895, -0.006364818194299304, 0.20202298980456, 0.058333333333333334,
        0.058333333333333334, 0.058333333333333334, -0.175, -0.02422299201346317, 0.055134061209438645,
        -0.00939337739680283, -0.021517691799172508}},
  };
  Tensor z({3, 4});
  for (int64_t i = 0; i < 12; ++i) z[i] = logits[i];
  Targets t;
  t.labels = {0, 3, 1};
  for (const Reference& r : references) {
    SoftmaxCrossEntropy loss(r.eps);
    EXPECT_NEAR(test::score_of(loss, z, t).loss(), r.loss, 1e-6) << "eps " << r.eps;
    const Tensor& grad = loss.backward(1.0f);
    for (int64_t i = 0; i < 12; ++i) EXPECT_NEAR(grad[i], r.grad[i], 1e-6) << "eps " << r.eps << ", logit " << i;
  }
  // Accuracy is the labels' own: smoothing changes the target, not which class is right.
  SoftmaxCrossEntropy smoothed(0.3f), plain;
  EXPECT_EQ(test::score_of(smoothed, z, t).metric_sum, test::score_of(plain, z, t).metric_sum);
}

TEST(Loss, LabelSmoothingGradient) {
  SoftmaxCrossEntropy loss(0.2f);
  Targets t;
  t.labels = {1, 0, 3};
  EXPECT_LT(loss_gradient_error(loss, test::random_tensor({3, 4}, 5, -3.0f, 3.0f), t), 1e-4);
}

TEST(Loss, CrossEntropyRejectsLabelOutOfRange) {
  SoftmaxCrossEntropy loss;
  Targets t;
  t.labels = {5};
  EXPECT_THROW(loss.forward(Tensor({1, 3}), t), Error);
}

TEST(Loss, MseGradientAndMae) {
  MeanSquaredError loss;
  Targets t;
  t.values = test::random_tensor({3, 2}, 2);
  EXPECT_LT(loss_gradient_error(loss, test::random_tensor({3, 2}, 1), t), 1e-4);
  Tensor out({2, 1});
  out[0] = 1.0f, out[1] = -2.0f;
  t.values = Tensor({2, 1});  // zeros
  const Score s = test::score_of(loss, out, t);
  EXPECT_DOUBLE_EQ(s.loss(), 2.5);    // (1 + 4) / 2
  EXPECT_DOUBLE_EQ(s.metric(), 1.5);  // (1 + 2) / 2
}

// Targets standardised as raw * 0.5 + shift: errors are twice as large in raw units, squares four times.
TEST(Loss, MseScoresInTheTargetsOwnUnits) {
  MeanSquaredError loss(0.5f);
  Tensor out({2, 1});
  out[0] = 1.0f, out[1] = -2.0f;
  Targets t;
  t.values = Tensor({2, 1});
  const Score s = test::score_of(loss, out, t);
  EXPECT_DOUBLE_EQ(s.loss(), 10.0);   // 2.5 * 4
  EXPECT_DOUBLE_EQ(s.metric(), 3.0);  // 1.5 * 2
  EXPECT_EQ(make_loss(TargetSpace{false, 0.5f, 3.0f})->name(), "mse");
}

TEST(Loss, MseRejectsMismatchedTargets) {
  MeanSquaredError loss;
  Targets t;
  t.values = Tensor({2, 3});
  EXPECT_THROW(loss.forward(Tensor({2, 1}), t), Error);
}

}  // namespace
}  // namespace ringtrain
