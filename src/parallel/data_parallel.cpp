#include "ringtrain/parallel/data_parallel.hpp"

#include <cstdio>

#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

DataParallel::DataParallel(const ParallelConfig& config, Communicator& world, const ModeParts& parts)
    : ParallelMode(world, parts.loss), model_(parts.model), optimizer_(parts.optimizer),
      params_(params_of(parts.model.trained_params(parts.model.all_layers()))),
      positions_(parts.model.trained_positions(parts.model.all_layers())), timeline_(parts.timeline),
      step_(parts.resume.step), stop_vote_(world) {
  // One rank has nothing to shard: it trains as without the flag.
  if (config.shard_optimizer && world.size() > 1) {
    if (parts.device != Device::cpu)
      throw Error("--shard-optimizer runs on the CPU: leave it out with --device cuda (GPU gradients are averaged "
                  "by NCCL's allreduce)");
    start_from_first(world, model_, model_.all_layers());
    sharded_ = std::make_unique<ShardedOptimizer>(world, optimizer_, params_, positions_, config.engine.fusion_bytes,
                                                  parts.resume.optimizer);
  } else if (parts.resume.optimizer) {
    copy_optimizer_state_in(*parts.resume.optimizer, positions_, optimizer_, params_);
  }
  // Every rank holds the same averaged gradients, so every rank decides alike without a word. Sharded, each
  // holds the sums of its own part only (the rest: partial sums, which are non-finite only where the sums
  // are): the ranks agree on the verdict over `world`.
  guard_ = std::make_unique<NonfiniteGuard>(parts.device, config.skip_nonfinite, NonfiniteGuard::Verdict::every_rank,
                                            model_.trained_params(model_.all_layers()),
                                            sharded_ ? &world : nullptr, nullptr);
  optimizer_.skip_update_when(guard_->skip_flag());
  // Sharded, each rank holds the averaged gradient of its share alone: the norm sums the shares.
  clipper_ = std::make_unique<GradientClipper>(parts.device, config.clip_grad_norm, sharded_ ? &world : nullptr,
                                               nullptr);
  if (world.size() == 1) return;
  if (config.sync_batchnorm) batch_statistics_ = std::make_unique<SharedBatchStatistics>(model_, world);
  if (sharded_) return;  // no engine: the gradients are reduce-scattered once backward has ended
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
  if (sharded_) {
    const Timeline::Scope span(timeline_, Timeline::training, "reduce-scatter");
    sharded_->reduce_gradients();
  }
  if (!guard_->allow_update(++step_)) return;
  clipper_->clip(sharded_ ? sharded_->grad_spans() : grad_spans(params_));
  const Timeline::Scope span(timeline_, Timeline::training, "optimizer step");
  if (sharded_) sharded_->step(lr);  // and the allgather of the parameters
  else optimizer_.step(params_, lr);
}

Score DataParallel::evaluate(BatchLoader& loader) { return score_batches(model_, loss_, loader); }

void DataParallel::sync_buffers() {
  if (averager_) averager_->average_buffers();
  if (sharded_) average_buffers(world_, model_, model_.all_layers());
}

bool DataParallel::agree_to_stop(bool requested) {
  if (!stopping_) stopping_ = stop_vote_.cast(requested);  // a step late, at no cost to the step
  return stopping_;
}

std::string DataParallel::description() const {
  // In the unit that keeps 2-3 significant digits: a small model's state is bytes or kilobytes.
  auto size_text = [](size_t floats) {
    const double bytes = static_cast<double>(floats * sizeof(float));
    const char* units[] = {"B", "kB", "MB", "GB", "TB"};
    int unit = 0;
    double shown = bytes;
    for (; shown >= 1000 && unit < 4; ++unit) shown /= 1000;
    char text[32];
    std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.1f %s", shown, units[unit]);
    return std::string(text);
  };
  const size_t states = optimizer_.state_names().size();
  if (states == 0) return "  optimizer state none (this optimizer keeps no state per parameter)\n";
  if (!sharded_) {
    size_t elements = 0;
    for (const Param* p : params_) elements += static_cast<size_t>(p->value.numel());
    return "  optimizer state " + size_text(states * elements) + " a rank\n";
  }
  return "  optimizer state " + size_text(states * sharded_->share_size()) + " a rank (1/" +
         std::to_string(world_.size()) + " of " + size_text(states * sharded_->total_size()) +
         ": --shard-optimizer)\n";
}

void DataParallel::gather_state(OptimizerState& optimizer) {
  if (sharded_) return sharded_->gather_state(optimizer);
  // Every rank's optimizer holds the same state; rank 0's is the one written.
  if (world_.rank() == 0) copy_optimizer_state_out(optimizer_, params_, optimizer, positions_);
}

}  // namespace ringtrain
