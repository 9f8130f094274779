// Optimizer::step_spans, what ZeRO stage 1 (--shard-optimizer) steps: optimizers that each update some spans
// of the parameters (cut anywhere: inside tensors, at their edges) leave every element as one optimizer
// stepping the whole tensors does, bit for bit, and their state, joined, is its state.
#include <gtest/gtest.h>

#include <random>

#include "ringtrain/nn/optimizer.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain {
namespace {

// Two kernels and a bias, 7 + 12 + 3 elements, values from a fixed seed.
struct Params {
  std::vector<Param> held;
  Params() {
    held.push_back({"linear1/weight", Tensor({7}), Tensor({7}), true});
    held.push_back({"linear2/weight", Tensor({3, 4}), Tensor({3, 4}), true});
    held.push_back({"linear2/bias", Tensor({3}), Tensor({3}), false});
    fill(1, &Param::value);
  }
  void fill(unsigned seed, Tensor Param::*field) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal;
    for (Param& p : held)
      for (int64_t i = 0; i < p.value.numel(); ++i) (p.*field)[i] = normal(rng);
  }
  std::vector<Param*> pointers() {
    std::vector<Param*> out;
    for (Param& p : held) out.push_back(&p);
    return out;
  }
  std::vector<float> values() const {
    std::vector<float> out;
    for (const Param& p : held) out.insert(out.end(), p.value.data(), p.value.data() + p.value.numel());
    return out;
  }
};

// One rank's share: spans of (parameter, first element, elements).
struct Cut {
  size_t param;
  int64_t from, size;
};
using Share = std::vector<Cut>;

std::vector<ParamSpan> spans_of(Params& p, const Share& share) {
  std::vector<ParamSpan> out;
  for (const Cut& c : share) {
    Param& q = p.held[c.param];
    out.push_back({q.value.data() + c.from, q.grad.data() + c.from, c.size, q.kernel});
  }
  return out;
}

// Every element of the 22 covered once: linear1/weight in two spans, linear2/weight cut inside, the bias whole.
const std::vector<Share> kShares = {{{0, 0, 3}}, {{0, 3, 4}, {1, 0, 5}}, {{1, 5, 7}, {2, 0, 3}}};

void expect_spans_step_like_the_whole(const OptimizerConfig& config) {
  Params whole, sharded;
  auto optimizer = make_optimizer(config);
  std::vector<std::unique_ptr<Optimizer>> ranks;
  for (size_t r = 0; r < kShares.size(); ++r) ranks.push_back(make_optimizer(config));
  for (unsigned step = 0; step < 5; ++step) {
    whole.fill(100 + step, &Param::grad);
    sharded.fill(100 + step, &Param::grad);
    optimizer->step(whole.pointers(), 0.05f);
    for (size_t r = 0; r < ranks.size(); ++r) ranks[r]->step_spans(spans_of(sharded, kShares[r]), 0.05f);
  }
  EXPECT_EQ(sharded.values(), whole.values()) << name_of(config.kind);

  const auto state = optimizer->state(whole.pointers());  // [param][name], shaped like the parameters
  for (size_t r = 0; r < ranks.size(); ++r) {
    EXPECT_EQ(ranks[r]->steps(), optimizer->steps());
    const auto mine = ranks[r]->span_state(spans_of(sharded, kShares[r]));  // [span][name], [size]
    ASSERT_EQ(mine.size(), kShares[r].size());
    for (size_t j = 0; j < mine.size(); ++j) {
      const Cut& c = kShares[r][j];
      ASSERT_EQ(mine[j].size(), optimizer->state_names().size());
      for (size_t k = 0; k < mine[j].size(); ++k) {
        ASSERT_EQ(mine[j][k]->shape(), Shape{c.size});
        for (int64_t i = 0; i < c.size; ++i)
          ASSERT_EQ(mine[j][k]->data()[i], state[c.param][k]->data()[c.from + i]) << optimizer->state_names()[k];
      }
    }
  }
}

OptimizerConfig with(OptimizerKind kind, float momentum, bool nesterov = false) {
  OptimizerConfig c;
  c.kind = kind;
  c.momentum = momentum;
  c.nesterov = nesterov;
  c.weight_decay = 1e-2f;
  c.l1 = 1e-3f;  // kernels only: a span knows whether its parameter is one
  return c;
}

TEST(OptimizerSpans, SgdOverSpansEqualsWholeTensors) {
  expect_spans_step_like_the_whole(with(OptimizerKind::sgd, 0.9f));
  expect_spans_step_like_the_whole(with(OptimizerKind::sgd, 0.9f, true));
  expect_spans_step_like_the_whole(with(OptimizerKind::sgd, 0.0f));
}

TEST(OptimizerSpans, AdamOverSpansEqualsWholeTensors) { expect_spans_step_like_the_whole(with(OptimizerKind::adam, 0.0f)); }

TEST(OptimizerSpans, AdamWOverSpansEqualsWholeTensors) {  // the decoupled decay follows each span's kernel flag
  expect_spans_step_like_the_whole(with(OptimizerKind::adamw, 0.0f));
}

TEST(OptimizerSpans, RmsPropOverSpansEqualsWholeTensors) {
  expect_spans_step_like_the_whole(with(OptimizerKind::rmsprop, 0.0f));
  expect_spans_step_like_the_whole(with(OptimizerKind::rmsprop, 0.5f));
}

TEST(OptimizerSpans, NoSpansIsAStepAllTheSame) {
  auto adam = make_optimizer(with(OptimizerKind::adam, 0.0f));
  adam->step_spans({}, 0.1f);  // a rank whose share is empty still counts the step (bias correction)
  EXPECT_EQ(adam->steps(), 1);
  EXPECT_TRUE(adam->span_state({}).empty());
}

}  // namespace
}  // namespace ringtrain
