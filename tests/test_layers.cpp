// Numeric gradient checks for every layer: input gradients and parameter gradients against central
// differences of L = sum(w .* layer(x)).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <tuple>

#include "ringtrain/nn/activation.hpp"
#include "ringtrain/nn/batchnorm.hpp"
#include "ringtrain/nn/conv2d.hpp"
#include "ringtrain/nn/dropout.hpp"
#include "ringtrain/nn/linear.hpp"
#include "ringtrain/nn/model_spec.hpp"
#include "ringtrain/nn/pool2d.hpp"
#include "ringtrain/nn/residual.hpp"
#include "ringtrain/tensor/error.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

using test::gradient_error;
using test::kGradientTolerance;
using test::random_tensor;


Shape batched(int64_t n, const Shape& sample) {
  Shape s = {n};
  s.insert(s.end(), sample.begin(), sample.end());
  return s;
}

void check_all_gradients(Layer& layer, const Shape& sample_in, int64_t batch = 3) {
  Rng init(7);
  layer.build(sample_in, init);
  Tensor x = test::spaced_tensor(batched(batch, sample_in), 11);
  const float eps = std::min(1e-2f, 0.8f / static_cast<float>(x.numel()));  // under half the spacing
  EXPECT_LT(gradient_error(layer, x, nullptr, Mode::train, eps), kGradientTolerance)
      << layer.spec() << " input gradient";
  for (Param* p : layer.params())
    EXPECT_LT(gradient_error(layer, x, p), kGradientTolerance) << layer.spec() << " " << p->name;
}

TEST(LayerGradients, Linear) {
  Linear layer(5, true);
  check_all_gradients(layer, {7});
}

TEST(LayerGradients, LinearWithoutBiasOnImageInput) {
  Linear layer(4, false);
  check_all_gradients(layer, {2, 3, 3});
  EXPECT_EQ(layer.params().size(), 1u);
}

TEST(LayerGradients, Conv2dPadded) {
  Conv2d layer(4, 3, 1, 1, true);
  check_all_gradients(layer, {2, 6, 5});
}

TEST(LayerGradients, Conv2dStridedUnpadded) {
  Conv2d layer(3, 3, 2, 0, true);
  check_all_gradients(layer, {2, 7, 8});
}

TEST(LayerGradients, Conv2dWideKernelStridePad) {
  Conv2d layer(2, 5, 2, 2, false);
  check_all_gradients(layer, {3, 9, 9});
}

TEST(LayerGradients, Conv2dManyChannelsFewTaps) {
  // An even kernel with padding on both sides: the output is one larger than the input.
  Conv2d layer(6, 2, 1, 1, true);
  check_all_gradients(layer, {2, 5, 4});
}

TEST(LayerGradients, Conv2dUnpaddedStrideOne) {
  // The stride-1 input gradient as a convolution of dy padded by kernel - 1 - pad: here the widest padding.
  Conv2d layer(3, 3, 1, 0, true);
  check_all_gradients(layer, {2, 6, 5});
}

TEST(LayerGradients, Conv2dBlockedLayouts) {
  // 16 channels in and out: oneDNN computes in its blocked layouts, and the layer converts on the way in and out.
  Conv2d layer(16, 3, 1, 1, true);
  check_all_gradients(layer, {16, 4, 5}, 2);
}

TEST(LayerGradients, Conv2dStridedProjection) {
  // A ResNet shortcut: 1x1, stride 2, no bias.
  Conv2d layer(16, 1, 2, 0, false);
  check_all_gradients(layer, {16, 5, 5}, 2);
}

TEST(LayerGradients, MaxPool2x2) {
  Pool2d layer(PoolKind::max, 2, 2);
  check_all_gradients(layer, {2, 4, 34}, 1);  // 17 outputs per row: a full AVX-512 block and a masked tail
}

TEST(LayerGradients, MaxPoolOddSizesAndOverlap) {
  Pool2d a(PoolKind::max, 2, 2);
  check_all_gradients(a, {2, 7, 5});
  Pool2d b(PoolKind::max, 3, 2);
  check_all_gradients(b, {2, 7, 7});
}

TEST(LayerGradients, AvgPool) {
  Pool2d a(PoolKind::avg, 2, 2);
  check_all_gradients(a, {2, 6, 6});
  Pool2d b(PoolKind::avg, 3, 1);
  check_all_gradients(b, {1, 5, 6});
}

