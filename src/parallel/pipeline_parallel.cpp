#include "ringtrain/parallel/pipeline_parallel.hpp"

#include <algorithm>
#include <chrono>
#include <utility>

#include "ringtrain/comm/nccl_communicator.hpp"
#include "ringtrain/data/device_batches.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

namespace {

size_t bytes_of(const Tensor& t) { return sizeof(float) * static_cast<size_t>(t.numel()); }

Shape with_batch(int64_t rows, const Shape& sample) {
  Shape shape{rows};
  shape.insert(shape.end(), sample.begin(), sample.end());
  return shape;
}

// Rows [first, first + rows) of `src` into `dst`, on dst's device.
void copy_rows(const Tensor& src, int64_t first, int64_t rows, Tensor& dst) {
  Shape shape = src.shape();
  shape[0] = rows;
  dst.resize(shape);
  const int64_t row = src.numel() / src.dim(0);
  copy_bytes(dst.data(), dst.device(), src.data() + first * row, src.device(), bytes_of(dst));
}

// The stage that runs `layer`.
size_t stage_of(const std::vector<LayerRange>& ranges, size_t layer) {
  size_t s = 0;
  while (layer >= ranges[s].end) ++s;
  return s;
}

// A tied weight (GPT-2's output layer reads the embedding's table) lives in one layer's stage: a split between
// the two would need the table, and its gradient, on both. Every rank computes the same split and refuses alike.
void check_tied_layers_share_a_stage(Model& model, const std::vector<LayerRange>& ranges) {
  for (const auto& [borrower, owner] : model.tied_layers()) {
    const size_t a = stage_of(ranges, borrower), b = stage_of(ranges, owner);
    if (a != b)
      throw CollectiveError("layer " + std::to_string(borrower) + " '" + model.layer(borrower).spec() +
                            "' shares its weight with layer " + std::to_string(owner) + " '" + model.layer(owner).spec() +
                            "', and the pipeline puts them in stages " + std::to_string(a) + " and " + std::to_string(b) +
                            ": a pipeline trains untied models (without tied=1, as gpt-tiny is)");
  }
}

// Tags keep one micro-batch's message from matching another's receive; MPI guarantees tags up to 32767.
int tag_of(int micro) { return micro % 32768; }

}  // namespace

// One micro-batch between its forward and its backward: the stage's forward state, traded out, and the
// gradients that come back for it.
struct PipelineParallel::Slot {
  explicit Slot(const ForwardState& state, Device device)
      : stash(state), output_grad(Shape{0}, device), input_grad(Shape{0}, device) {}
  ForwardStash stash;
  Tensor output_grad;  // from the loss (last stage) or the next stage
  Tensor input_grad;   // what this stage sends back (the layers' own buffer is overwritten by the next backward)
  std::unique_ptr<Transfer> sent_activation, sent_gradient;
};

