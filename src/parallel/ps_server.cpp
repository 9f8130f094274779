#include "ps_server.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <iostream>
#include <limits>

#include <mpi.h>

#include "ringtrain/comm/backoff.hpp"
#include "ringtrain/nn/gradient_clip.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/stop_request.hpp"

namespace ringtrain::ps {

Server::Server(std::unique_ptr<Communicator> comm, Model& model, const PsConfig& config,
               const OptimizerConfig& optimizer, float clip_grad_norm, std::unique_ptr<Communicator> servers,
               int workers, int index, int64_t updates_per_epoch, const ResumePoint& resume, Timeline* timeline)
    : comm_(std::move(comm)), config_(config), workers_(workers), index_(index),
      updates_per_epoch_(updates_per_epoch), timeline_(timeline), optimizer_(make_optimizer(optimizer)),
      clip_grad_norm_(clip_grad_norm), servers_(std::move(servers)) {
  // The shard: every trained parameter's overlap with [begin_, end_) of the flat vector, with its starting
  // values (a frozen layer's parameters are not in the flat vector: Model::freeze).
  const std::vector<NamedParam> params = model.trained_params(model.all_layers());
  const std::vector<size_t> positions = model.trained_positions(model.all_layers());
  int64_t total = 0;
  for (const NamedParam& p : params) total += p.param->value.numel();
  begin_ = shard_begin(total, config.servers, index);
  end_ = shard_begin(total, config.servers, index + 1);
  int64_t offset = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    const Param& p = *params[i].param;
    const int64_t n = p.value.numel();
    const int64_t lo = std::max(offset, begin_), hi = std::min(offset + n, end_);
    if (lo < hi) {
      Param slice{params[i].name, Tensor({hi - lo}), Tensor({hi - lo}), p.kernel};
      std::memcpy(slice.value.data(), p.value.data() + (lo - offset), sizeof(float) * static_cast<size_t>(hi - lo));
      shard_.push_back(std::move(slice));
      shard_param_.push_back(positions[i]);
      shard_offset_.push_back(lo - offset);
    }
    offset += n;
  }
  for (Param& p : shard_) shard_ptrs_.push_back(&p);
  if (resume.optimizer) {  // the slices of the checkpoint's per-parameter state
    if (resume.optimizer->names != optimizer_->state_names())
      throw Error("the checkpoint's optimizer state does not fit this optimizer");
    const auto state = optimizer_->state(shard_ptrs_);
    for (size_t j = 0; j < shard_.size(); ++j)
      for (size_t k = 0; k < state[j].size(); ++k)
        std::memcpy(state[j][k]->data(), resume.optimizer->tensors[shard_param_[j]][k].data() + shard_offset_[j],
                    sizeof(float) * static_cast<size_t>(shard_[j].value.numel()));
    optimizer_->set_steps(resume.optimizer->steps);
  }
  state_out_.assign(kHeaderFloats + optimizer_->state_names().size() * static_cast<size_t>(end_ - begin_), 0.0f);

  const size_t message = kHeaderFloats + static_cast<size_t>(end_ - begin_);
  inbox_.assign(static_cast<size_t>(workers), std::vector<float>(message));
  outbox_.assign(static_cast<size_t>(workers), std::vector<float>(message));
  receiving_.resize(static_cast<size_t>(workers));
  replying_.resize(static_cast<size_t>(workers));
  pushes_.assign(static_cast<size_t>(workers), resume.step);
  ended_.assign(static_cast<size_t>(workers), resume.epoch);
  heard_.assign(static_cast<size_t>(workers), Timeline::Clock::now());
  thread_ = std::thread([this] { serve(); });
}

Server::~Server() {
  if (std::uncaught_exceptions() > 0) abandon_ = true;  // an error ends the job: stop serving at once
  if (thread_.joinable()) thread_.join();
}

