#include "ringtrain/parallel/parameter_server.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <sstream>

#include "ps_protocol.hpp"
#include "ps_server.hpp"
#include "ringtrain/comm/backoff.hpp"
#include "ringtrain/nn/gradient_clip.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

using ps::Header;
using ps::kHeaderFloats;

namespace {

using Clock = Timeline::Clock;

// A parameter's piece that falls in one server's shard.
struct Piece {
  size_t param;      // index among the parameters
  int64_t offset;    // within the parameter
  int64_t count;
  size_t server;
  int64_t in_shard;  // where it starts within the server's shard
  // Where it lives in a pull or push wire: server k's message at k headers + the shard's start (its header,
  // then its shard).
  size_t wire(const std::vector<int64_t>& shard_begin) const {
    return (server + 1) * kHeaderFloats + static_cast<size_t>(shard_begin[server] + in_shard);
  }
};

template <typename F>
void for_each_piece(const std::vector<Param*>& params, const std::vector<int64_t>& shard_begin, F f) {
  int64_t flat = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    const int64_t n = params[i]->value.numel();
    for (size_t k = 0; k + 1 < shard_begin.size(); ++k) {
      const int64_t lo = std::max(flat, shard_begin[k]), hi = std::min(flat + n, shard_begin[k + 1]);
      if (lo < hi) f(Piece{i, lo - flat, hi - lo, k, lo - shard_begin[k]});
    }
    flat += n;
  }
}

}  // namespace

ParameterServerMode::ParameterServerMode(const ParallelConfig& config, Communicator& world, const ModeParts& parts)
    : ParallelMode(world, parts.loss), clip_grad_norm_(config.clip_grad_norm), config_(config.ps),
      batch_(parts.batch), model_(parts.model),
      device_(parts.device), timeline_(parts.timeline), step_(parts.resume.step),
      epoch_(parts.resume.epoch) {
  workers_ = world.size() - config_.servers;
  const bool serving = world.rank() >= workers_;
  comm_ = world.split_off();
  workers_comm_ = world.split(serving ? 1 : 0, world.rank());

  // The flat vector holds the parameters that train: a frozen layer's (Model::freeze) never travel.
  const std::vector<Param*> host_params = params_of(model_.trained_params(model_.all_layers()));
  int64_t total = 0;
  for (Param* p : host_params) total += p->value.numel();
  for (int k = 0; k <= config_.servers; ++k) shard_begin_.push_back(ps::shard_begin(total, config_.servers, k));

  if (serving) {
    std::unique_ptr<Communicator> servers = config_.servers > 1 ? workers_comm_->split_off() : nullptr;
    server_ = std::make_unique<ps::Server>(std::move(comm_), model_, config_, parts.optimizer_config,
                                           config.clip_grad_norm, std::move(servers), workers_,
                                           world.rank() - workers_, parts.steps_per_epoch * workers_, parts.resume,
                                           timeline_);
    return;
  }
  model_.to(device_);
  params_ = params_of(model_.trained_params(model_.all_layers()));
  guard_ = std::make_unique<NonfiniteGuard>(device_, config.skip_nonfinite, NonfiniteGuard::Verdict::this_rank,
                                            model_.trained_params(model_.all_layers()), nullptr, nullptr);
  const size_t wire = static_cast<size_t>(config_.servers) * kHeaderFloats + static_cast<size_t>(total);
  pull_wire_.assign(wire, 0.0f);
  push_wire_.assign(wire, 0.0f);
}

ParameterServerMode::~ParameterServerMode() {
  // A server's destructor waits for every worker's goodbye. On the way out of an error the job is ending
  // (the error is about to abort it): say nothing, wait for nothing.
  if (server_ || said_goodbye_ || std::uncaught_exceptions() > 0) return;
  say_goodbye(0);
}

void ParameterServerMode::say_goodbye(int64_t flags) {
  said_goodbye_ = true;
  finish_pushes();
  Header bye{};
  bye.flags = flags;
  for (int k = 0; k < config_.servers; ++k) comm_->send(&bye, sizeof bye, workers_ + k, ps::kBye);
}

void ParameterServerMode::wait_for(Transfer& transfer, int server, const char* what) {
  const Clock::time_point start = Clock::now();
  Backoff backoff;
  while (!transfer.test()) {
    if (seconds_since(start) > config_.timeout_s)
      throw Error("parameter server rank " + std::to_string(workers_ + server) + " has not completed a " + what +
                  " for " + std::to_string(static_cast<int>(config_.timeout_s)) +
                  " s (--ps-timeout-s): it died, hangs, or waits for a worker that does");
    backoff.idle();
  }
}