TEST(LayerGradients, Activations) {
  for (ActivationKind k : {ActivationKind::relu, ActivationKind::tanh, ActivationKind::sigmoid, ActivationKind::gelu}) {
    Activation layer(k);
    check_all_gradients(layer, {4, 5});
  }
  Activation leaky(ActivationKind::leaky_relu, 0.2f), elu(ActivationKind::elu, 0.7f);
  check_all_gradients(leaky, {4, 5});
  check_all_gradients(elu, {4, 5});
}

// PyTorch's definitions of LeakyReLU(0.2), ELU(0.7) and GELU() (exact, erf), evaluated in float64.
TEST(Activations, MatchPyTorchsDefinitions) {
  Tensor x({1, 4});
  x[0] = -2.0f, x[1] = -0.5f, x[2] = 0.0f, x[3] = 1.5f;
  auto values = [&](ActivationKind kind, float param) {
    Activation layer(kind, param);
    const Tensor& y = layer.forward(x, Mode::eval);
    return std::vector<float>(y.data(), y.data() + 4);
  };
  const std::vector<float> leaky = values(ActivationKind::leaky_relu, 0.2f), elu = values(ActivationKind::elu, 0.7f),
                           gelu = values(ActivationKind::gelu, 0.0f);
  const float want_leaky[] = {-0.4f, -0.1f, 0.0f, 1.5f};
  const float want_elu[] = {-0.60526530f, -0.27542854f, 0.0f, 1.5f};        // 0.7 (e^x - 1)
  const float want_gelu[] = {-0.04550026f, -0.15426877f, 0.0f, 1.39978920f};  // x Phi(x)
  for (int i = 0; i < 4; ++i) {
    EXPECT_FLOAT_EQ(leaky[static_cast<size_t>(i)], want_leaky[i]);
    EXPECT_NEAR(elu[static_cast<size_t>(i)], want_elu[i], 1e-6);
    EXPECT_NEAR(gelu[static_cast<size_t>(i)], want_gelu[i], 1e-6);
  }
}

TEST(LayerGradients, BatchNormFeatures) {
  BatchNorm layer(0.1f, 1e-5f);
  check_all_gradients(layer, {6}, 5);
}

TEST(LayerGradients, BatchNormChannels) {
  BatchNorm layer(0.1f, 1e-5f);
  check_all_gradients(layer, {3, 4, 4}, 2);
}

TEST(LayerGradients, BatchNormWithAFoldedRelu) {
  BatchNorm layer(0.1f, 1e-5f);
  ASSERT_TRUE(layer.fold_relu());
  check_all_gradients(layer, {3, 4, 4}, 2);
}

TEST(LayerGradients, PaddedPooling) {
  Pool2d max(PoolKind::max, 3, 2, 1), avg(PoolKind::avg, 3, 2, 1), wide(PoolKind::max, 2, 1, 1);
  check_all_gradients(max, {2, 7, 6});
  check_all_gradients(avg, {2, 7, 6});
  check_all_gradients(wide, {1, 4, 5});
}

TEST(LayerGradients, GlobalAvgPool) {
  GlobalAvgPool layer;
  check_all_gradients(layer, {3, 4, 5});
}

std::unique_ptr<Layer> layer_from_spec(const std::string& text) {
  return make_layer(parse_model_spec(text).front(), 0);
}

// The block's own gradient (the sum of its two paths, the folded ReLU) and its parts' parameter gradients.
// Smooth bodies: a batchnorm's output sits near ReLU's kink wherever its mean is, so central differences
// across a ReLU after it measure the kink, not the gradient (Model.FoldedRelusGiveBitwiseTheSameResults
// pins the folded ReLUs against the plain layer instead).
TEST(LayerGradients, ResidualWithAnIdentityShortcut) {
  auto block = layer_from_spec("residual(conv(3,3,pad=1),batchnorm,sigmoid,conv(3,3,pad=1),batchnorm)");
  check_all_gradients(*block, {3, 5, 5}, 2);
  auto relu_after = layer_from_spec("residual(conv(3,3,pad=1),tanh,conv(3,3,pad=1))");
  ASSERT_TRUE(relu_after->fold_relu());
  check_all_gradients(*relu_after, {3, 5, 5}, 2);
}