PipelineParallel::PipelineParallel(const ParallelConfig& config, Communicator& world, const ModeParts& parts)
    : ParallelMode(world, parts.loss), model_(parts.model), optimizer_(parts.optimizer), timeline_(parts.timeline),
      device_(parts.device), step_(parts.resume.step), stop_vote_(world) {
  const PipelineConfig& pipeline = config.pipeline;
  Model& model = parts.model;
  const Device device = parts.device;
  stages_ = pipeline.stages;
  micro_batches_ = pipeline.micro_batches;
  replicas_ = world.size() / stages_;
  stage_ = world.rank() / replicas_;
  replica_ = world.rank() % replicas_;
  ranges_ = pipeline.split.empty() ? balance_stages(layer_costs(model), stages_)
                                   : stages_at(pipeline.split, model.size());
  check_tied_layers_share_a_stage(model, ranges_);
  layers_ = ranges_[static_cast<size_t>(stage_)];
  schedule_ = pipeline.schedule;
  ops_ = pipeline_ops(schedule_, stage_, stages_, micro_batches_);
  loss_scale_ = 1.0f / static_cast<float>(micro_batches_ * replicas_);

  model.to(device, layers_);
  params_ = params_of(model.trained_params(layers_));
  positions_ = model.trained_positions(layers_);
  if (parts.resume.optimizer) copy_optimizer_state_in(*parts.resume.optimizer, positions_, optimizer_, params_);
  // Backward stops at the model's first trained layer (Model::freeze): a stage wholly below it runs none, and
  // the stage that holds it sends no gradient back. Both sides of each boundary read this from one model.
  backward_needed_ = model.first_trained_layer() < layers_.end;
  sends_gradient_ = stage_ > 0 && model.first_trained_layer() < layers_.begin;
  pipe_ = world.split(replica_, stage_);
  stage_group_ = world.split(stage_, replica_);
  if (device == Device::cuda) {
    activations_ = make_nccl_communicator(*pipe_, NcclStream::own);
    gradients_ = make_nccl_communicator(*pipe_, NcclStream::own);
  } else {
    activations_ = pipe_->split_off();
    gradients_ = pipe_->split_off();
  }
  // On the host a receive posted early lets MPI fill the buffer while this stage computes. NCCL's receive
  // would instead hold its stream, and with it this stage's next send, until the neighbour's send arrives;
  // its calls return at once anyway, so a receive is queued only where it is needed.
  prefetch_ = activations_->device() == Device::cpu;
  // NCCL: ranks that share communicators must queue their operations on them in one order, or each can
  // wait in a kernel for a peer that waits in another (NCCL's documentation on several communicators). The
  // point-to-point ones are queued by this thread in schedule order, the replicas' allreduces by the
  // engine's thread as gradients come: on GPUs the gradients are therefore handed over only after the
  // step's last send, so every rank queues this step's sends, then its allreduces, then the next step's.
  reduce_after_sends_ = activations_->device() != Device::cpu;

  stage_input_ = Tensor({0}, device);
  state_.tensors.push_back(&stage_input_);
  state_.append(model.forward_state(layers_));
  incoming_activation_ = Tensor({0}, device);
  incoming_gradient_ = Tensor({0}, device);
  eval_input_ = Tensor({0}, device);

  if (replicas_ > 1)
    averager_ = std::make_unique<GradientAverager>(*stage_group_, model, layers_, config.engine, timeline_,
                                                   parts.warnings);
  // Micro-batch k's statistics are summed over micro-batch k of every replica: the replicas run one
  // schedule, so their stages reach each batchnorm in the same order.
  if (replicas_ > 1 && config.sync_batchnorm)
    batch_statistics_ = std::make_unique<SharedBatchStatistics>(model, *stage_group_);
  // Each stage sees only its own gradients: the stages of a replica agree on the verdict (on GPUs over
  // NCCL, on the device), so any stage's non-finite gradient skips, or stops, every stage's step. The
  // replicas of a stage hold the same averaged gradients and so reach the same verdict.
  guard_ = std::make_unique<NonfiniteGuard>(device, config.skip_nonfinite, NonfiniteGuard::Verdict::every_rank,
                                            model.trained_params(layers_), pipe_.get(), activations_.get());
  optimizer_.skip_update_when(guard_->skip_flag());
  // The norm spans the stages, like the verdict: each replica's stages add their sums of squares of the
  // replicas' averaged gradients, so every rank clips alike.
  clipper_ = std::make_unique<GradientClipper>(device, config.clip_grad_norm, pipe_.get(), activations_.get());
  model.add_observer(this);
}

PipelineParallel::~PipelineParallel() { model_.remove_observer(this); }

void PipelineParallel::backward_end(size_t layer) {
  // Only the last micro-batch's backward finishes a layer's gradients; the reduction of each layer then
  // overlaps the backward of the layers below it, as in data parallel (on the host; see reduce_after_sends_).
  if (last_backward_ && averager_ && !reduce_after_sends_ && layer >= layers_.begin && layer < layers_.end)
    averager_->layer_done(layer);
}

void PipelineParallel::train_step(const Batch& batch, float lr) {
  const Timeline::Clock::time_point begin = Timeline::Clock::now();
  if (batch.size() % micro_batches_ != 0)
    throw Error("a batch of " + std::to_string(batch.size()) + " samples does not split into " +
                std::to_string(micro_batches_) + " micro-batches");
  micro_rows_ = batch.size() / micro_batches_;
  model_.zero_grad(layers_);
  if (prefetch_ && stage_ > 0) receive_activation(0);
  if (prefetch_ && stage_ + 1 < stages_ && backward_needed_) receive_gradient(0);
  for (size_t i = 0; i < ops_.size(); ++i) {
    last_backward_ = i + 1 == ops_.size();
    if (ops_[i].kind == PipelineOp::forward) forward(batch, ops_[i].micro);
    else backward(ops_[i].micro);
  }
  last_backward_ = false;
  for (auto& slot : free_)
    if (slot->sent_gradient) wait_for(*slot->sent_gradient);
  if (averager_) {
    if (reduce_after_sends_)
      for (size_t layer = layers_.end; layer-- > layers_.begin;) averager_->layer_done(layer);  // backward's order
    const Timeline::Clock::time_point since = Timeline::Clock::now();
    averager_->finish();
    busy_.waiting_s += seconds_since(since);
  }
  if (guard_->allow_update(++step_)) {
    clipper_->clip(grad_spans(params_));
    const Timeline::Scope span(timeline_, Timeline::training, "optimizer step");
    optimizer_.step(params_, lr);
  }
  busy_.step_s += seconds_since(begin);
}

void PipelineParallel::wait_for(Transfer& transfer) {
  const Timeline::Clock::time_point since = Timeline::Clock::now();
  transfer.wait();
  busy_.waiting_s += seconds_since(since);
}

