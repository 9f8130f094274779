// Each optimizer against steps computed by hand from PyTorch's documented update rules.
#include <gtest/gtest.h>

#include <cmath>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/nn/lr_schedule.hpp"
#include "ringtrain/nn/optimizer.hpp"

namespace ringtrain {
namespace {

Param scalar_param(float w, bool kernel) {
  Param p{"w", Tensor({1}), Tensor({1}), kernel};
  p.value[0] = w;
  return p;
}

// Runs the optimizer on one scalar with the given gradient each step; returns the weights after each.
std::vector<float> run(OptimizerConfig c, float w0, std::vector<float> grads, float lr, bool kernel = false) {
  auto opt = make_optimizer(c);
  Param p = scalar_param(w0, kernel);
  std::vector<float> out;
  for (float g : grads) {
    p.grad[0] = g;
    opt->step({&p}, lr);
    out.push_back(p.value[0]);
  }
  return out;
}

TEST(Optimizer, PlainSgd) {
  OptimizerConfig c;
  c.momentum = 0.0f;
  auto w = run(c, 1.0f, {0.5f, -1.0f}, 0.1f);
  EXPECT_FLOAT_EQ(w[0], 0.95f);
  EXPECT_FLOAT_EQ(w[1], 1.05f);
}

TEST(Optimizer, SgdMomentumAndWeightDecay) {
  OptimizerConfig c;
  c.momentum = 0.9f;
  c.weight_decay = 0.1f;
  // step 1: d = 0.5 + 0.1*1 = 0.6, v = 0.6, w = 1 - 0.1*0.6 = 0.94
  // step 2: d = 0.5 + 0.094 = 0.594, v = 0.9*0.6 + 0.594 = 1.134, w = 0.94 - 0.1134 = 0.8266
  auto w = run(c, 1.0f, {0.5f, 0.5f}, 0.1f);
  EXPECT_NEAR(w[0], 0.94f, 1e-6);
  EXPECT_NEAR(w[1], 0.8266f, 1e-6);
}

TEST(Optimizer, SgdNesterov) {
  OptimizerConfig c;
  c.momentum = 0.5f;
  c.nesterov = true;
  // step 1: v = 1, update = 1 + 0.5*1 = 1.5, w = 2 - 0.15 = 1.85
  // step 2: v = 0.5 + 1 = 1.5, update = 1 + 0.75 = 1.75, w = 1.85 - 0.175 = 1.675
  auto w = run(c, 2.0f, {1.0f, 1.0f}, 0.1f);
  EXPECT_NEAR(w[0], 1.85f, 1e-6);
  EXPECT_NEAR(w[1], 1.675f, 1e-6);
}

TEST(Optimizer, Adam) {
  OptimizerConfig c;
  c.kind = OptimizerKind::adam;
  // step 1: m = 0.1*g, v = 0.001*g^2, mhat = g, vhat = g^2 -> w -= lr * g / (|g| + eps) = lr * sign(g)
  // step 2 (g2 = 0.5 after g1 = 2): m = 0.9*0.2 + 0.05 = 0.23, v = 0.999*0.004 + 0.001*0.25 = 0.004246
  //   mhat = 0.23/0.19, vhat = 0.004246/0.001999, w -= 0.01 * mhat / (sqrt(vhat) + 1e-8)
  auto w = run(c, 1.0f, {2.0f, 0.5f}, 0.01f);
  EXPECT_NEAR(w[0], 0.99f, 1e-6);
  const double mhat = 0.23 / 0.19, vhat = 0.004246 / (1.0 - 0.999 * 0.999);
  EXPECT_NEAR(w[1], 0.99 - 0.01 * mhat / std::sqrt(vhat), 1e-6);
}

// AdamW: w *= 1 - lr * wd on kernels (never on other parameters), then Adam's step on the loss's gradient.
TEST(Optimizer, AdamWDecaysKernelsOnly) {
  OptimizerConfig c;
  c.kind = OptimizerKind::adamw;
  c.weight_decay = 0.5f;
  // step 1 moves by lr against the sign of g, after the decay: 2 * (1 - 0.1 * 0.5) - 0.1 = 1.8
  EXPECT_NEAR(run(c, 2.0f, {3.0f}, 0.1f, true)[0], 1.8f, 1e-6);
  EXPECT_NEAR(run(c, 2.0f, {3.0f}, 0.1f, false)[0], 1.9f, 1e-6) << "not a kernel: no decay";
  // Unlike Adam's coupled decay, AdamW's does not pass through the moments: with g = 0 Adam's step 1 moves
  // by lr (d = wd * w normalised), AdamW's by lr * wd * w (then 0 / (0 + eps) adds nothing).
  EXPECT_NEAR(run(c, 4.0f, {0.0f}, 0.01f, true)[0], 3.98f, 1e-6);
  EXPECT_NEAR(run(c, 4.0f, {0.0f, 0.0f}, 0.01f, true)[1], 4.0f * 0.995f * 0.995f, 1e-6);
  c.kind = OptimizerKind::adam;
  EXPECT_NEAR(run(c, 4.0f, {0.0f}, 0.01f, true)[0], 3.99f, 1e-6);
}

// Three steps of torch.optim.AdamW (torch 1.13) on a weight (decayed, param group weight_decay=0.1) and a bias
// (weight_decay=0), lr 0.05: the values printed by /usr/bin/python3 with the same tensors.
TEST(Optimizer, AdamWMatchesPyTorch) {
  OptimizerConfig c;
  c.kind = OptimizerKind::adamw;
  c.weight_decay = 0.1f;
  Param w{"weight", Tensor({2, 3}), Tensor({2, 3}), true}, b{"bias", Tensor({3}), Tensor({3}), false};
  const float w0[] = {0.5f, -1.0f, 2.0f, 0.25f, -0.75f, 1.5f}, b0[] = {0.3f, -0.2f, 0.1f};
  const float gw[3][6] = {{0.1f, -0.2f, 0.3f, 0.4f, 0.0f, -0.6f},
                          {-0.3f, 0.2f, 0.1f, 0.05f, 0.5f, -0.1f},
                          {0.2f, 0.2f, -0.2f, 0.1f, -0.3f, 0.4f}};
  const float gb[3][3] = {{1.0f, -0.5f, 0.25f}, {-0.2f, 0.3f, 0.0f}, {0.7f, 0.1f, -0.4f}};
  for (int i = 0; i < 6; ++i) w.value[i] = w0[i];
  for (int i = 0; i < 3; ++i) b.value[i] = b0[i];
  auto opt = make_optimizer(c);
  for (int step = 0; step < 3; ++step) {
    for (int i = 0; i < 6; ++i) w.grad[i] = gw[step][i];
    for (int i = 0; i < 3; ++i) b.grad[i] = gb[step][i];
    opt->step({&w, &b}, 0.05f);
  }
  const double torch_w[] = {0.466682762, -0.958302796, 1.8659519, 0.122993857, -0.78404671, 1.57381129};
  const double torch_b[] = {0.190081894, -0.138533875, 0.0298743919};
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(w.value[i], torch_w[i], 2e-6) << "weight " << i;
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(b.value[i], torch_b[i], 2e-6) << "bias " << i;
  EXPECT_EQ(opt->state_names(), (std::vector<std::string>{"exp_avg", "exp_avg_sq"})) << "Adam's, for checkpoints";
}

TEST(Optimizer, RmsProp) {
  OptimizerConfig c;
  c.kind = OptimizerKind::rmsprop;
  c.momentum = 0.0f;
  // s = 0.01 * 4 = 0.04, w = 1 - 0.1 * 2 / (0.2 + 1e-8)
  auto w = run(c, 1.0f, {2.0f}, 0.1f);
  EXPECT_NEAR(w[0], 1.0f - 0.1f * 2.0f / 0.2f, 1e-5);
  c.momentum = 0.5f;
  // step 2 with g = 2: s = 0.99*0.04 + 0.04 = 0.0796, u = 2/sqrt(0.0796), b = 0.5*10 + u
  w = run(c, 1.0f, {2.0f, 2.0f}, 0.1f);
  const double u2 = 2.0 / std::sqrt(0.0796);
  EXPECT_NEAR(w[1], 1.0 - 0.1 * 10.0 - 0.1 * (0.5 * 10.0 + u2), 1e-4);
}

// --l1: lambda * sign(w) joins the gradient of a kernel (a linear or conv weight) in every optimizer, beside
// weight decay; other parameters (biases, batchnorm) get none. By hand from the update rules above.
TEST(Optimizer, L1PenaltyOnKernelsOnly) {
  OptimizerConfig c;
  c.momentum = 0.0f;
  c.l1 = 0.1f;
  // d = 0.2 + 0.1 * sign(w): 0.3 above 0, 0.1 below, 0.2 at 0 (sign(0) = 0); w -= 0.1 * d.
  EXPECT_NEAR(run(c, 0.5f, {0.2f, 0.2f}, 0.1f, true)[1], 0.44f, 1e-6);
  EXPECT_NEAR(run(c, -0.5f, {0.2f}, 0.1f, true)[0], -0.51f, 1e-6);
  EXPECT_NEAR(run(c, 0.0f, {0.2f}, 0.1f, true)[0], -0.02f, 1e-6);
  EXPECT_NEAR(run(c, 0.5f, {0.2f}, 0.1f, false)[0], 0.48f, 1e-6) << "not a kernel: no penalty";
  // With momentum and weight decay: step 1 d = 0.5 + 0.1 * 1 + 0.2 = 0.8, v = 0.8, w = 0.92;
  // step 2 d = 0.5 + 0.092 + 0.2 = 0.792, v = 0.72 + 0.792 = 1.512, w = 0.92 - 0.1512 = 0.7688.
  c.momentum = 0.9f;
  c.weight_decay = 0.1f;
  c.l1 = 0.2f;
  auto w = run(c, 1.0f, {0.5f, 0.5f}, 0.1f, true);
  EXPECT_NEAR(w[0], 0.92f, 1e-6);
  EXPECT_NEAR(w[1], 0.7688f, 1e-6);
  c.nesterov = true;  // w = 1 - 0.1 * (0.8 + 0.9 * 0.8)
  EXPECT_NEAR(run(c, 1.0f, {0.5f}, 0.1f, true)[0], 0.848f, 1e-6);
  // Adam's and RMSprop's first step moves by lr (RMSprop: lr / sqrt(1 - alpha)) against the sign of d: a
  // gradient of -0.05 alone raises w, with the penalty's 0.1 it lowers it.
  OptimizerConfig adam;
  adam.kind = OptimizerKind::adam;
  adam.l1 = 0.1f;
  EXPECT_NEAR(run(adam, 1.0f, {-0.05f}, 0.01f, true)[0], 0.99f, 1e-6);
  EXPECT_NEAR(run(adam, 1.0f, {-0.05f}, 0.01f, false)[0], 1.01f, 1e-6);
  OptimizerConfig rmsprop;
  rmsprop.kind = OptimizerKind::rmsprop;
  rmsprop.momentum = 0.0f;
  rmsprop.l1 = 0.1f;
  EXPECT_NEAR(run(rmsprop, 1.0f, {-0.05f}, 0.01f, true)[0], 1.0f - 0.1f, 1e-5);
  EXPECT_NEAR(run(rmsprop, 1.0f, {-0.05f}, 0.01f, false)[0], 1.0f + 0.1f, 1e-5);
}

TEST(LrSchedule, WarmupThenStepAndCosine) {
  LrSchedule s;
  s.base_lr = 1.0f;
  s.warmup_steps = 4;
  EXPECT_FLOAT_EQ(s.at(0), 0.25f);
  EXPECT_FLOAT_EQ(s.at(3), 1.0f);
  EXPECT_FLOAT_EQ(s.at(100), 1.0f);
  s.kind = LrScheduleKind::step;
  s.decay_every = 10;
  s.gamma = 0.5f;
  EXPECT_FLOAT_EQ(s.at(4 + 9), 1.0f);
  EXPECT_FLOAT_EQ(s.at(4 + 10), 0.5f);
  EXPECT_FLOAT_EQ(s.at(4 + 25), 0.25f);
  s.kind = LrScheduleKind::cosine;
  s.total_steps = 14;
  s.min_lr = 0.1f;
  EXPECT_FLOAT_EQ(s.at(4), 1.0f);
  EXPECT_NEAR(s.at(9), 0.55f, 1e-6);
  EXPECT_NEAR(s.at(14), 0.1f, 1e-6);
  EXPECT_NEAR(s.at(50), 0.1f, 1e-6);
}

TEST(LrSchedule, GoyalWarmupRampsFromTheOneRankRate) {
  LrSchedule s;  // --lr 0.1 --lr-scaling linear on 4 ranks: 0.1 -> 0.4 over 3 steps
  s.base_lr = 0.4f;
  s.warmup_from = 0.1f;
  s.warmup_steps = 3;
  EXPECT_FLOAT_EQ(s.at(0), 0.2f);
  EXPECT_FLOAT_EQ(s.at(1), 0.3f);
  EXPECT_FLOAT_EQ(s.at(2), 0.4f);
  EXPECT_FLOAT_EQ(s.at(10), 0.4f);
}

}  // namespace
}  // namespace ringtrain
