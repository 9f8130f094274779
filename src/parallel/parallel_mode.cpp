#include "ringtrain/parallel/parallel_mode.hpp"

#include <algorithm>

#include "ringtrain/data/device_batches.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/parallel/data_parallel.hpp"
#include "ringtrain/parallel/parameter_server.hpp"
#include "ringtrain/parallel/pipeline_parallel.hpp"

namespace ringtrain {

Score score_batches(Model& model, Loss& loss, BatchLoader& loader) {
  DeviceBatches batches(loader, model.device());
  batches.start_epoch(0);
  while (const Batch* batch = batches.next()) loss.forward(model.forward(batch->x, Mode::eval), batch->y);
  return loss.take_score();
}

Score sum_scores(Communicator& comm, const Score& mine) {
  if (comm.size() == 1) return mine;
  double sums[3] = {mine.loss_sum, mine.metric_sum, static_cast<double>(mine.samples)};
  comm.allreduce_sum(sums, 3);
  return {sums[0], sums[1], static_cast<int64_t>(sums[2])};
}

namespace {
// `tensor` itself when comm can read its memory, else a host copy.
Tensor* reachable(const Communicator& comm, Tensor& tensor, Tensor& staging) {
  if (tensor.device() == comm.device()) return &tensor;
  staging = tensor.to(comm.device());
  return &staging;
}
}  // namespace

void broadcast_tensor(Communicator& comm, Tensor& tensor, int root) {
  Tensor staging;
  Tensor* t = reachable(comm, tensor, staging);
  comm.broadcast(t->data(), sizeof(float) * static_cast<size_t>(t->numel()), root);
  if (t != &tensor) tensor.copy_from(*t);
}

void average_tensor(Communicator& comm, Tensor& tensor) {
  Tensor staging;
  Tensor* t = reachable(comm, tensor, staging);
  comm.allreduce_sum(t->data(), static_cast<size_t>(t->numel()));
  Tensor host = t->to(Device::cpu);  // small: BatchNorm statistics
  const float scale = 1.0f / static_cast<float>(comm.size());
  for (int64_t i = 0; i < host.numel(); ++i) host[i] *= scale;
  tensor.copy_from(host);
}

Score ParallelMode::take_score() {
  settle_checks();
  return loss_.take_score();
}

void ParallelMode::settle_checks() {
  if (guard_) guard_->settle();
}

DataShare data_share(const ParallelConfig& config, int rank, int world) {
  if (config.mode == ModeKind::ps) {
    const int workers = world - config.ps.servers;
    return {rank < workers ? rank : 0, std::max(workers, 1)};
  }
  if (config.pipeline.pipelined()) {
    const int replicas = std::max(world / std::max(config.pipeline.stages, 1), 1);
    return {rank % replicas, replicas};
  }
  return {rank, world};
}

std::unique_ptr<ParallelMode> make_parallel_mode(const ParallelConfig& config, Communicator& world,
                                                 const ModeParts& parts) {
  if (config.mode == ModeKind::ps) return std::make_unique<ParameterServerMode>(config, world, parts);
  if (config.pipeline.pipelined()) return std::make_unique<PipelineParallel>(config, world, parts);
  parts.model.to(parts.device);
  return std::make_unique<DataParallel>(config, world, parts);
}

}  // namespace ringtrain
