// --save FILE: at the end of a run that was not interrupted, rank 0 writes the whole trained model
// (model_file.hpp), gathered from the ranks that hold its parts.
#include "ringtrain/comm/agreement.hpp"
#include "ringtrain/train/callbacks.hpp"
#include "ringtrain/train/model_file.hpp"

namespace ringtrain {

// Every rank learns of a failed write (a full disk), so that each leaves on the same error instead of
// waiting for rank 0 at the next collective.
void save_gathered_model(const TrainContext& c, const std::string& path) {
  c.mode.gather_model();
  std::string failure;
  if (c.world.rank() == 0) {
    try {
      save_model(path, c.model, c.targets, c.inputs);
    } catch (const std::exception& e) {
      failure = e.what();
    }
  }
  raise_if_any_failed(c.world, failure);
}

namespace {

class ModelSaver final : public Callback {
 public:
  explicit ModelSaver(const TrainContext& context) : c_(context) {}
  void on_train_end(TrainState& state, TrainResult&) override {
    if (state.interrupted) return;
    save_gathered_model(c_, c_.config.save_model);
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
