// --l1 LAMBDA: the optimizers add the penalty's gradient lambda * sign(w) on the kernels at every step
// (nn/optimizer.hpp); this adds the penalty itself, lambda * sum |w| over the kernels, to the epoch's loss and
// val_loss, as Keras adds a kernel_regularizer's to the losses it reports, so that early stopping on val_loss
// watches what training minimises. It is the penalty of the weights at the epoch's end; the running loss of
// the step lines (--log-every) and the test split's loss are the data's alone. A column of the metrics CSV
// and a line under the epoch's say how large it is.
#include <cmath>
#include <cstdio>

#include "ringtrain/train/callbacks.hpp"

namespace ringtrain {

namespace {

// sum |w| over the model's kernels, wherever they are (a GPU's are copied to the host).
double kernel_l1_norm(Model& model) {
  double sum = 0.0;
  for (Param* p : model.params()) {
    if (!p->kernel) continue;
    const Tensor w = p->value.to(Device::cpu);  // once an epoch
    for (int64_t i = 0; i < w.numel(); ++i) sum += std::fabs(static_cast<double>(w[i]));
  }
  return sum;
}

class L1Penalty final : public Callback {
 public:
  explicit L1Penalty(const TrainContext& context) : c_(context) {}
  // Collective: rank 0's model holds every layer after the gather, and its figure is every rank's.
  void on_epoch_end(TrainState&, EpochRecord& record) override {
    c_.mode.gather_model();
    double penalty = c_.world.rank() == 0 ? c_.config.optimizer.l1 * kernel_l1_norm(c_.model) : 0.0;
    c_.world.broadcast(&penalty, sizeof penalty, 0);
    record.train.loss_sum += penalty * static_cast<double>(record.train.samples);
    record.val.loss_sum += penalty * static_cast<double>(record.val.samples);
    char text[32];
    std::snprintf(text, sizeof text, "%.6g", penalty);
    record.columns.emplace_back("l1_penalty", text);
    const char* where = record.val.samples ? " (in the loss and val_loss above)\n" : " (in the loss above)\n";
    record.report += std::string("  l1 penalty ") + text + where;
  }

 private:
  const TrainContext& c_;
};

}  // namespace

std::unique_ptr<Callback> make_l1_penalty(const TrainContext& context) {
  if (context.config.optimizer.l1 == 0.0f) return nullptr;
  return std::make_unique<L1Penalty>(context);
}

}  // namespace ringtrain
