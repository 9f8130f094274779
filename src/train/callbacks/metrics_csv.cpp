// --metrics FILE: one CSV row per epoch, written by rank 0 (metrics_log.hpp).
#include "ringtrain/train/callbacks.hpp"
#include "ringtrain/train/metrics_log.hpp"

namespace ringtrain {

namespace {

class MetricsCsv final : public Callback {
 public:
  MetricsCsv(const std::string& path, const std::string& metric, bool append) : log_(path, metric, append) {}
  void on_epoch_end(TrainState&, EpochRecord& record) override { log_.write(record); }

 private:
  MetricsLog log_;
};

}  // namespace

std::unique_ptr<Callback> make_metrics_csv(const TrainContext& context) {
  if (context.config.metrics_csv.empty() || context.world.rank() != 0) return nullptr;
  return std::make_unique<MetricsCsv>(context.config.metrics_csv, context.loss.metric_name(), context.resumed);
}

}  // namespace ringtrain
