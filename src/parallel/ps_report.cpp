// What the parameter servers add to the run's output: the layout under the header, and after each epoch
// what the servers saw (updates, staleness, latency, load) as a line and as metrics columns.
#include <algorithm>
#include <cstdio>
#include <map>

#include "ringtrain/parallel/parameter_server.hpp"

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

std::string formatted(const char* format, double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, value);
  return buf;
}

}  // namespace

std::string ParameterServerMode::description() const {
  const int servers = config_.servers;
  return "  parameter servers: " +
         (servers == 1 ? "rank " + std::to_string(workers_)
                       : "ranks " + std::to_string(workers_) + ".." + std::to_string(workers_ + servers - 1)) +
         ", " + std::to_string(workers_) + " worker" + (workers_ == 1 ? "" : "s") + " x batch " +
         std::to_string(batch_) + ", staleness bound " + std::to_string(config_.staleness) +
         (config_.staleness == 0 ? " (synchronous)\n" : "\n");
}

EpochReport ParameterServerMode::epoch_report() {
  const PsStats s = take_stats();
  double sum = 0.0;
  int64_t count = 0, worst = 0;
  for (const auto& [staleness, n] : s.staleness)
    sum += static_cast<double>(staleness * n), count += n, worst = std::max(worst, staleness);
  const std::string hist = staleness_bins(s.staleness);
  const double mean = count ? sum / static_cast<double>(count) : 0.0;
  const double pull_ms = s.pulls ? 1e3 * s.pull_s / static_cast<double>(s.pulls) : 0.0;
  const double push_ms = s.pushes ? 1e3 * s.push_s / static_cast<double>(s.pushes) : 0.0;
  const double busy = s.wall_s > 0.0 ? s.busy_s / s.wall_s : 0.0;
  EpochReport report;
  report.columns = {{"ps_updates", std::to_string(s.updates)},
                    {"ps_staleness_mean", formatted("%.3f", mean)},
                    {"ps_staleness_max", std::to_string(worst)},
                    {"ps_staleness_hist", hist},
                    {"ps_pull_ms", formatted("%.3f", pull_ms)},
                    {"ps_push_ms", formatted("%.3f", push_ms)},
                    {"ps_server_busy", formatted("%.3f", busy)}};
  report.line = "  ps: " + std::to_string(s.updates) + " updates, staleness mean " + formatted("%.2f", mean) +
                " max " + std::to_string(worst) + " (bound " + std::to_string(config_.staleness) + ") [" + hist +
                "], pull " + formatted("%.2f", pull_ms) + " ms, push " + formatted("%.2f", push_ms) +
                " ms, servers busy " + formatted("%.0f", 100 * busy) + "%\n";
  return report;
}

}  // namespace ringtrain
