// Clipping by global norm (nn/gradient_clip.hpp) against torch.nn.utils.clip_grad_norm_ (torch 1.13): the
// values it printed for the same gradients.
#include <gtest/gtest.h>

#include <cmath>

#include "ringtrain/nn/gradient_clip.hpp"

namespace ringtrain {
namespace {

struct Grads {
  Param a{"a", Tensor({2, 3}), Tensor({2, 3}), true};
  Param c{"c", Tensor({4}), Tensor({4}), false};
  Grads() {
    const float ga[] = {3.0f, -4.0f, 1.0f, 0.5f, 2.0f, -1.5f}, gc[] = {0.25f, -2.0f, 1.0f, 0.5f};
    for (int i = 0; i < 6; ++i) a.grad[i] = ga[i];
    for (int i = 0; i < 4; ++i) c.grad[i] = gc[i];
  }
  std::vector<GradSpan> spans() { return grad_spans({&a, &c}); }
};

TEST(GradientClip, MatchesPyTorch) {
  Grads g;
  auto clip = make_gradient_clip(Device::cpu);
  clip->measure(g.spans());
  EXPECT_NEAR(std::sqrt(*clip->sum_squares()), 6.14918709, 1e-5);  // clip_grad_norm_'s return value
  clip->clip(g.spans(), 2.5f);
  const double torch_a[] = {1.21967316, -1.62623096, 0.406557739, 0.203278869, 0.813115478, -0.609836578};
  const double torch_c[] = {0.101639435, -0.813115478, 0.406557739, 0.203278869};
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(g.a.grad[i], torch_a[i], 1e-6) << i;
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(g.c.grad[i], torch_c[i], 1e-6) << i;
}

TEST(GradientClip, LeavesAGradientWithinTheNormAsItIs) {
  Grads g;
  auto clip = make_gradient_clip(Device::cpu);
  clip->measure(g.spans());
  clip->clip(g.spans(), 10.0f);
  EXPECT_EQ(g.a.grad[1], -4.0f);
  EXPECT_EQ(g.c.grad[1], -2.0f);
  EXPECT_EQ(clip_factor(6.25, 2.5f), 2.5f / (2.5f + 1e-6f)) << "at the norm: PyTorch's factor, just below 1";
  EXPECT_EQ(clip_factor(0.0, 1.0f), 1.0f);
}

// Ranks holding parts of the gradients add their sums of squares (the modes' allreduce) before clipping:
// the parts then scale as the whole does.
TEST(GradientClip, PartsWithSummedSquaresClipAsTheWhole) {
  Grads whole, parts;
  auto one = make_gradient_clip(Device::cpu), first = make_gradient_clip(Device::cpu),
       second = make_gradient_clip(Device::cpu);
  one->measure(whole.spans());
  one->clip(whole.spans(), 2.5f);
  const std::vector<GradSpan> a{{parts.a.grad.data(), 6}}, c{{parts.c.grad.data(), 4}};
  first->measure(a);
  second->measure(c);
  const float total = *first->sum_squares() + *second->sum_squares();
  *first->sum_squares() = *second->sum_squares() = total;
  first->clip(a, 2.5f);
  second->clip(c, 2.5f);
  for (int i = 0; i < 6; ++i) EXPECT_FLOAT_EQ(parts.a.grad[i], whole.a.grad[i]);
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(parts.c.grad[i], whole.c.grad[i]);
}

TEST(GradientClip, SumOfSquaresOfLongAndShortRuns) {
  std::vector<float> x(1003);
  double expected = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = static_cast<float>(i % 7) - 3.0f;
    expected += static_cast<double>(x[i]) * x[i];
  }
  EXPECT_DOUBLE_EQ(sum_of_squares(x.data(), static_cast<int64_t>(x.size())), expected);
  EXPECT_DOUBLE_EQ(sum_of_squares(x.data(), 3), 9.0 + 4.0 + 1.0);
}

}  // namespace
}  // namespace ringtrain