void Server::serve() {
  try {
    for (int w = 0; w < workers_; ++w)
      receiving_[static_cast<size_t>(w)] =
          comm_->irecv(inbox_[static_cast<size_t>(w)].data(), sizeof(float) * inbox_[0].size(), w, kAnyTag);
    Backoff backoff;
    while (goodbyes_ < workers_ && !abandon_) {
      bool progress = false;
      if (halting_ && halt_round_ < 0) {  // halted from the training thread (a signal to this server)
        begin_halt();
        answer_pulls();
      }
      for (int w = 0; w < workers_; ++w) {
        auto& receive = receiving_[static_cast<size_t>(w)];
        if (!receive || !receive->test()) continue;
        const Timeline::Clock::time_point begin = Timeline::Clock::now();
        const int tag = receive->tag();
        heard_[static_cast<size_t>(w)] = begin;
        handle(w, tag, inbox_[static_cast<size_t>(w)].data());
        // A worker sends its next message only after this one's answer, so the inbox is free again.
        receive = tag == kBye ? nullptr
                              : comm_->irecv(inbox_[static_cast<size_t>(w)].data(),
                                             sizeof(float) * inbox_[0].size(), w, kAnyTag);
        std::lock_guard lock(mu_);
        stats_.busy_s += seconds_since(begin);
        progress = true;
      }
      if (round_norm_ && round_norm_->test()) {
        finish_round_norm();
        progress = true;
      }
      if (progress) {
        backoff.reset();
      } else {
        check_for_silent_workers();
        backoff.idle();
      }
    }
    if (round_norm_ && !abandon_) {  // every server completes the same rounds: the sum comes
      round_norm_->wait();
      finish_round_norm();
    }
    for (auto& r : replying_)
      if (r && !abandon_) r->wait();
    if (sending_state_ && !abandon_) sending_state_->wait();
    std::lock_guard lock(mu_);
    finished_ = true;
    epoch_ended_.notify_all();
  } catch (...) {
    std::lock_guard lock(mu_);
    error_ = std::current_exception();
    epoch_ended_.notify_all();
    // Workers may be waiting for this server and its training thread for a collective: nobody else can end
    // the job.
    try {
      std::rethrow_exception(error_);
    } catch (const std::exception& e) {
      std::cerr << "ringtrain: error: rank " << comm_->rank() << " (parameter server " << index_ << "): " << e.what()
                << std::endl;
    }
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
}

void Server::handle(int worker, int tag, const float* message) {
  Header header{};
  std::memcpy(&header, message, sizeof header);
  switch (tag) {
    case kPull:
      waiting_.push_back({worker, header});
      break;
    case kPush:
      apply(worker, header, message + kHeaderFloats);
      break;
    case kEndEpoch: {
      ended_[static_cast<size_t>(worker)] = header.epoch + 1;
      std::lock_guard lock(mu_);
      ++ended_count_[header.epoch];
      epoch_ended_.notify_all();
      break;
    }
    case kHalt:
      if (halt_round_ < 0) begin_halt();
      break;
    case kBye:
      if (header.flags & kFailed) failed_ = true;
      ++goodbyes_;
      ended_[static_cast<size_t>(worker)] = std::numeric_limits<int64_t>::max();
      break;
    default:
      throw Error("unexpected message (tag " + std::to_string(tag) + ") from worker rank " + std::to_string(worker));
  }
  answer_pulls();  // a push or an end of epoch may release pulls that wait for the bound
}

void Server::apply(int worker, const Header& header, const float* gradient) {
  // A server takes no steps of its own: --timeline-steps' window follows the pushing worker's step.
  if (timeline_) timeline_->begin_step(header.step + 1);
  const Timeline::Scope span(timeline_, Timeline::communication, "apply push of worker " + std::to_string(worker));
  const bool whole_rounds = config_.staleness == 0;
  int64_t offset = 0;
  for (Param& p : shard_) {
    float* g = p.grad.data();
    const float* in = gradient + offset;
    const int64_t n = p.grad.numel();
    if (whole_rounds && round_pushes_ > 0)
      for (int64_t i = 0; i < n; ++i) g[i] += in[i];
    else
      std::memcpy(g, in, sizeof(float) * static_cast<size_t>(n));
    offset += n;
  }
  ++pushes_[static_cast<size_t>(worker)];
  // Staleness 0: the round's W gradients (each already 1/W of the loss) make one step, as in data parallel.
  // Otherwise every push is a step of its own.
  if (!whole_rounds || ++round_pushes_ == workers_) {
    round_pushes_ = 0;
    // Clipping a push (staleness above 0): the worker measured the whole gradient. A round's sum only the
    // servers together can measure.
    if (clip_grad_norm_ > 0.0f && whole_rounds && servers_) start_round_norm(header.lr);
    else step(header.lr, whole_rounds ? shard_sum_squares() : header.sum_squares);
  }
  std::lock_guard lock(mu_);
  ++stats_.updates;
  ++stats_.staleness[header.staleness];
}

double Server::shard_sum_squares() const {
  if (clip_grad_norm_ == 0.0f) return 0.0;
  double sum = 0.0;
  for (const Param& p : shard_) sum += sum_of_squares(p.grad.data(), p.grad.numel());
  return sum;
}

void Server::step(double lr, double sum_squares) {
  const Timeline::Scope span(timeline_, Timeline::training, "optimizer step");
  if (clip_grad_norm_ > 0.0f) {
    const float factor = clip_factor(sum_squares, clip_grad_norm_);
    if (factor != 1.0f)
      for (Param& p : shard_) scale_gradient(p.grad.data(), p.grad.numel(), factor);
  }
  optimizer_->step(shard_ptrs_, static_cast<float>(lr));
}

// The servers sum their shards' sums of squares without blocking the progress thread (it goes on receiving;
// pulls wait, answer). Every server completes the same rounds in the same order, so their allreduces pair up.
void Server::start_round_norm(double lr) {
  round_sum_squares_ = shard_sum_squares();
  round_lr_ = lr;
  round_norm_ = servers_->iallreduce_sum(&round_sum_squares_, 1);
}

void Server::finish_round_norm() {
  round_norm_.reset();
  step(round_lr_, round_sum_squares_);
  answer_pulls();
}

// Every worker stops at the step the furthest one has pushed, so the last round is whole and the servers'
// state is that of one step count on every worker (what a checkpoint records).
void Server::begin_halt() {
  halting_ = true;
  halt_round_ = *std::max_element(pushes_.begin(), pushes_.end());
}

void Server::answer_pulls() {
  std::erase_if(waiting_, [this](const Pull& pull) { return answer(pull); });
}

bool Server::answer(const Pull& pull) {
  if (round_norm_) return false;  // the last round's step waits for the servers' norm: every answer shows it
  Header reply_header{};
  reply_header.step = pull.header.step;
  reply_header.epoch = pull.header.epoch;
  if (pull.header.flags & kEvaluate) {
    reply(pull.worker, reply_header, true);
    return true;
  }
  const bool snapshot = pull.header.flags & kSnapshot;
  if (halt_round_ >= 0 && pull.header.step >= halt_round_ && !snapshot) {
    reply_header.flags = kHalted;
    reply(pull.worker, reply_header, false);
    return true;
  }
  int64_t total = 0;
  for (int64_t n : pushes_) total += n;
  if (total >= (pull.header.epoch + 1) * updates_per_epoch_ && !snapshot) {  // the epoch's updates are all in
    reply_header.flags = kStop;
    reply(pull.worker, reply_header, false);
    return true;
  }
  // The bound: every worker still in this epoch has pushed step t - S - 1 (t counts from 0).
  int64_t slowest = pull.header.step;
  for (int w = 0; w < workers_; ++w)
    if (ended_[static_cast<size_t>(w)] <= pull.header.epoch) slowest = std::min(slowest, pushes_[static_cast<size_t>(w)]);
  const int64_t staleness = pull.header.step - slowest;
  if (staleness > config_.staleness) return false;
  reply_header.staleness = staleness;
  reply(pull.worker, reply_header, true);
  if (snapshot) send_state(pull.worker);
  return true;
}

// The shard's optimizer state, each state name's slices in shard order, after a header whose step is the
// optimizer's step count.
void Server::send_state(int worker) {
  if (sending_state_) sending_state_->wait();  // worker 0 took the last one before asking again
  Header header{};
  header.step = optimizer_->steps();
  std::memcpy(state_out_.data(), &header, sizeof header);
  const auto state = optimizer_->state(shard_ptrs_);
  const size_t names = optimizer_->state_names().size(), shard = static_cast<size_t>(end_ - begin_);
  size_t at = 0;
  for (size_t j = 0; j < shard_.size(); ++j) {
    for (size_t k = 0; k < names; ++k)
      std::memcpy(state_out_.data() + kHeaderFloats + k * shard + at, state[j][k]->data(),
                  sizeof(float) * static_cast<size_t>(shard_[j].value.numel()));
    at += static_cast<size_t>(shard_[j].value.numel());
  }
  sending_state_ = comm_->isend(state_out_.data(), sizeof(float) * state_out_.size(), worker, kState);
}

void Server::reply(int worker, const Header& header, bool with_parameters) {
  auto& sending = replying_[static_cast<size_t>(worker)];
  if (sending) sending->wait();  // the worker has its previous answer: this completes at once
  std::vector<float>& out = outbox_[static_cast<size_t>(worker)];
  std::memcpy(out.data(), &header, sizeof header);
  size_t floats = kHeaderFloats;
  if (with_parameters) {
    for (const Param& p : shard_) {
      std::memcpy(out.data() + floats, p.value.data(), sizeof(float) * static_cast<size_t>(p.value.numel()));
      floats += static_cast<size_t>(p.value.numel());
    }
  }
  sending = comm_->isend(out.data(), sizeof(float) * floats, worker, kReply);
}

// Another worker waits for w when the bound holds its pull, or when it has ended an epoch that w has not
// (it waits for w at the epoch's end). A worker silent that long while waited for has died or hangs.
void Server::check_for_silent_workers() {
  constexpr int64_t gone = std::numeric_limits<int64_t>::max();  // said goodbye
  int64_t newest_end = 0;
  for (int64_t e : ended_)
    if (e != gone) newest_end = std::max(newest_end, e);
  for (int w = 0; w < workers_; ++w) {
    if (ended_[static_cast<size_t>(w)] == gone) continue;
    const bool behind = ended_[static_cast<size_t>(w)] < newest_end;
    const bool holding = std::any_of(waiting_.begin(), waiting_.end(), [&](const Pull& p) {
      return p.worker != w && ended_[static_cast<size_t>(w)] <= p.header.epoch;  // w is in that pull's epoch
    });
    const double silent = seconds_since(heard_[static_cast<size_t>(w)]);
    if ((behind || holding) && silent > config_.timeout_s)
      throw Error("worker rank " + std::to_string(w) + " has sent nothing for " + std::to_string(static_cast<int>(silent)) +
                  " s while other workers wait for it (--ps-timeout-s): it died or hangs");
  }
}

bool Server::wait_epoch_end(int64_t epoch) {
  std::unique_lock lock(mu_);
  while (!epoch_ended_.wait_for(lock, std::chrono::milliseconds(100),
                                [&] { return error_ || finished_ || ended_count_[epoch] == workers_; }))
    if (stop_requested()) halting_ = true;
  if (error_) std::rethrow_exception(error_);
  return ended_count_[epoch] == workers_;
}

PsStats Server::take_stats() {
  std::lock_guard lock(mu_);
  stats_.wall_s = seconds_since(stats_since_);
  stats_since_ = Timeline::Clock::now();
  return std::exchange(stats_, PsStats{});
}

}  // namespace ringtrain::ps