void PipelineParallel::record(const char* pass, int micro, Timeline::Clock::time_point begin) {
  if (timeline_)
    timeline_->span(Timeline::training, std::string(pass) + " micro-batch " + std::to_string(micro), begin,
                    Timeline::Clock::now());
}

void PipelineParallel::forward(const Batch& batch, int micro) {
  Slot& slot = acquire(micro);
  if (stage_ > 0) {
    const Timeline::Scope wait(timeline_, Timeline::communication, "wait activation " + std::to_string(micro));
    if (!activation_in_) receive_activation(micro);
    wait_for(*activation_in_);
    activation_in_.reset();
    std::swap(incoming_activation_, stage_input_);
    if (prefetch_ && micro + 1 < micro_batches_) receive_activation(micro + 1);
  }
  // Compute spans leave out the waits: the gaps between them on the training row are the bubble.
  const Timeline::Clock::time_point begin = Timeline::Clock::now();
  if (stage_ == 0) copy_rows(batch.x, micro * micro_rows_, micro_rows_, stage_input_);
  const Tensor& out = model_.forward(stage_input_, Mode::train, layers_);
  if (stage_ + 1 == stages_) {
    select_targets(batch.y, micro);
    loss_.forward(out, micro_targets_);
    slot.output_grad.copy_from(loss_.backward(loss_scale_));
  } else {
    // The output buffer goes into the stash with the rest of the state and is not written again before
    // this micro-batch's backward, which waits for the send first.
    slot.sent_activation = activations_->isend(out.data(), bytes_of(out), stage_ + 1, tag_of(micro));
  }
  trade(state_, slot.stash);
  record("forward", micro, begin);
}

void PipelineParallel::backward(int micro) {
  Slot& slot = *held_.at(micro);
  if (slot.sent_activation) {
    wait_for(*slot.sent_activation);
    slot.sent_activation.reset();
  }
  if (!backward_needed_) {  // frozen below the first trained layer: nothing to compute or send
    trade(state_, slot.stash);
    release(micro);
    return;
  }
  if (stage_ + 1 < stages_) {
    const Timeline::Scope wait(timeline_, Timeline::communication, "wait gradient " + std::to_string(micro));
    if (!gradient_in_) receive_gradient(micro);
    wait_for(*gradient_in_);
    gradient_in_.reset();
    std::swap(incoming_gradient_, slot.output_grad);
    if (prefetch_ && micro + 1 < micro_batches_) receive_gradient(micro + 1);
  }
  const Timeline::Clock::time_point begin = Timeline::Clock::now();
  trade(state_, slot.stash);
  const Tensor& input_grad = model_.backward(slot.output_grad, layers_);
  if (sends_gradient_) {
    slot.input_grad.copy_from(input_grad);
    slot.sent_gradient = gradients_->isend(slot.input_grad.data(), bytes_of(slot.input_grad), stage_ - 1, tag_of(micro));
  }
  release(micro);
  record("backward", micro, begin);
}

void PipelineParallel::receive_activation(int micro) {
  incoming_activation_.resize(with_batch(micro_rows_, model_.layer_input_shape(layers_.begin)));
  activation_in_ = activations_->irecv(incoming_activation_.data(), bytes_of(incoming_activation_), stage_ - 1,
                                       tag_of(micro));
}

void PipelineParallel::receive_gradient(int micro) {
  incoming_gradient_.resize(with_batch(micro_rows_, model_.layer_input_shape(layers_.end)));
  gradient_in_ =
      gradients_->irecv(incoming_gradient_.data(), bytes_of(incoming_gradient_), stage_ + 1, tag_of(micro));
}

PipelineParallel::Slot& PipelineParallel::acquire(int micro) {
  std::unique_ptr<Slot> slot;
  if (free_.empty()) {
    slot = std::make_unique<Slot>(state_, device_);
  } else {
    slot = std::move(free_.back());
    free_.pop_back();
    if (slot->sent_gradient) wait_for(*slot->sent_gradient);  // its send buffer is about to be reused
    slot->sent_gradient.reset();
  }
  Slot& ref = *slot;
  held_[micro] = std::move(slot);
  peak_held_ = std::max(peak_held_, static_cast<int>(held_.size()));
  return ref;
}

void PipelineParallel::release(int micro) {
  auto it = held_.find(micro);
  free_.push_back(std::move(it->second));
  held_.erase(it);
}

