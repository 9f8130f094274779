// The parallel mode's own figures after each epoch (how busy the pipeline's stages were, what the parameter
// servers saw): a line under the epoch's and columns in the metrics CSV.
#include "ringtrain/train/callbacks.hpp"

namespace ringtrain {

namespace {

class ModeReport final : public Callback {
 public:
  explicit ModeReport(ParallelMode& mode) : mode_(mode) {}
  void on_epoch_end(TrainState&, EpochRecord& record) override {
    EpochReport report = mode_.epoch_report();
    record.report += report.line;
    for (auto& column : report.columns) record.columns.push_back(std::move(column));
  }

 private:
  ParallelMode& mode_;
};

}  // namespace

std::unique_ptr<Callback> make_mode_report(const TrainContext& context) {
  return std::make_unique<ModeReport>(context.mode);
}

}  // namespace ringtrain
