#include "ringtrain/parallel/data_parallel.hpp"

namespace ringtrain {

DataParallel::DataParallel(const ParallelConfig& config, Communicator& world, const ModeParts& parts)
    : ParallelMode(world, parts.loss), model_(parts.model), optimizer_(parts.optimizer),
      params_(params_of(parts.model.trained_params(parts.model.all_layers()))),
      positions_(parts.model.trained_positions(parts.model.all_layers())), timeline_(parts.timeline),
      step_(parts.resume.step), stop_vote_(world) {
  if (parts.resume.optimizer) copy_optimizer_state_in(*parts.resume.optimizer, positions_, optimizer_, params_);
  // Every rank holds the same averaged gradients, so every rank decides alike without a word.
  guard_ = std::make_unique<NonfiniteGuard>(parts.device, config.skip_nonfinite, NonfiniteGuard::Verdict::every_rank,
                                            model_.trained_params(model_.all_layers()), nullptr, nullptr);
  optimizer_.skip_update_when(guard_->skip_flag());
  if (world.size() == 1) return;
  if (config.sync_batchnorm) batch_statistics_ = std::make_unique<SharedBatchStatistics>(model_, world);
  averager_ = std::make_unique<GradientAverager>(world, model_, model_.all_layers(), config.engine, parts.timeline,
                                                 parts.warnings);
  model_.add_observer(this);
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
  if (guard_->allow_update(++step_)) {
    const Timeline::Scope span(timeline_, Timeline::training, "optimizer step");
    optimizer_.step(params_, lr);
  }
}

Score DataParallel::evaluate(BatchLoader& loader) { return score_batches(model_, loss_, loader); }

void DataParallel::sync_buffers() {
  if (averager_) averager_->average_buffers();
}

bool DataParallel::agree_to_stop(bool requested) {
  if (!stopping_) stopping_ = stop_vote_.cast(requested);  // a step late, at no cost to the step
  return stopping_;
}

void DataParallel::gather_state(OptimizerState& optimizer) {
  // Every rank's optimizer holds the same state; rank 0's is the one written.
  if (world_.rank() == 0) copy_optimizer_state_out(optimizer_, params_, optimizer, positions_);
}

}  // namespace ringtrain
