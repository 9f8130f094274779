// The pipeline's plan, without ranks: schedules, stage balancing, configuration checks, and the layer
// contract it rests on (a stashed forward state backpropagates exactly as if it had never left).
#include <gtest/gtest.h>

#include <cmath>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/nn/model.hpp"
#include "ringtrain/parallel/pipeline_schedule.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

Shape batched_shape(int64_t rows, const Shape& sample) {
  Shape s{rows};
  s.insert(s.end(), sample.begin(), sample.end());
  return s;
}

std::string render(const std::vector<PipelineOp>& ops) {
  std::string s;
  for (const PipelineOp& op : ops) s += (s.empty() ? "" : " ") + std::string(op.kind == PipelineOp::forward ? "F" : "B") + std::to_string(op.micro);
  return s;
}

TEST(PipelineSchedule, GpipeRunsAllForwardsThenAllBackwards) {
  EXPECT_EQ(render(pipeline_ops(PipelineSchedule::gpipe, 1, 4, 3)), "F0 F1 F2 B0 B1 B2");
}

TEST(PipelineSchedule, OneFOneBFillsWithStagesLeftThenAlternates) {
  EXPECT_EQ(render(pipeline_ops(PipelineSchedule::one_f_one_b, 0, 4, 6)), "F0 F1 F2 F3 B0 F4 B1 F5 B2 B3 B4 B5");
  EXPECT_EQ(render(pipeline_ops(PipelineSchedule::one_f_one_b, 2, 4, 6)), "F0 F1 B0 F2 B1 F3 B2 F4 B3 F5 B4 B5");
  EXPECT_EQ(render(pipeline_ops(PipelineSchedule::one_f_one_b, 3, 4, 6)), "F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5");
  EXPECT_EQ(render(pipeline_ops(PipelineSchedule::one_f_one_b, 0, 4, 2)), "F0 F1 B0 B1");  // fewer than P
}

TEST(PipelineSchedule, EveryMicroBatchRunsOnceForwardThenBackwardInOrder) {
  for (PipelineSchedule kind : {PipelineSchedule::gpipe, PipelineSchedule::one_f_one_b})
    for (int p = 1; p <= 4; ++p)
      for (int s = 0; s < p; ++s)
        for (int m = 1; m <= 9; ++m) {
          const auto ops = pipeline_ops(kind, s, p, m);
          ASSERT_EQ(ops.size(), 2u * m);
          int next_f = 0, next_b = 0;
          for (const PipelineOp& op : ops) {
            if (op.kind == PipelineOp::forward) {
              ASSERT_EQ(op.micro, next_f++);
            } else {
              ASSERT_EQ(op.micro, next_b++);
              ASSERT_LT(op.micro, next_f) << "backward before its forward";
            }
          }
          const int peak = peak_in_flight(ops);
          if (kind == PipelineSchedule::gpipe) EXPECT_EQ(peak, m);
          else EXPECT_EQ(peak, std::min(p - s, m)) << "stage " << s << " of " << p << ", " << m << " micro-batches";
        }
}

TEST(PipelineStages, BalanceMinimisesTheDearestStage) {
  EXPECT_EQ(balance_stages({1, 1, 1, 1}, 2), (std::vector<LayerRange>{{0, 2}, {2, 4}}));
  EXPECT_EQ(balance_stages({10, 1, 1, 1, 1}, 2), (std::vector<LayerRange>{{0, 1}, {1, 5}}));
  EXPECT_EQ(balance_stages({1, 2, 3, 4, 5, 6}, 3), (std::vector<LayerRange>{{0, 3}, {3, 5}, {5, 6}}));
  EXPECT_EQ(balance_stages({5, 0, 0}, 3), (std::vector<LayerRange>{{0, 1}, {1, 2}, {2, 3}}));  // none empty
}

TEST(PipelineStages, ExplicitSplitNamesEachStagesFirstLayer) {
  EXPECT_EQ(stages_at({3, 7}, 9), (std::vector<LayerRange>{{0, 3}, {3, 7}, {7, 9}}));
}

TEST(PipelineStages, CostsFollowTheLayersWork) {
  Model model("flatten,linear(64),relu,linear(out)", {1, 8, 8}, 10, 1);
  const std::vector<double> cost = layer_costs(model);
  ASSERT_EQ(cost.size(), 4u);
  EXPECT_GT(cost[1], 10 * cost[0]);  // the big GEMM outweighs a copy
  EXPECT_GT(cost[1], cost[3]);
  EXPECT_GT(cost[3], cost[2]);
}

