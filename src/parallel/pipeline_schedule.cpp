#include "ringtrain/parallel/pipeline_schedule.hpp"

#include <algorithm>
#include <limits>


namespace ringtrain {

std::vector<PipelineOp> pipeline_ops(PipelineSchedule schedule, int stage, int stages, int micro_batches) {
  std::vector<PipelineOp> ops;
  const int warmup = schedule == PipelineSchedule::gpipe ? micro_batches
                                                         : std::min(stages - stage - 1, micro_batches);
  int next_forward = 0, next_backward = 0;
  for (; next_forward < warmup; ++next_forward) ops.push_back({PipelineOp::forward, next_forward});
  // Steady state (1F1B): each forward is followed by the backward of the oldest micro-batch in flight.
  while (next_forward < micro_batches) {
    ops.push_back({PipelineOp::forward, next_forward++});
    ops.push_back({PipelineOp::backward, next_backward++});
  }
  while (next_backward < micro_batches) ops.push_back({PipelineOp::backward, next_backward++});
  return ops;
}

int peak_in_flight(const std::vector<PipelineOp>& ops) {
  int held = 0, peak = 0;
  for (const PipelineOp& op : ops) {
    held += op.kind == PipelineOp::forward ? 1 : -1;
    peak = std::max(peak, held);
  }
  return peak;
}

std::vector<double> layer_costs(Model& model) {
  std::vector<double> costs;
  for (size_t i = 0; i < model.size(); ++i) {
    Layer& layer = model.layer(i);
    int64_t params = 0;
    for (Param* p : layer.params()) params += p->value.numel();
    const double elementwise = static_cast<double>(shape_numel(model.layer_input_shape(i + 1)));
    costs.push_back(layer.flops_per_sample() + elementwise +
                    4.0 * static_cast<double>(params) / static_cast<double>(kCostBatch));
  }
  return costs;
}

std::vector<LayerRange> balance_stages(const std::vector<double>& costs, int stages) {
  const size_t n = costs.size(), p = static_cast<size_t>(stages);
  std::vector<double> prefix(n + 1, 0.0);
  for (size_t i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + costs[i];
  // best[k][i]: the least possible cost of the dearest stage when the first i layers form k stages.
  constexpr double kNone = std::numeric_limits<double>::infinity();
  std::vector<std::vector<double>> best(p + 1, std::vector<double>(n + 1, kNone));
  std::vector<std::vector<size_t>> cut(p + 1, std::vector<size_t>(n + 1, 0));
  best[0][0] = 0.0;
  for (size_t k = 1; k <= p; ++k)
    for (size_t i = k; i <= n; ++i)
      for (size_t j = k - 1; j < i; ++j) {
        const double worst = std::max(best[k - 1][j], prefix[i] - prefix[j]);
        if (worst < best[k][i]) best[k][i] = worst, cut[k][i] = j;
      }
  std::vector<LayerRange> ranges(p);
  size_t end = n;
  for (size_t k = p; k > 0; --k) {
    ranges[k - 1] = {cut[k][end], end};
    end = cut[k][end];
  }
  return ranges;
}

std::vector<LayerRange> stages_at(const std::vector<int>& split, size_t layers) {
  std::vector<LayerRange> ranges;
  size_t begin = 0;
  for (int first : split) {
    ranges.push_back({begin, static_cast<size_t>(first)});
    begin = static_cast<size_t>(first);
  }
  ranges.push_back({begin, layers});
  return ranges;
}

}  // namespace ringtrain
