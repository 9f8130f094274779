// What rank 0 prints as the run goes: the run's header, the running loss every --log-every steps, a line per
// epoch (with the mode's report and skipped steps), and how an interrupted run stopped.
#include <cstdio>

#include "ringtrain/stop_request.hpp"
#include "ringtrain/train/callbacks.hpp"

namespace ringtrain {

std::string format_score(const std::string& prefix, const Score& s, const std::string& metric) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "%sloss %.4f  %s%s %.4f", prefix.c_str(), s.loss(), prefix.c_str(), metric.c_str(),
                s.metric());
  return buf;
}

namespace {

class ProgressLog final : public Callback {
 public:
  explicit ProgressLog(const TrainContext& context) : c_(context), metric_(context.loss.metric_name()) {}

  void on_train_begin(TrainState&) override { c_.log << c_.header << c_.mode.description(); }

  void on_step_end(TrainState& state) override {
    const int64_t every = c_.config.log_every;
    if (every <= 0 || state.step % every != 0) return;
    state.epoch_score += c_.mode.take_score();  // on a GPU: waits for the step
    // Ranks out of step cannot sum at every step: then rank 0 reports its own running loss.
    const Score score = c_.mode.steps_in_lockstep() ? c_.mode.sum_over_ranks(state.epoch_score) : state.epoch_score;
    c_.log << "  step " << state.step << "  " << format_score("", score, metric_) << std::endl;
  }

  void on_epoch_end(TrainState& state, EpochRecord& r) override {
    char tail[96];
    std::snprintf(tail, sizeof tail, "  %.0f img/s  %.1f s", r.images_per_s, r.seconds);
    c_.log << "epoch " << r.epoch << "/" << state.epochs << "  " << format_score("", r.train, metric_)
           << (r.val.samples ? "  " + format_score("val_", r.val, metric_) : "") << tail << std::endl
           << r.report;
    if (c_.mode.skipped_steps() > 0)
      c_.log << "  " << c_.mode.skipped_steps() << " steps skipped so far for non-finite gradients (--skip-nonfinite)"
             << std::endl;
  }

  void on_train_end(TrainState& state, TrainResult&) override {
    if (!state.interrupted) return;
    const char* saved =
        c_.checkpoints ? "; --resume auto continues from the checkpoint" : "; no --checkpoint-dir, nothing saved";
    c_.log << "stopped by " << (stop_requested() ? stop_reason() : "a signal to another rank") << " after step "
           << state.step << saved << std::endl;
  }

 private:
  const TrainContext& c_;
  std::string metric_;
};

}  // namespace

std::unique_ptr<Callback> make_progress_log(const TrainContext& context) {
  return std::make_unique<ProgressLog>(context);
}

}  // namespace ringtrain