// Asks every server for its shard (they answer once the staleness bound allows) and loads the answers into
// the model. False when a server says the epoch's updates are all in.
bool ParameterServerMode::pull(int64_t flags) {
  const Timeline::Scope span(timeline_, Timeline::communication, "pull");
  const Clock::time_point start = Clock::now();
  Header request{};
  request.step = step_;
  request.epoch = epoch_;
  request.flags = flags;
  std::vector<std::unique_ptr<Transfer>> replies;
  for (int k = 0; k < config_.servers; ++k) {
    const size_t at = static_cast<size_t>(k) * kHeaderFloats + static_cast<size_t>(shard_begin_[k]);
    const size_t floats = kHeaderFloats + static_cast<size_t>(shard_begin_[k + 1] - shard_begin_[k]);
    replies.push_back(comm_->irecv(pull_wire_.data() + at, sizeof(float) * floats, workers_ + k, ps::kReply));
    comm_->send(&request, sizeof request, workers_ + k, ps::kPull);
  }
  bool stop = false;
  staleness_ = 0;
  for (int k = 0; k < config_.servers; ++k) {
    wait_for(*replies[static_cast<size_t>(k)], k, "pull");
    Header reply{};
    std::memcpy(&reply, pull_wire_.data() + static_cast<size_t>(k) * kHeaderFloats + shard_begin_[k], sizeof reply);
    stop = stop || (reply.flags & (ps::kStop | ps::kHalted));
    stopping_ = stopping_ || (reply.flags & ps::kHalted);
    staleness_ = std::max(staleness_, reply.staleness);
  }
  worker_stats_.pull_s += seconds_since(start);
  ++worker_stats_.pulls;
  if (stop) return false;
  for_each_piece(params_, shard_begin_, [&](const Piece& piece) {
    Tensor& value = params_[piece.param]->value;
    copy_bytes(value.data() + piece.offset, value.device(), pull_wire_.data() + piece.wire(shard_begin_), Device::cpu,
               sizeof(float) * static_cast<size_t>(piece.count));
  });
  return true;
}

const Batch* ParameterServerMode::next_batch(BatchStream& stream) {
  if (server_) {
    if (!server_->wait_epoch_end(epoch_++)) stopping_ = true;
    return nullptr;
  }
  return pull(0) ? stream.next() : nullptr;
}

void ParameterServerMode::finish_pushes() {
  const Clock::time_point start = Clock::now();
  for (size_t k = 0; k < pushing_.size(); ++k) wait_for(*pushing_[k], static_cast<int>(k), "push");
  pushing_.clear();
  worker_stats_.push_s += seconds_since(start);
}

// The sum of squares of the gradient in push_wire_ (every server's shard).
double ParameterServerMode::pushed_sum_squares() const {
  double sum = 0.0;
  for (int k = 0; k < config_.servers; ++k)
    sum += sum_of_squares(push_wire_.data() + static_cast<size_t>(k + 1) * kHeaderFloats + shard_begin_[k],
                          shard_begin_[k + 1] - shard_begin_[k]);
  return sum;
}

void ParameterServerMode::train_step(const Batch& batch, float lr) {
  model_.zero_grad();
  loss_.forward(model_.forward(batch.x, Mode::train), batch.y);
  model_.backward(loss_.backward(1.0f / static_cast<float>(workers_)));
  // This worker's gradient alone, before it reaches a server. Skipped, it pushes zeros: the round still
  // needs its push. So does a stopping worker, until the halt it asks for comes.
  bool update = false;
  try {
    update = guard_->allow_update(step_ + 1);
  } catch (const NonfiniteStop& e) {
    if (failure_.empty()) failure_ = e.what();
    request_halt();
  }
  if (!update) model_.zero_grad();

  // The previous step's push has long been received (the pull after it was answered), but its buffer is
  // about to be refilled.
  finish_pushes();
  const Timeline::Scope span(timeline_, Timeline::communication, "push");
  Header header{};
  header.step = step_;
  header.epoch = epoch_;
  header.staleness = staleness_;
  header.lr = lr;
  for_each_piece(params_, shard_begin_, [&](const Piece& piece) {
    const Tensor& grad = params_[piece.param]->grad;
    copy_bytes(push_wire_.data() + piece.wire(shard_begin_), Device::cpu, grad.data() + piece.offset, grad.device(),
               sizeof(float) * static_cast<size_t>(piece.count));
  });
  if (clip_grad_norm_ > 0.0f && config_.staleness > 0) header.sum_squares = pushed_sum_squares();
  // Sent without waiting: the next pull goes out behind it (messages between two ranks stay in order), and
  // the server applies it before answering.
  for (int k = 0; k < config_.servers; ++k) {
    float* message = push_wire_.data() + static_cast<size_t>(k) * kHeaderFloats + static_cast<size_t>(shard_begin_[k]);
    std::memcpy(message, &header, sizeof header);
    const size_t floats = kHeaderFloats + static_cast<size_t>(shard_begin_[k + 1] - shard_begin_[k]);
    pushing_.push_back(comm_->isend(message, sizeof(float) * floats, workers_ + k, ps::kPush));
  }
  ++worker_stats_.pushes;
  ++step_;
}

bool ParameterServerMode::end_epoch() {
  if (stopping_) return false;
  if (server_) return true;
  Header header{};
  header.epoch = epoch_++;
  for (int k = 0; k < config_.servers; ++k) comm_->send(&header, sizeof header, workers_ + k, ps::kEndEpoch);
  return true;
}

