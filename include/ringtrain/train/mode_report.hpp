// What the pipeline and parameter-server modes report beside the trainer's epoch line: the layout at the
// start, and after each epoch how busy the stages were or what the servers saw.
#pragma once
#include <string>
#include <vector>

#include "ringtrain/comm/communicator.hpp"
#include "ringtrain/nn/model.hpp"
#include "ringtrain/parallel/parameter_server.hpp"
#include "ringtrain/parallel/pipeline_parallel.hpp"

namespace ringtrain {

// "  pipeline: 2 stages x 4 micro-batches (1f1b); stage 0 conv1..relu2, stage 1 linear1..linear2"
std::string pipeline_description(const PipelineParallel& pipeline, const PipelineConfig& config, const Model& model);
// Collective: "  pipeline busy 84.0% of each step (ideal for 8 micro-batches over 2 stages: 88.9%)".
std::string pipeline_utilisation(PipelineParallel& pipeline, const PipelineConfig& config, Communicator& world);

// The metrics CSV's extra columns in parameter-server mode, in the order ps_report fills them.
std::vector<std::string> ps_metric_columns();
// "  parameter servers: ranks 2..3, 2 workers x batch 64, staleness bound 0 (synchronous)"
std::string ps_description(const PsConfig& ps, int workers, int64_t batch);
// The epoch's line, and its metrics columns (ps_metric_columns) into `columns`.
std::string ps_report(const PsStats& stats, const PsConfig& ps, std::vector<std::string>& columns);

}  // namespace ringtrain