TEST(LayerGradients, ResidualWithAProjectionShortcut) {
  auto block = layer_from_spec("residual(conv(4,3,stride=2,pad=1),batchnorm,sigmoid,conv(4,3,pad=1),"
                               "shortcut=conv(4,1,stride=2),batchnorm)");
  check_all_gradients(*block, {2, 6, 5}, 2);
}

TEST(LayerGradients, NestedResidualBlocks) {
  auto block = layer_from_spec("residual(linear(5),tanh,residual(linear(5),sigmoid),shortcut=linear(5))");
  check_all_gradients(*block, {4});
}

TEST(Residual, AddsTheBodyToItsInput) {
  auto block = layer_from_spec("residual(linear(3,bias=0))");
  Rng init(2);
  block->build({3}, init);
  Tensor& w = block->params()[0]->value;
  w.fill(0.0f);
  for (int64_t i = 0; i < 3; ++i) w[i * 3 + i] = 2.0f;  // body(x) = 2x
  Tensor x({2, 3});
  for (int64_t i = 0; i < 6; ++i) x[i] = static_cast<float>(i) - 2.5f;
  const Tensor& y = block->forward(x, Mode::train);
  for (int64_t i = 0; i < 6; ++i) EXPECT_FLOAT_EQ(y[i], 3.0f * x[i]);
  ASSERT_TRUE(block->fold_relu());
  const Tensor& clamped = block->forward(x, Mode::train);
  for (int64_t i = 0; i < 6; ++i) EXPECT_FLOAT_EQ(clamped[i], std::max(0.0f, 3.0f * x[i]));
}

// PyTorch: F.max_pool2d(x, 3, 2, 1) and F.avg_pool2d(x, 3, 2, 1) (count_include_pad=True) of
// x = arange(16).reshape(1, 1, 4, 4): [[5, 7], [13, 15]] and [[10/9, 24/9], [51/9, 90/9]].
TEST(Pool2d, PaddingMatchesPyTorch) {
  Tensor x({1, 1, 4, 4});
  for (int64_t i = 0; i < 16; ++i) x[i] = static_cast<float>(i);
  Pool2d max(PoolKind::max, 3, 2, 1), avg(PoolKind::avg, 3, 2, 1);
  Rng init(1);
  EXPECT_EQ(max.build({1, 4, 4}, init), (Shape{1, 2, 2}));
  avg.build({1, 4, 4}, init);
  const Tensor& m = max.forward(x, Mode::train);
  const Tensor& a = avg.forward(x, Mode::train);
  const float want_max[] = {5, 7, 13, 15}, want_avg[] = {10.0f / 9, 24.0f / 9, 51.0f / 9, 90.0f / 9};
  for (int64_t i = 0; i < 4; ++i) {
    EXPECT_EQ(m[i], want_max[i]);
    EXPECT_FLOAT_EQ(a[i], want_avg[i]);
  }
  EXPECT_EQ(max.spec(), "maxpool(3,stride=2,pad=1)");
}

TEST(LayerGradients, Flatten) {
  Flatten layer;
  check_all_gradients(layer, {2, 3, 4});
}

// A pipeline stage runs the backward of an earlier micro-batch after the forward of a later one, which may
// be of another size (the last, short one).
TEST(Flatten, BackwardTakesTheBatchOfItsGradient) {
  Flatten layer;
  Rng init(1);
  layer.build({2, 3}, init);
  layer.forward(random_tensor({5, 2, 3}, 1), Mode::train);
  layer.forward(random_tensor({2, 2, 3}, 2), Mode::train);
  const Tensor dy = random_tensor({5, 6}, 3);
  const Tensor& dx = layer.backward(dy);
  EXPECT_EQ(dx.shape(), (Shape{5, 2, 3}));
  for (int64_t i = 0; i < dy.numel(); ++i) EXPECT_EQ(dx[i], dy[i]);
}

