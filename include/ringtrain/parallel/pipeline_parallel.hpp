// Pipeline model parallel (GPipe, 1F1B) and its hybrid with data parallel. A world of dp x P ranks holds dp
// replicas of the model, each cut by layers into P stages on P ranks: rank r runs stage r / dp of replica
// r % dp (a stage's replicas sit on neighbouring ranks, as in Megatron-LM). Each replica's batch is split
// into M micro-batches; activations go forward and their gradients backward between neighbouring stages by
// non-blocking point-to-point (MPI on the CPU, NCCL on GPUs), and the stage's ranks in the other replicas
// average its gradients through the allreduce engine during the last micro-batch's backward.
//
// One set of layers serves every micro-batch in flight: after a forward the stage trades the layers'
// forward state (Layer::forward_state) with a stash for that micro-batch, and trades it back before the
// backward. Gradients add up over the micro-batches, each scaled by 1 / (M x dp): the step applies the mean
// over the global batch, as one rank would.
#pragma once
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "ringtrain/comm/agreement.hpp"
#include "ringtrain/parallel/gradient_averager.hpp"
#include "ringtrain/parallel/gradient_clipper.hpp"
#include "ringtrain/parallel/parallel_mode.hpp"
#include "ringtrain/parallel/pipeline_schedule.hpp"
#include "ringtrain/parallel/replica_sum.hpp"

namespace ringtrain {

class PipelineParallel final : public ParallelMode, private LayerObserver {
 public:
  // Collective. parts.model is built whole on every rank from one seed (or loaded from one checkpoint); this
  // rank moves its stage's layers to parts.device and trains only those.
  PipelineParallel(const ParallelConfig& config, Communicator& world, const ModeParts& parts);
  ~PipelineParallel() override;

  void train_step(const Batch& batch, float lr) override;
  Score evaluate(BatchLoader& loader) override;
  void sync_buffers() override;
  void gather_model() override;
  bool agree_to_stop(bool requested) override;
  void gather_state(OptimizerState& optimizer) override;
  // "  pipeline: 2 stages x 4 micro-batches (1f1b); stage 0 conv1..relu2, stage 1 linear1..linear2"
  std::string description() const override;
  // On the CPU: "  pipeline busy 84.0% of each step (ideal for 8 micro-batches over 2 stages: 88.9%)".
  EpochReport epoch_report() override;

  int stage() const { return stage_; }
  LayerRange layers() const { return layers_; }
  const std::vector<LayerRange>& stage_layers() const { return ranges_; }
  // The most micro-batches whose activations this stage has held at once, over every step so far.
  int peak_micro_batches_held() const { return peak_held_; }

 private:
  struct Slot;
  // Host seconds in train_step since the last report, and of those, blocked on other ranks (receives, sends,
  // the replicas' gradient average). Over all ranks, 1 - waiting / step is the pipeline's utilisation:
  // about M / (M + P - 1) at best, the rest being the bubble and communication.
  struct Busy {
    double step_s = 0.0, waiting_s = 0.0;
  };

  void forward(const Batch& batch, int micro);
  void backward(int micro);
  Slot& acquire(int micro);
  void release(int micro);
  void receive_activation(int micro);
  void receive_gradient(int micro);
  void select_targets(const Targets& all, int micro);
  void wait_for(Transfer& transfer);  // waits, counted as waiting
  void record(const char* pass, int micro, Timeline::Clock::time_point begin);  // a compute span
  void backward_end(size_t layer) override;

  Model& model_;
  Optimizer& optimizer_;
  Timeline* timeline_;
  Device device_;
  std::vector<LayerRange> ranges_;
  LayerRange layers_;
  int stage_ = 0, stages_ = 1, replica_ = 0, replicas_ = 1;
  int micro_batches_ = 1;
  PipelineSchedule schedule_ = PipelineSchedule::one_f_one_b;
  int64_t micro_rows_ = 0;  // set per step from the batch
  std::vector<PipelineOp> ops_;
  float loss_scale_ = 1.0f;

  std::unique_ptr<Communicator> pipe_;                  // this replica's P ranks, ranked by stage
  std::unique_ptr<Communicator> activations_, gradients_;  // point-to-point, one per direction
  bool prefetch_ = false;  // post the next receive as soon as one is taken (host backends; see the .cpp)
  bool reduce_after_sends_ = false;  // the replicas' allreduces wait for the step's last send (NCCL; see the .cpp)
  std::unique_ptr<Communicator> stage_group_;            // this stage in every replica
  std::unique_ptr<GradientAverager> averager_;         // when there is more than one replica
  std::unique_ptr<GradientClipper> clipper_;           // --clip-grad-norm (off: does nothing)
  std::unique_ptr<SharedBatchStatistics> batch_statistics_;  // --sync-batchnorm with more than one replica
  bool last_backward_ = false;

  std::vector<Param*> params_;     // the stage's that train (Model::trained_params)
  std::vector<size_t> positions_;  // theirs among the model's, for checkpoints
  bool backward_needed_ = true;    // some layer up to this stage's last trains
  bool sends_gradient_ = false;    // and some layer before this stage's first
  int64_t step_ = 0;
  StopVote stop_vote_;
  bool stopping_ = false;
  Tensor stage_input_;  // the object every micro-batch enters through (its buffer is traded per micro-batch)
  ForwardState state_;  // the stage's layers' forward state, stage_input_ first
  Tensor incoming_activation_, incoming_gradient_, eval_input_;
  std::unique_ptr<Transfer> activation_in_, gradient_in_;
  Targets micro_targets_;
  std::map<int, std::unique_ptr<Slot>> held_;
  std::vector<std::unique_ptr<Slot>> free_;
  int peak_held_ = 0;
  Busy busy_;
};

}  // namespace ringtrain
