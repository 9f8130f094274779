#include "ringtrain/train/mode_report.hpp"

#include <algorithm>
#include <cstdio>
#include <map>

namespace ringtrain {

namespace {

// The staleness histogram in power-of-two bins: "0:944 1:243 2-3:313 4-7:187".
std::string staleness_bins(const std::map<int64_t, int64_t>& histogram) {
  std::map<int64_t, int64_t> bins;  // first value of the bin -> updates
  for (const auto& [staleness, n] : histogram) {
    int64_t first = staleness == 0 ? 0 : 1;
    while (first > 0 && first * 2 <= staleness) first *= 2;
    bins[first] += n;
  }
  std::string text;
  for (const auto& [first, n] : bins)
    text += (text.empty() ? "" : " ") + std::to_string(first) +
            (first > 1 ? "-" + std::to_string(2 * first - 1) : std::string()) + ":" + std::to_string(n);
  return text;
}

}  // namespace

std::string pipeline_description(const PipelineParallel& pipeline, const PipelineConfig& config, const Model& model) {
  std::string s = "  pipeline: " + std::to_string(config.stages) + " stages x " +
                  std::to_string(config.micro_batches) + " micro-batches (" + config.schedule + ");";
  for (size_t k = 0; k < pipeline.stage_layers().size(); ++k) {
    const LayerRange r = pipeline.stage_layers()[k];
    s += (k ? ", stage " : " stage ") + std::to_string(k) + " " + model.layer_name(r.begin) +
         (r.size() > 1 ? ".." + model.layer_name(r.end - 1) : "");
  }
  return s + "\n";
}

std::string pipeline_utilisation(PipelineParallel& pipeline, const PipelineConfig& config, Communicator& world) {
  const PipelineParallel::Busy busy = pipeline.take_busy();
  double sums[2] = {busy.step_s - busy.waiting_s, busy.step_s};
  world.allreduce_sum(sums, 2);
  const double m = config.micro_batches, p = config.stages;
  char line[160];
  std::snprintf(line, sizeof line, "  pipeline busy %.1f%% of each step (ideal for %d micro-batches over %d stages: %.1f%%)\n",
                sums[1] > 0.0 ? 100.0 * sums[0] / sums[1] : 0.0, config.micro_batches, config.stages,
                100.0 * m / (m + p - 1.0));
  return line;
}

std::vector<std::string> ps_metric_columns() {
  return {"ps_updates", "ps_staleness_mean", "ps_staleness_max", "ps_staleness_hist", "ps_pull_ms", "ps_push_ms",
          "ps_server_busy"};
}

std::string ps_description(const PsConfig& ps, int workers, int64_t batch) {
  return "  parameter servers: " +
         (ps.servers == 1 ? "rank " + std::to_string(workers)
                          : "ranks " + std::to_string(workers) + ".." + std::to_string(workers + ps.servers - 1)) +
         ", " + std::to_string(workers) + " worker" + (workers == 1 ? "" : "s") + " x batch " + std::to_string(batch) +
         ", staleness bound " + std::to_string(ps.staleness) + (ps.staleness == 0 ? " (synchronous)\n" : "\n");
}

std::string ps_report(const PsStats& s, const PsConfig& ps, std::vector<std::string>& columns) {
  double sum = 0.0;
  int64_t count = 0, worst = 0;
  for (const auto& [staleness, n] : s.staleness)
    sum += static_cast<double>(staleness * n), count += n, worst = std::max(worst, staleness);
  const std::string hist = staleness_bins(s.staleness);
  const double mean = count ? sum / static_cast<double>(count) : 0.0;
  const double pull_ms = s.pulls ? 1e3 * s.pull_s / static_cast<double>(s.pulls) : 0.0;
  const double push_ms = s.pushes ? 1e3 * s.push_s / static_cast<double>(s.pushes) : 0.0;
  const double busy = s.wall_s > 0.0 ? s.busy_s / s.wall_s : 0.0;
  char buf[64];
  auto num = [&](const char* format, double v) {
    std::snprintf(buf, sizeof buf, format, v);
    return std::string(buf);
  };
  columns = {std::to_string(s.updates), num("%.3f", mean), std::to_string(worst), hist, num("%.3f", pull_ms),
             num("%.3f", push_ms), num("%.3f", busy)};
  return "  ps: " + std::to_string(s.updates) + " updates, staleness mean " + num("%.2f", mean) + " max " +
         std::to_string(worst) + " (bound " + std::to_string(ps.staleness) + ") [" + hist + "], pull " +
         num("%.2f", pull_ms) + " ms, push " + num("%.2f", push_ms) + " ms, servers busy " + num("%.0f", 100 * busy) +
         "%\n";
}

}  // namespace ringtrain