TEST(Dropout, BackwardUsesTheForwardMaskAndScalesKeptValues) {
  Dropout layer(0.25f);
  Rng init(3);
  layer.build({1000}, init);
  Tensor x = random_tensor({4, 1000}, 5);
  const Tensor y = layer.forward(x, Mode::train);
  Tensor dy = random_tensor({4, 1000}, 6);
  const Tensor dx = layer.backward(dy);
  int64_t dropped = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    if (y[i] == 0.0f) {
      ++dropped;
      EXPECT_EQ(dx[i], 0.0f);
    } else {
      EXPECT_FLOAT_EQ(y[i], x[i] / 0.75f);
      EXPECT_FLOAT_EQ(dx[i], dy[i] / 0.75f);
    }
  }
  EXPECT_NEAR(static_cast<double>(dropped) / static_cast<double>(x.numel()), 0.25, 0.03);
}

TEST(Dropout, IsIdentityInEvaluation) {
  Dropout layer(0.5f);
  Rng init(3);
  layer.build({10}, init);
  Tensor x = random_tensor({2, 10}, 5);
  const Tensor& y = layer.forward(x, Mode::eval);
  for (int64_t i = 0; i < x.numel(); ++i) EXPECT_EQ(y[i], x[i]);
}

TEST(BatchNorm, EvaluationUsesRunningStatistics) {
  BatchNorm layer(1.0f, 1e-5f);  // momentum 1: running stats become the last batch's
  Rng init(3);
  layer.build({2}, init);
  Tensor x({4, 2});
  for (int64_t i = 0; i < 4; ++i) x[i * 2] = static_cast<float>(i), x[i * 2 + 1] = 10.0f;
  layer.forward(x, Mode::train);
  const Tensor& y = layer.forward(x, Mode::eval);
  // Feature 0: mean 1.5, unbiased variance 5/3.
  EXPECT_NEAR(y[0], (0.0f - 1.5f) / std::sqrt(5.0f / 3.0f + 1e-5f), 1e-5);
  EXPECT_NEAR(y[1], 0.0f, 1e-5);
}

using test::samples_of;

// max |got - want| / max |want| over `want`'s elements, starting at element `offset` of `want`.
double relative_difference(const Tensor& got, const Tensor& want, int64_t offset = 0) {
  double worst = 0.0, scale = 1e-30;
  for (int64_t i = 0; i < got.numel(); ++i) {
    worst = std::max(worst, std::fabs(static_cast<double>(got[i]) - want[offset + i]));
    scale = std::max(scale, std::fabs(static_cast<double>(want[offset + i])));
  }
  return worst / scale;
}

// Sync batchnorm (Layer::share_batch_statistics): two layers with one set of parameters on the two halves of
// a batch, their sums paired as two replicas' are, compute what one layer computes on the whole batch: the
// outputs and input gradients of their samples, the running statistics, and gamma's and beta's gradients
// once the halves' are added (as the gradient averager adds the replicas'). The halves' samples are offset
// from each other, so that either half's own statistics are far from the whole batch's.
void expect_sync_halves_equal_whole(const Shape& sample, int64_t half, bool relu) {
  SCOPED_TRACE(shape_str(sample) + (relu ? " with a folded ReLU" : ""));
  BatchNorm whole(0.1f, 1e-5f), a(0.1f, 1e-5f), b(0.1f, 1e-5f);
  const int64_t channels = sample[0];
  const Tensor gamma = random_tensor({channels}, 3, 0.5f, 1.5f), beta = random_tensor({channels}, 4);
  for (BatchNorm* layer : {&whole, &a, &b}) {
    Rng init(1);
    layer->build(sample, init);
    if (relu) ASSERT_TRUE(layer->fold_relu());
    layer->params()[0]->value.copy_from(gamma);
    layer->params()[1]->value.copy_from(beta);
  }
  Tensor x = test::spaced_tensor(batched(2 * half, sample), 11);
  const int64_t per_sample = x.numel() / x.dim(0);
  for (int64_t i = 0; i < x.numel(); ++i) x[i] = 3.0f + x[i] + (i < half * per_sample ? 0.0f : 1.5f);
  const Tensor dy = random_tensor(x.shape(), 12);
  const Tensor& y = whole.forward(x, Mode::train);
  const Tensor& dx = whole.backward(dy);

  test::PairedReplicas pair;
  a.share_batch_statistics(&pair.side(0));
  b.share_batch_statistics(&pair.side(1));
  const Tensor xa = samples_of(x, 0, half), xb = samples_of(x, half, half);
  const Tensor dya = samples_of(dy, 0, half), dyb = samples_of(dy, half, half);
  const Tensor *ya = nullptr, *yb = nullptr, *dxa = nullptr, *dxb = nullptr;
  pair.run([&] { ya = &a.forward(xa, Mode::train), dxa = &a.backward(dya); },
           [&] { yb = &b.forward(xb, Mode::train), dxb = &b.backward(dyb); });
  EXPECT_EQ(pair.sums(), 3) << "forward's two passes and backward's gradient sums";

  constexpr double kSame = 1e-5;  // two float summation orders of one formula
  const int64_t offset = half * per_sample;
  EXPECT_LT(relative_difference(*ya, y), kSame) << "first half's output";
  EXPECT_LT(relative_difference(*yb, y, offset), kSame) << "second half's output";
  EXPECT_LT(relative_difference(*dxa, dx), kSame) << "first half's input gradient";
  EXPECT_LT(relative_difference(*dxb, dx, offset), kSame) << "second half's input gradient";
  for (size_t p = 0; p < 2; ++p) {
    Tensor added = a.params()[p]->grad;
    for (int64_t c = 0; c < channels; ++c) added[c] += b.params()[p]->grad[c];
    EXPECT_LT(relative_difference(added, whole.params()[p]->grad), kSame) << whole.params()[p]->name << " gradient";
  }
  for (size_t k = 0; k < 2; ++k) {
    const NamedTensor want = whole.buffers()[k];
    EXPECT_LT(relative_difference(*a.buffers()[k].tensor, *want.tensor), kSame) << want.name;
    EXPECT_LT(relative_difference(*b.buffers()[k].tensor, *want.tensor), kSame) << want.name;
  }
}

