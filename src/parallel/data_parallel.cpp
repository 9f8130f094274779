#include "ringtrain/parallel/data_parallel.hpp"

namespace ringtrain {

DataParallel::DataParallel(Communicator& world, Model& model, Loss& loss, Optimizer& optimizer,
                           const EngineConfig& engine, Timeline* timeline, std::ostream& warnings)
    : world_(world), model_(model), loss_(loss), optimizer_(optimizer), params_(model.params()) {
  for (size_t i = 0; i < model.size(); ++i) layer_params_.push_back(model.named_params(i));
  if (world.size() == 1) return;
  for (Param* p : params_) world.broadcast(p->value.data(), p->value.numel() * sizeof(float), 0);
  for (const NamedTensor& b : model.named_buffers()) world.broadcast(b.tensor->data(), b.tensor->numel() * sizeof(float), 0);
  engine_ = std::make_unique<AllreduceEngine>(world.split_off(), world.split_off(), engine, timeline, warnings);
  model.add_observer(this);
}

DataParallel::~DataParallel() { model_.remove_observer(this); }

void DataParallel::backward_end(size_t layer) {
  for (const NamedParam& p : layer_params_[layer]) engine_->submit(p.name, p.param->grad.data(), p.param->grad.numel());
}

Score DataParallel::train_step(const Batch& batch, float lr) {
  model_.zero_grad();
  const Score score = loss_.forward(model_.forward(batch.x, Mode::train), batch.y);
  // Each rank's gradient is of its loss / ranks, so the engine's sum is the average over the global batch
  // with no pass to divide. Backward hands each layer's gradients to the engine as it goes.
  model_.backward(loss_.backward(1.0f / static_cast<float>(world_.size())));
  if (engine_) engine_->wait();  // every gradient now holds the average over the ranks
  optimizer_.step(params_, lr);
  return score;
}

Score DataParallel::sum_over_ranks(const Score& mine) { return sum_scores(world_, mine); }

void DataParallel::sync_buffers() {
  if (world_.size() == 1) return;
  const float scale = 1.0f / static_cast<float>(world_.size());
  for (const NamedTensor& b : model_.named_buffers()) {
    world_.allreduce_sum(b.tensor->data(), b.tensor->numel());
    for (int64_t i = 0; i < b.tensor->numel(); ++i) b.tensor->data()[i] *= scale;
  }
}

}  // namespace ringtrain