// Two micro-batches forward, their states stashed, then backward in the opposite order: every gradient is
// what forward-then-backward of each alone gives. Run over every layer kind (dropout draws a mask per call,
// so the reference replays the same calls in the same order).
void expect_stash_round_trip(const std::string& spec, const Shape& sample, Device device = Device::cpu) {
  const int64_t rows = 3;
  auto run = [&](bool interleaved) {
    Model model(spec, sample, 4, 11);
    for (size_t i = 0; i < model.size(); ++i) model.layer(i).set_input_grad_needed(true);
    model.to(device);
    Tensor input({0}, device);  // one object every micro-batch enters through, as a stage's: layers keep its address
    ForwardState state;
    state.tensors.push_back(&input);
    state.append(model.forward_state(model.all_layers()));
    const Tensor x[2] = {test::random_tensor(batched_shape(rows, sample), 1).to(device),
                         test::random_tensor(batched_shape(rows, sample), 2).to(device)};
    const Tensor dy[2] = {test::random_tensor({rows, 4}, 3).to(device), test::random_tensor({rows, 4}, 4).to(device)};
    std::vector<float> out;
    auto keep = [&](const Tensor& t) {
      const Tensor host = t.to(Device::cpu);
      out.insert(out.end(), host.data(), host.data() + host.numel());
    };
    if (interleaved) {
      ForwardStash stash[2] = {ForwardStash(state), ForwardStash(state)};
      for (int m = 0; m < 2; ++m) {
        input.copy_from(x[m]);
        model.forward(input, Mode::train);
        trade(state, stash[m]);
      }
      std::vector<float> dx[2];
      for (int m = 1; m >= 0; --m) {
        trade(state, stash[m]);
        const Tensor g = model.backward(dy[m], model.all_layers()).to(Device::cpu);
        dx[m].assign(g.data(), g.data() + g.numel());
      }
      out = dx[0];
      out.insert(out.end(), dx[1].begin(), dx[1].end());
    } else {
      for (int m = 0; m < 2; ++m) {
        model.forward(x[m], Mode::train);
        keep(model.backward(dy[m], model.all_layers()));
      }
    }
    for (Param* p : model.params()) keep(p->grad);
    return out;
  };
  const std::vector<float> alone = run(false), interleaved = run(true);
  ASSERT_EQ(alone.size(), interleaved.size());
  for (size_t i = 0; i < alone.size(); ++i)
    ASSERT_NEAR(alone[i], interleaved[i], 1e-6) << spec << " on " << name_of(device) << ", value " << i;
}

TEST(ForwardState, StashedMicroBatchesBackpropagateAsIfAlone) {
  expect_stash_round_trip("linear(6),relu,linear(5),tanh,dropout(0.3),linear(out)", {7});
  expect_stash_round_trip("linear(6),gelu,linear(5),elu,linear(5),leakyrelu(0.1),linear(out)", {7});
  expect_stash_round_trip("conv(3,3,pad=1),relu,maxpool(2),conv(2,3,pad=1),avgpool(2),flatten,linear(out)", {2, 8, 8});
  expect_stash_round_trip("conv(3,3),batchnorm,sigmoid,flatten,batchnorm,linear(out)", {1, 6, 6});
  // Residual blocks keep their parts' states: identity and projection shortcuts, folded ReLUs, a dropout.
  expect_stash_round_trip("conv(3,3,pad=1),residual(conv(3,3,pad=1),batchnorm,relu,conv(3,3,pad=1),dropout(0.2)),relu,"
                          "residual(conv(4,3,stride=2,pad=1),batchnorm,shortcut=conv(4,1,stride=2),batchnorm),"
                          "globalavgpool,linear(out)",
                          {2, 6, 6});
  // Transformer blocks and attention: their saved projections, probabilities, sums and dropout streams.
  expect_stash_round_trip("block(2,dropout=0.2),layernorm,attention(2,dropout=0.1),linear(3,per_token=1),flatten,"
                          "linear(out)",
                          {3, 4});
}

// The CUDA twins' forward state: the same round trip on the GPU.
TEST(ForwardState, StashedMicroBatchesBackpropagateAsIfAloneOnTheGpu) {
  const CudaProbe probe = probe_cuda();
  if (probe.device_count == 0) GTEST_SKIP() << probe.reason;
  use_cuda_device(0, Precision::fp32);
  expect_stash_round_trip("linear(6),relu,linear(5),tanh,dropout(0.3),linear(out)", {7}, Device::cuda);
  expect_stash_round_trip("linear(6),gelu,linear(5),elu,linear(5),leakyrelu(0.1),linear(out)", {7}, Device::cuda);
  expect_stash_round_trip("conv(3,3,pad=1),relu,maxpool(2),conv(2,3,pad=1),avgpool(2),flatten,linear(out)", {2, 8, 8},
                          Device::cuda);
  expect_stash_round_trip("conv(3,3),batchnorm,sigmoid,flatten,batchnorm,linear(out)", {1, 6, 6}, Device::cuda);
  expect_stash_round_trip("conv(3,3,pad=1),residual(conv(3,3,pad=1),batchnorm,relu,conv(3,3,pad=1)),relu,"
                          "residual(conv(4,3,stride=2,pad=1),batchnorm,shortcut=conv(4,1,stride=2),batchnorm),"
                          "maxpool(3,stride=2,pad=1),globalavgpool,linear(out)",
                          {2, 6, 6}, Device::cuda);
}

}  // namespace
}  // namespace ringtrain
