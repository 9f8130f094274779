#include "ringtrain/parallel/data_parallel.hpp"

namespace ringtrain {

DataParallel::DataParallel(Communicator& world, Model& model, Loss& loss, Optimizer& optimizer,
                           const EngineConfig& engine, Timeline* timeline, std::ostream& warnings)
    : world_(world), model_(model), loss_(loss), optimizer_(optimizer), params_(model.params()) {
  if (world.size() == 1) return;
  averager_ = std::make_unique<GradientAverager>(world, model, model.all_layers(), engine, timeline, warnings);
  model.add_observer(this);
}

DataParallel::~DataParallel() { model_.remove_observer(this); }

void DataParallel::backward_end(size_t layer) { averager_->layer_done(layer); }

void DataParallel::train_step(const Batch& batch, float lr) {
  model_.zero_grad();
  loss_.forward(model_.forward(batch.x, Mode::train), batch.y);
  // Each rank's gradient is of its loss / ranks, so the engine's sum is the average over the global batch
  // with no pass to divide. Backward hands each layer's gradients to the engine as it goes.
  model_.backward(loss_.backward(1.0f / static_cast<float>(world_.size())));
  if (averager_) averager_->finish();
  optimizer_.step(params_, lr);
}

Score DataParallel::evaluate(BatchLoader& loader) { return score_batches(model_, loss_, loader); }

Score DataParallel::sum_over_ranks(const Score& mine) { return sum_scores(world_, mine); }

void DataParallel::sync_buffers() {
  if (averager_) averager_->average_buffers();
}

}  // namespace ringtrain
