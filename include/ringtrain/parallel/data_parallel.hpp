// Synchronous data parallel (Horovod, PyTorch DDP): every rank holds the whole model, starts from rank 0's
// parameters, runs forward and backward on its slice of the global batch, and every gradient is averaged
// over the ranks before the identical optimizer step. A layer's gradients go to the allreduce engine as
// soon as its backward ends, so communication overlaps the backward of the layers below it. On the GPU the
// engine's data communicator is NCCL: gradients are reduced on the communication stream, which waits for
// each layer's backward by an event, and the optimizer's kernels wait for the reductions the same way.
// Frozen layers (Model::freeze) are neither updated nor averaged: their gradients never reach the engine.
// With --shard-optimizer (ZeRO stage 1, sharded_optimizer.hpp) the engine makes way for a reduce-scatter of
// all gradients after backward, an update of this rank's share, and an allgather of the parameters.
// --clip-grad-norm clips the averaged gradient (sharded: the norm of every rank's share, one scalar allreduce).
#pragma once
#include "ringtrain/comm/agreement.hpp"
#include "ringtrain/parallel/gradient_averager.hpp"
#include "ringtrain/parallel/gradient_clipper.hpp"
#include "ringtrain/parallel/parallel_mode.hpp"
#include "ringtrain/parallel/replica_sum.hpp"
#include "ringtrain/parallel/sharded_optimizer.hpp"

namespace ringtrain {

class DataParallel final : public ParallelMode, private LayerObserver {
 public:
  // Collective. Every rank built the same model from the seed (or loaded the same checkpoint); parts.model
  // is on parts.device already.
  DataParallel(const ParallelConfig& config, Communicator& world, const ModeParts& parts);
  ~DataParallel() override;

  void train_step(const Batch& batch, float lr) override;
  Score evaluate(BatchLoader& loader) override;
  void sync_buffers() override;
  void gather_model() override {}  // every rank holds the whole model, the same after sync_buffers
  bool agree_to_stop(bool requested) override;
  void gather_state(OptimizerState& optimizer) override;
  // The optimizer state this rank holds (rank 0's share when sharded: the ranks' differ by a few elements).
  std::string description() const override;
  // The gradients reduced so far (none on one rank): only those of layers that train (Model::freeze).
  EngineStats gradient_traffic() const { return averager_ ? averager_->stats() : EngineStats{}; }

 private:
  void backward_end(size_t layer) override;

  Model& model_;
  Optimizer& optimizer_;
  std::vector<Param*> params_;     // those that train (Model::trained_params)
  std::vector<size_t> positions_;  // theirs among the model's, for checkpoints
  Timeline* timeline_;  // null without --timeline
  std::unique_ptr<GradientAverager> averager_;  // none on a one-rank world, nor with sharded_
  std::unique_ptr<ShardedOptimizer> sharded_;    // --shard-optimizer on more than one rank
  std::unique_ptr<SharedBatchStatistics> batch_statistics_;  // --sync-batchnorm on more than one rank
  std::unique_ptr<GradientClipper> clipper_;  // --clip-grad-norm (off: does nothing)
  int64_t step_ = 0;
  StopVote stop_vote_;
  bool stopping_ = false;
};

}  // namespace ringtrain
