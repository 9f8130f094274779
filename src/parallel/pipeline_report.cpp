// What the pipeline adds to the run's output: its layout under the header, and after each epoch how busy
// the stages were.
#include <cstdio>
#include <utility>

#include "ringtrain/parallel/pipeline_parallel.hpp"

namespace ringtrain {

std::string PipelineParallel::description() const {
  std::string s = "  pipeline: " + std::to_string(stages_) + " stages x " + std::to_string(micro_batches_) +
                  " micro-batches (" + name_of(schedule_) + ");";
  for (size_t k = 0; k < ranges_.size(); ++k) {
    const LayerRange r = ranges_[k];
    s += (k ? ", stage " : " stage ") + std::to_string(k) + " " + model_.layer_name(r.begin) +
         (r.size() > 1 ? ".." + model_.layer_name(r.end - 1) : "");
  }
  return s + "\n";
}

// On a GPU the host only queues work, so its waiting says nothing about the stages: no report there.
EpochReport PipelineParallel::epoch_report() {
  if (device_ != Device::cpu) return {};
  const Busy busy = std::exchange(busy_, Busy{});
  double sums[2] = {busy.step_s - busy.waiting_s, busy.step_s};
  world_.allreduce_sum(sums, 2);
  const double m = micro_batches_, p = stages_;
  char line[160];
  std::snprintf(line, sizeof line, "  pipeline busy %.1f%% of each step (ideal for %d micro-batches over %d stages: %.1f%%)\n",
                sums[1] > 0.0 ? 100.0 * sums[0] / sums[1] : 0.0, micro_batches_, stages_, 100.0 * m / (m + p - 1.0));
  return {line, {}};
}

}  // namespace ringtrain