TEST(BatchNorm, SyncStatisticsOverTwoHalvesEqualTheWholeBatch) {
  for (bool relu : {false, true}) {
    expect_sync_halves_equal_whole({5}, 4, relu);
    expect_sync_halves_equal_whole({3, 4, 5}, 3, relu);
  }
}

// The pairing itself must not let a broken replica hang a test: a sum the other replica never joins throws.
TEST(BatchNorm, ASumTheOtherReplicaNeverJoinsThrows) {
  test::PairedReplicas pair;
  double v = 1.0;
  EXPECT_THROW(pair.run([] {}, [&] { pair.side(1).sum(&v, 1); }), Error);
  pair.run([&] { pair.side(0).sum(&v, 1); }, [&] {
    double w = 2.0;
    pair.side(1).sum(&w, 1);
    EXPECT_EQ(w, 3.0);
  });
  EXPECT_EQ(v, 3.0);
  EXPECT_EQ(pair.sums(), 1);
}

TEST(Conv2d, MatchesDirectConvolution) {
  Conv2d layer(2, 3, 2, 1, true);
  Rng init(1);
  layer.build({2, 5, 5}, init);
  Tensor x = random_tensor({2, 2, 5, 5}, 4);
  const Tensor& y = layer.forward(x, Mode::eval);
  const Tensor& w = layer.params()[0]->value;
  const Tensor& b = layer.params()[1]->value;
  ASSERT_EQ(y.shape(), (Shape{2, 2, 3, 3}));
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t o = 0; o < 2; ++o)
      for (int64_t i = 0; i < 3; ++i)
        for (int64_t j = 0; j < 3; ++j) {
          double s = b[o];
          for (int64_t c = 0; c < 2; ++c)
            for (int64_t ki = 0; ki < 3; ++ki)
              for (int64_t kj = 0; kj < 3; ++kj) {
                const int64_t ih = i * 2 - 1 + ki, iw = j * 2 - 1 + kj;
                if (ih < 0 || ih >= 5 || iw < 0 || iw >= 5) continue;
                s += w[((o * 2 + c) * 3 + ki) * 3 + kj] * x[((n * 2 + c) * 5 + ih) * 5 + iw];
              }
          EXPECT_NEAR(y[((n * 2 + o) * 3 + i) * 3 + j], s, 1e-5);
        }
}

