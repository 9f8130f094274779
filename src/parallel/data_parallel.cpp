#include "ringtrain/parallel/data_parallel.hpp"

#include "ringtrain/comm/nccl_communicator.hpp"

namespace ringtrain {

DataParallel::DataParallel(Communicator& world, Model& model, Loss& loss, Optimizer& optimizer,
                           const EngineConfig& engine, Timeline* timeline, std::ostream& warnings)
    : world_(world), model_(model), loss_(loss), optimizer_(optimizer), params_(model.params()) {
  for (size_t i = 0; i < model.size(); ++i) layer_params_.push_back(model.named_params(i));
  if (world.size() == 1) return;
  for (Param* p : params_) broadcast_tensor(world, p->value, 0);
  for (const NamedTensor& b : model.named_buffers()) broadcast_tensor(world, *b.tensor, 0);
  // Negotiation stays on MPI (small host messages); the gradients travel where they live.
  std::unique_ptr<Communicator> control = world.split_off();
  std::unique_ptr<Communicator> data =
      model.device() == Device::cuda ? make_nccl_communicator(world) : world.split_off();
  engine_ = std::make_unique<AllreduceEngine>(std::move(control), std::move(data), engine, timeline, warnings);
  model.add_observer(this);
}

DataParallel::~DataParallel() { model_.remove_observer(this); }

void DataParallel::backward_end(size_t layer) {
  if (layer_params_[layer].empty()) return;
  comm_stream_waits_for_compute();  // GPU: the reduction must not read the gradients before backward wrote them
  for (const NamedParam& p : layer_params_[layer]) engine_->submit(p.name, p.param->grad.data(), p.param->grad.numel());
}

void DataParallel::train_step(const Batch& batch, float lr) {
  model_.zero_grad();
  loss_.forward(model_.forward(batch.x, Mode::train), batch.y);
  // Each rank's gradient is of its loss / ranks, so the engine's sum is the average over the global batch
  // with no pass to divide. Backward hands each layer's gradients to the engine as it goes.
  model_.backward(loss_.backward(1.0f / static_cast<float>(world_.size())));
  if (engine_) {
    engine_->wait();  // every gradient now holds the average over the ranks (GPU: is queued to)
    compute_stream_waits_for_comm();
  }
  optimizer_.step(params_, lr);
}

Score DataParallel::sum_over_ranks(const Score& mine) { return sum_scores(world_, mine); }

void DataParallel::sync_buffers() {
  if (world_.size() == 1) return;
  for (const NamedTensor& b : model_.named_buffers()) average_tensor(world_, *b.tensor);
}

}  // namespace ringtrain
