// Pipeline model parallelism, the plan: which layers each stage holds and in what order a stage runs the
// forward and backward passes of its micro-batches. Pure functions of the configuration, the same on every
// rank, so each stage can follow its own list and the messages between stages match.
#pragma once
#include <string>
#include <vector>

#include "ringtrain/nn/model.hpp"
#include "ringtrain/tensor/enum_names.hpp"

namespace ringtrain {

enum class PipelineSchedule {
  gpipe,  // all M forwards, then all M backwards: holds M micro-batches of activations
  one_f_one_b,  // PipeDream-Flush: P - s - 1 forwards to fill, then forward/backward alternate: at most P - s held
};
inline constexpr EnumNames<PipelineSchedule, 2> kPipelineScheduleNames{
    {{PipelineSchedule::gpipe, "gpipe"}, {PipelineSchedule::one_f_one_b, "1f1b"}}};
constexpr const auto& enum_names(PipelineSchedule) { return kPipelineScheduleNames; }

struct PipelineConfig {
  int stages = 1;         // P: ranks per model replica; the world holds world / P data-parallel replicas
  int micro_batches = 1;  // M: each replica's batch is split into M equal micro-batches
  PipelineSchedule schedule = PipelineSchedule::one_f_one_b;
  std::vector<int> split;         // first layer of stages 1..P-1; empty: balance the estimated cost
  bool pipelined() const { return stages > 1 || micro_batches > 1; }  // else plain data parallel
};

struct PipelineOp {
  enum Kind { forward, backward } kind;
  int micro;
  bool operator==(const PipelineOp&) const = default;
};

// Stage `stage`'s passes for one step, in order. Micro-batches go forward and backward in increasing order
// on every stage, so a stage receives them in the order its neighbour sends them.
std::vector<PipelineOp> pipeline_ops(PipelineSchedule schedule, int stage, int stages, int micro_batches);
// The most micro-batches whose forward has run and backward has not, at any point of `ops`.
int peak_in_flight(const std::vector<PipelineOp>& ops);

// Estimated cost of each layer per sample: its multiply-adds (forward and backward), one pass over its
// output for element-wise work, and its optimizer update spread over a micro-batch of kCostBatch samples.
inline constexpr int64_t kCostBatch = 16;
std::vector<double> layer_costs(Model& model);
// Contiguous stages minimising the most expensive one (each holds at least one layer).
std::vector<LayerRange> balance_stages(const std::vector<double>& costs, int stages);
// The stages `split` (first layer of stages 1..P-1) names for a model of `layers` layers.
std::vector<LayerRange> stages_at(const std::vector<int>& split, size_t layers);

}  // namespace ringtrain
