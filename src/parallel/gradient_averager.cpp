#include "ringtrain/parallel/gradient_averager.hpp"

#include "ringtrain/comm/nccl_communicator.hpp"
#include "ringtrain/parallel/parallel_mode.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

void start_from_first(Communicator& group, Model& model, LayerRange layers) {
  for (size_t i = layers.begin; i < layers.end; ++i) {
    for (const NamedParam& p : model.named_params(i)) broadcast_tensor(group, p.param->value, 0);
    for (const NamedTensor& b : model.named_buffers(i)) broadcast_tensor(group, *b.tensor, 0);
  }
}

void average_buffers(Communicator& group, Model& model, LayerRange layers) {
  // A frozen layer's buffers are the same everywhere and stay so; averaging could change their last bits.
  for (size_t i = layers.begin; i < layers.end; ++i)
    if (!model.frozen(i))
      for (const NamedTensor& b : model.named_buffers(i)) average_tensor(group, *b.tensor);
}

GradientAverager::GradientAverager(Communicator& group, Model& model, LayerRange layers, const EngineConfig& engine,
                                   Timeline* timeline, std::ostream& warnings)
    : group_(group), model_(model), layers_(layers) {
  start_from_first(group, model, layers);
  // A frozen layer's gradients stay off the wire: the engine never hears of them.
  for (size_t i = layers.begin; i < layers.end; ++i) layer_params_.push_back(model.trained_params({i, i + 1}));
  if (model.device() == Device::cuda && group.wire_bytes_per_float() != sizeof(float))
    throw Error("--compress applies to CPU gradients (ringtrain's ring); GPU gradients go over NCCL as float32: "
                "leave --compress out with --device cuda");
  // Negotiation stays on MPI (small host messages); the gradients travel where they live.
  std::unique_ptr<Communicator> control = group.split_off();
  std::unique_ptr<Communicator> data =
      model.device() == Device::cuda ? make_nccl_communicator(group) : group.split_off();
  engine_ = std::make_unique<AllreduceEngine>(std::move(control), std::move(data), engine, timeline, warnings);
}

void GradientAverager::layer_done(size_t layer) {
  const std::vector<NamedParam>& params = layer_params_[layer - layers_.begin];
  if (params.empty()) return;
  comm_stream_waits_for_compute();  // GPU: the reduction must not read the gradients before backward wrote them
  for (const NamedParam& p : params) engine_->submit(p.name, p.param->grad.data(), p.param->grad.numel());
}

void GradientAverager::finish() {
  engine_->wait();  // every gradient now holds the average over the group (GPU: is queued to)
  compute_stream_waits_for_comm();
}

void GradientAverager::average_buffers() { ringtrain::average_buffers(group_, model_, layers_); }

EngineStats GradientAverager::stats() const { return engine_->stats(); }

}  // namespace ringtrain