// A request goes to the servers, which answer every worker's pull kHalted once all have reached the same
// step (ps_server.hpp); this rank, too, stops when its pull is answered so.
bool ParameterServerMode::agree_to_stop(bool requested) {
  if (requested) request_halt();
  return stopping_;
}

void ParameterServerMode::request_halt() {
  if (halt_sent_) return;
  halt_sent_ = true;
  if (server_) {
    server_->halt();
  } else {
    const Header halt{};
    for (int k = 0; k < config_.servers; ++k) comm_->send(&halt, sizeof halt, workers_ + k, ps::kHalt);
  }
}

// Servers learn of it from the goodbyes: they wait for those before their training loop ends, so a
// collective over every rank here would never complete.
void ParameterServerMode::end_run() {
  settle_checks();
  if (server_) {
    if (server_->failed()) throw CollectiveError("a worker's non-finite stop");  // rank 0, a worker, says it
    return;
  }
  for (const std::string& failure : allgather_strings(*workers_comm_, failure_)) {
    if (failure.empty()) continue;
    say_goodbye(ps::kFailed);
    throw CollectiveError(failure);  // the lowest worker's that went bad
  }
}

void ParameterServerMode::gather_state(OptimizerState& optimizer) {
  if (server_ || world_.rank() != 0) return;  // servers answer worker 0 from their progress threads
  // A snapshot pull: parameters as the next step would get them, then each server's optimizer state.
  const size_t names = optimizer.names.size();
  std::vector<std::vector<float>> states(static_cast<size_t>(config_.servers));
  std::vector<std::unique_ptr<Transfer>> receiving;
  for (int k = 0; k < config_.servers; ++k) {
    auto& state = states[static_cast<size_t>(k)];
    state.resize(kHeaderFloats + names * static_cast<size_t>(shard_begin_[k + 1] - shard_begin_[k]));
    receiving.push_back(comm_->irecv(state.data(), sizeof(float) * state.size(), workers_ + k, ps::kState));
  }
  pull(ps::kSnapshot);
  for (int k = 0; k < config_.servers; ++k) wait_for(*receiving[static_cast<size_t>(k)], k, "checkpoint snapshot");
  Header header{};
  std::memcpy(&header, states[0].data(), sizeof header);
  optimizer.steps = header.step;
  // Server k's message: state name j's values at the header + j x its shard + the piece's place in it.
  const std::vector<size_t> positions = model_.trained_positions(model_.all_layers());
  for_each_piece(params_, shard_begin_, [&](const Piece& piece) {
    const std::vector<float>& state = states[piece.server];
    const int64_t shard = shard_begin_[piece.server + 1] - shard_begin_[piece.server];
    for (size_t j = 0; j < names; ++j)
      std::memcpy(optimizer.tensors[positions[piece.param]][j].data() + piece.offset,
                  state.data() + kHeaderFloats + static_cast<int64_t>(j) * shard + piece.in_shard,
                  sizeof(float) * static_cast<size_t>(piece.count));
  });
}

Score ParameterServerMode::evaluate(BatchLoader& loader) {
  if (server_) return {};
  pull(ps::kEvaluate);
  return score_batches(model_, loss_, loader);
}

void ParameterServerMode::sync_buffers() {
  if (server_ || workers_ == 1) return;
  for (size_t i = 0; i < model_.size(); ++i)
    if (!model_.frozen(i))  // the same on every worker, and averaging could change their last bits
      for (const NamedTensor& b : model_.named_buffers(i)) average_tensor(*workers_comm_, *b.tensor);
}

void ParameterServerMode::gather_model() {
  if (!server_) pull(ps::kEvaluate);  // every worker's model holds the servers' latest parameters
}

PsStats ParameterServerMode::take_stats() {
  PsStats mine = server_ ? server_->take_stats() : std::exchange(worker_stats_, PsStats{});
  // Servers each see every update: count them once (server 0's), and their load over all of them.
  if (server_ && world_.rank() != workers_) mine.updates = 0, mine.staleness.clear();
  double sums[6] = {static_cast<double>(mine.updates), mine.busy_s, mine.wall_s, mine.pull_s, mine.push_s,
                    static_cast<double>(mine.pulls)};
  world_.allreduce_sum(sums, 6);
  double pushes = static_cast<double>(mine.pushes);
  world_.allreduce_sum(&pushes, 1);
  // The histogram: server 0 has it; everyone gets it.
  std::string text;
  for (const auto& [staleness, count] : mine.staleness) text += std::to_string(staleness) + " " + std::to_string(count) + " ";
  const std::vector<std::string> all = allgather_strings(world_, text);
  PsStats out;
  out.updates = static_cast<int64_t>(sums[0]);
  out.busy_s = sums[1];
  out.wall_s = sums[2];
  out.pull_s = sums[3];
  out.push_s = sums[4];
  out.pulls = static_cast<int64_t>(sums[5]);
  out.pushes = static_cast<int64_t>(pushes);
  std::istringstream in(all[static_cast<size_t>(workers_)]);
  int64_t staleness = 0, count = 0;
  while (in >> staleness >> count) out.staleness[staleness] = count;
  return out;
}

}  // namespace ringtrain
