// --save FILE: at the end of a run that was not interrupted, rank 0 writes the whole trained model
// (model_file.hpp), gathered from the ranks that hold its parts.
#include "ringtrain/train/callbacks.hpp"
#include "ringtrain/train/model_file.hpp"

namespace ringtrain {

namespace {

class ModelSaver final : public Callback {
 public:
  explicit ModelSaver(const TrainContext& context) : c_(context) {}
  void on_train_end(TrainState& state, TrainResult&) override {
    if (state.interrupted) return;
    c_.mode.gather_model();
    if (c_.world.rank() != 0) return;
    save_model(c_.config.save_model, c_.model, c_.targets, c_.inputs);
    c_.log << "saved model to " << c_.config.save_model << std::endl;
  }

 private:
  const TrainContext& c_;
};

}  // namespace

std::unique_ptr<Callback> make_model_saver(const TrainContext& context) {
  if (context.config.save_model.empty()) return nullptr;
  return std::make_unique<ModelSaver>(context);
}

}  // namespace ringtrain
