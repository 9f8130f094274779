// What rank 0 prints as the run goes: the run's header, the running loss and throughput every --log-every
// steps (--progress lines), a line per epoch (with the mode's report and skipped steps), and how an
// interrupted run stopped.
#include <cmath>
#include <cstdio>

#include "ringtrain/stop_request.hpp"
#include "ringtrain/tensor/text.hpp"
#include "ringtrain/train/callbacks.hpp"

namespace ringtrain {

namespace {

// Four decimals for the usual losses and accuracies; one for values from 1000 on (a regression target's
// units, prices, need no more); six significant digits from 1e12 on, and below 1e-3, where four decimals
// would print a small target's error as 0.0000.
std::string number(double v) {
  const double size = std::fabs(v);
  const char* format = size >= 1e12 || (size > 0.0 && size < 1e-3) ? "%.6g" : size >= 1000.0 ? "%.1f" : "%.4f";
  char buf[48];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

}  // namespace

std::string format_score(const std::string& prefix, const Score& s, const std::string& metric, bool per_token) {
  const std::string perplexity = per_token ? "  " + prefix + "ppl " + number(std::exp(s.loss())) : "";
  return prefix + "loss " + number(s.loss()) + perplexity + "  " + prefix + metric + " " + number(s.metric());
}

std::string format_split_score(const std::string& split, const Score& score, const std::string& metric,
                               bool per_token) {
  return split + "  " + format_score(split + "_", score, metric, per_token) + "  (" +
         counted(score.samples, per_token ? "token" : "sample") + ")";
}

std::string format_rate(double per_s, const std::string& unit) {
  char buf[48];
  std::snprintf(buf, sizeof buf, per_s < 100.0 ? "%.1f " : "%.0f ", per_s);
  return buf + unit;
}

namespace {

class ProgressLog final : public Callback {
 public:
  explicit ProgressLog(const TrainContext& context)
      : c_(context), metric_(context.loss.metric_name()), unit_(throughput_unit(context)),
        per_token_(context.model.per_position()) {}

  void on_train_begin(TrainState& state) override {
    first_step_ = state.step;
    c_.log << c_.header << c_.mode.description();
  }

  // The score point's line (progress_score.cpp), where lines show the steps: a bar (progress_bar.cpp) shows
  // the same figures in place.
  void on_step_end(TrainState& state) override {
    if (c_.config.progress != ProgressKind::lines || c_.config.log_every <= 0 || state.running.step != state.step)
      return;
    c_.log << "  step " << state.step << "  " << format_score("", state.running.score, metric_, per_token_) << "  "
           << format_rate(state.running.samples_per_s, unit_) << std::endl;
  }

  void on_epoch_end(TrainState& state, EpochRecord& r) override {
    char tail[96];
    std::snprintf(tail, sizeof tail, "  %.0f %s  %.1f s", r.images_per_s, unit_.c_str(), r.epoch_seconds);
    // An epoch that --steps ends early says so: "epoch 1/3" alone reads as a whole epoch.
    const std::string cut = state.finishing && state.epoch_steps < state.steps_per_epoch
                                ? " (ended by --steps after " + std::to_string(state.epoch_steps) + " of " +
                                      std::to_string(state.steps_per_epoch) + " steps)"
                                : "";
    c_.log << "epoch " << r.epoch << "/" << state.epochs << cut << "  " << format_score("", r.train, metric_, per_token_)
           << (r.val.samples ? "  " + format_score("val_", r.val, metric_, per_token_) : "") << tail << std::endl
           << r.report;
    if (c_.mode.skipped_steps() > 0)
      c_.log << "  " << c_.mode.skipped_steps() << " steps skipped so far for non-finite gradients (--skip-nonfinite)"
             << std::endl;
  }

  void on_train_end(TrainState& state, TrainResult& result) override {
    if (!state.interrupted) {
      char seconds[32];
      std::snprintf(seconds, sizeof seconds, "%.1f s", result.seconds);
      // A resumed run trained only the steps after its checkpoint in that time.
      c_.log << "trained " << counted(result.steps - first_step_, "step")
             << (first_step_ > 0 ? " (steps " + std::to_string(first_step_ + 1) + " to " + std::to_string(result.steps) + ")"
                                 : std::string())
             << " in " << seconds << std::endl;
      return;
    }
    const char* saved =
        c_.checkpoints ? "; --resume auto continues from the checkpoint" : "; no --checkpoint-dir, nothing saved";
    c_.log << "stopped by " << (stop_requested() ? stop_reason() : "a signal to another rank") << " after step "
           << state.step << saved << std::endl;
  }

 private:
  const TrainContext& c_;
  std::string metric_, unit_;
  bool per_token_;
  int64_t first_step_ = 0;  // where this run began: a resumed run's checkpoint step
};

}  // namespace

std::string throughput_unit(const TrainContext& context) { return context.model.per_position() ? "tokens/s" : "img/s"; }

std::unique_ptr<Callback> make_progress_log(const TrainContext& context) {
  return std::make_unique<ProgressLog>(context);
}

}  // namespace ringtrain