void PipelineParallel::select_targets(const Targets& all, int micro) {
  const int64_t first = micro * micro_rows_;
  // Token data has a label per position: a row's labels are as many as the batch has per sample.
  const int64_t per_row = static_cast<int64_t>(all.labels.size()) / (micro_rows_ * micro_batches_);
  const int64_t first_label = first * per_row, labels = micro_rows_ * per_row;
  if (!all.labels.empty())
    micro_targets_.labels.assign(all.labels.begin() + first_label, all.labels.begin() + first_label + labels);
  if (all.values.numel() > 0) {
    if (micro_targets_.values.device() != all.values.device()) micro_targets_.values = Tensor({0}, all.values.device());
    copy_rows(all.values, first, micro_rows_, micro_targets_.values);
  }
  if (all.device_labels.bytes() > 0) {
    const size_t bytes = sizeof(int32_t) * static_cast<size_t>(labels);
    void* dst = micro_targets_.device_labels.reserve(bytes);
    copy_bytes(dst, Device::cuda, static_cast<const int32_t*>(all.device_labels.get()) + first_label, Device::cuda,
               bytes);
  }
}

Score PipelineParallel::evaluate(BatchLoader& loader) {
  // Forward only, whole batches: every stage of a replica reads the same batches, so a stage knows the size
  // of what arrives. Stages overlap across batches: a stage sends one and computes the next.
  DeviceBatches batches(loader, device_);
  batches.start_epoch(0);
  int index = 0;
  while (const Batch* batch = batches.next()) {
    const int tag = tag_of(index++);
    const Tensor* in = &batch->x;
    if (stage_ > 0) {
      eval_input_.resize(with_batch(batch->size(), model_.layer_input_shape(layers_.begin)));
      activations_->irecv(eval_input_.data(), bytes_of(eval_input_), stage_ - 1, tag)->wait();
      in = &eval_input_;
    }
    const Tensor& out = model_.forward(*in, Mode::eval, layers_);
    if (stage_ + 1 == stages_) loss_.forward(out, batch->y);
    else activations_->isend(out.data(), bytes_of(out), stage_ + 1, tag)->wait();
  }
  return loss_.take_score();
}

void PipelineParallel::sync_buffers() {
  if (averager_) averager_->average_buffers();
}

namespace {
// Rank 0 receives into its (host) `tensors` what `sender` sends of its own, from whichever device they are on.
void send_to_rank0(Communicator& world, const std::vector<Tensor*>& tensors, int sender, int tag) {
  for (Tensor* t : tensors) {
    if (world.rank() == 0) {
      world.recv(t->data(), bytes_of(*t), sender, tag);
    } else {
      const Tensor host = t->to(Device::cpu);
      world.send(host.data(), bytes_of(host), 0, tag);
    }
  }
}
}  // namespace

void PipelineParallel::gather_model() {
  // Replica 0's stage s (world rank s x replicas) sends its layers to rank 0, one stage after another:
  // parameters, buffers and random stream positions (which only a checkpoint reads).
  constexpr int kTag = 7;
  for (int s = 1; s < stages_; ++s) {
    const int sender = s * replicas_;
    if (world_.rank() != 0 && world_.rank() != sender) continue;
    const LayerRange range = ranges_[static_cast<size_t>(s)];
    for (size_t i = range.begin; i < range.end; ++i) {
      std::vector<Tensor*> tensors;
      for (Param* p : model_.layer(i).params()) tensors.push_back(&p->value);
      for (const NamedTensor& b : model_.layer(i).buffers()) tensors.push_back(b.tensor);
      send_to_rank0(world_, tensors, sender, kTag);  // rank 0 holds these layers on the host
      for (uint64_t* position : model_.layer(i).random_streams()) {
        if (world_.rank() == 0) world_.recv(position, sizeof *position, sender, kTag);
        else world_.send(position, sizeof *position, 0, kTag);
      }
    }
  }
}

bool PipelineParallel::agree_to_stop(bool requested) {
  if (!stopping_) stopping_ = stop_vote_.cast(requested);  // a step late, at no cost to the step
  return stopping_;
}

void PipelineParallel::gather_state(OptimizerState& optimizer) {
  gather_model();
  // Then each stage's optimizer state, from replica 0's rank of the stage; rank 0's own stage is a copy.
  constexpr int kTag = 8;
  if (world_.rank() == 0) copy_optimizer_state_out(optimizer_, params_, optimizer, positions_);
  for (int s = 1; s < stages_; ++s) {
    const int sender = s * replicas_;
    if (world_.rank() != 0 && world_.rank() != sender) continue;
    const LayerRange range = ranges_[static_cast<size_t>(s)];
    std::vector<Tensor*> tensors;  // parameter-major, state names within
    if (world_.rank() == sender) {
      for (const std::vector<Tensor*>& of_param : optimizer_.state(params_))
        tensors.insert(tensors.end(), of_param.begin(), of_param.end());
    } else {
      for (size_t i : model_.trained_positions(range))
        for (Tensor& t : optimizer.tensors[i]) tensors.push_back(&t);
    }
    send_to_rank0(world_, tensors, sender, kTag);
  }
}

}  // namespace ringtrain