// Results are bitwise repeatable at a fixed thread count, also when other batch sizes (a pipeline's
// micro-batches, the last evaluation batch) ran in between on primitives of their own; for the direct
// algorithm and for Winograd (64 channels on 14x14, where the CPU has it).
TEST(Conv2d, BitwiseRepeatableAcrossBatchSizes) {
  for (const auto& [channels, size, stride] : {std::tuple{16, 9, 2}, std::tuple{64, 14, 1}}) {
    Conv2d layer(channels, 3, stride, 1, true);
    layer.fold_relu();
    Rng init(1);
    const Shape out = layer.build({channels, size, size}, init);
    const Tensor x = random_tensor(batched(4, {channels, size, size}), 2), dy = random_tensor(batched(4, out), 3);
    const Tensor other = random_tensor(batched(3, {channels, size, size}), 4);
    auto step = [&] {
      for (Param* p : layer.params()) p->grad.fill(0.0f);
      std::vector<float> result;
      const Tensor& y = layer.forward(x, Mode::train);
      result.assign(y.data(), y.data() + y.numel());
      const Tensor& dx = layer.backward(dy);
      result.insert(result.end(), dx.data(), dx.data() + dx.numel());
      for (Param* p : layer.params()) result.insert(result.end(), p->grad.data(), p->grad.data() + p->grad.numel());
      return result;
    };
    const std::vector<float> first = step();
    layer.forward(other, Mode::eval);
    EXPECT_EQ(step(), first) << layer.spec() << " on " << channels << " channels";
  }
}

// The largest difference between `got` and `want`, relative to want's largest magnitude.
double relative_error(const Tensor& got, const std::vector<double>& want) {
  double worst = 0.0, scale = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    worst = std::max(worst, std::fabs(got[static_cast<int64_t>(i)] - want[i]));
    scale = std::max(scale, std::fabs(want[i]));
  }
  return worst / scale;
}

// 64 channels on 14x14 take oneDNN's Winograd algorithm (where the CPU has it): forward, input and weight
// gradients against a direct convolution in double precision.
TEST(Conv2d, WinogradShapesMatchDirectConvolution) {
  constexpr int64_t n = 2, c = 64, s = 14;
  Conv2d layer(c, 3, 1, 1, false);
  Rng init(1);
  layer.build({c, s, s}, init);
  const Tensor x = random_tensor({n, c, s, s}, 2), dy = random_tensor({n, c, s, s}, 3);
  const Tensor& w = layer.params()[0]->value;
  std::vector<double> y(static_cast<size_t>(n * c * s * s)), dx(y.size()), dw(static_cast<size_t>(c * c * 9));
  auto at = [&](int64_t b, int64_t ch, int64_t h, int64_t v) { return ((b * c + ch) * s + h) * s + v; };
  for (int64_t b = 0; b < n; ++b)
    for (int64_t o = 0; o < c; ++o)
      for (int64_t i = 0; i < c; ++i)
        for (int64_t ki = 0; ki < 3; ++ki)
          for (int64_t kj = 0; kj < 3; ++kj) {
            const int64_t wi = ((o * c + i) * 3 + ki) * 3 + kj;
            for (int64_t h = 0; h < s; ++h)
              for (int64_t v = 0; v < s; ++v) {
                const int64_t ih = h - 1 + ki, iv = v - 1 + kj;
                if (ih < 0 || ih >= s || iv < 0 || iv >= s) continue;
                y[static_cast<size_t>(at(b, o, h, v))] += static_cast<double>(w[wi]) * x[at(b, i, ih, iv)];
                dx[static_cast<size_t>(at(b, i, ih, iv))] += static_cast<double>(w[wi]) * dy[at(b, o, h, v)];
                dw[static_cast<size_t>(wi)] += static_cast<double>(dy[at(b, o, h, v)]) * x[at(b, i, ih, iv)];
              }
          }
  EXPECT_LT(relative_error(layer.forward(x, Mode::train), y), 1e-5);
  EXPECT_LT(relative_error(layer.backward(dy), dx), 1e-5);
  EXPECT_LT(relative_error(layer.params()[0]->grad, dw), 1e-5);
}

TEST(Layer, GradientsAccumulateAcrossBackwardCalls) {
  Linear layer(3, true);
  Rng init(1);
  layer.build({4}, init);
  Tensor x = random_tensor({2, 4}, 2), dy = random_tensor({2, 3}, 3);
  layer.forward(x, Mode::train);
  layer.backward(dy);
  const Tensor once = layer.params()[0]->grad;
  layer.backward(dy);
  for (int64_t i = 0; i < once.numel(); ++i) EXPECT_FLOAT_EQ(layer.params()[0]->grad[i], 2.0f * once[i]);
}

}  // namespace
}  // namespace ringtrain
