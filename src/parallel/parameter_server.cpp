#include "ringtrain/parallel/parameter_server.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <sstream>

#include "ps_protocol.hpp"
#include "ps_server.hpp"
#include "ringtrain/comm/backoff.hpp"
#include "ringtrain/error.hpp"

namespace ringtrain {

using ps::Header;
using ps::kHeaderFloats;

namespace {

using Clock = Timeline::Clock;

// Visits the pieces of the parameters that fall in each server's shard, with where each piece lives on the
// wire (server k's message at k headers + the shard's start: its header, then its shard):
// f(param, offset within the param, count, wire position).
template <typename F>
void for_each_piece(const std::vector<Param*>& params, const std::vector<int64_t>& shard_begin, F f) {
  int64_t flat = 0;
  for (Param* p : params) {
    const int64_t n = p->value.numel();
    for (size_t k = 0; k + 1 < shard_begin.size(); ++k) {
      const int64_t lo = std::max(flat, shard_begin[k]), hi = std::min(flat + n, shard_begin[k + 1]);
      if (lo < hi) f(*p, lo - flat, hi - lo, (k + 1) * kHeaderFloats + static_cast<size_t>(lo));
    }
    flat += n;
  }
}

}  // namespace

void check_parameter_servers(const ParallelConfig& config, int world) {
  const PsConfig& ps = config.ps;
  if (ps.servers < 1) throw Error("--ps-servers must be at least 1, got " + std::to_string(ps.servers));
  if (ps.servers >= world)
    throw Error("--ps-servers " + std::to_string(ps.servers) + " leaves no worker among " + std::to_string(world) +
                (world == 1 ? " rank" : " ranks") + " (the last K ranks serve: start more ranks)");
  if (ps.staleness < 0) throw Error("--staleness must be at least 0, got " + std::to_string(ps.staleness));
  if (!(ps.timeout_s > 0.0)) throw Error("--ps-timeout-s must be positive");
  if (config.pipeline.stages > 1 || config.pipeline.micro_batches > 1)
    throw Error("--mode ps does not combine with --pipeline-stages or --micro-batches");
}

ParameterServerMode::ParameterServerMode(const PsConfig& config, Communicator& world, Model& model, Device device,
                                         Loss& loss, const OptimizerConfig& optimizer, int64_t steps_per_epoch,
                                         Timeline* timeline)
    : config_(config), world_(world), model_(model), loss_(loss), device_(device), timeline_(timeline) {
  workers_ = world.size() - config.servers;
  const bool serving = world.rank() >= workers_;
  comm_ = world.split_off();
  workers_comm_ = world.split(serving ? 1 : 0, world.rank());

  const std::vector<Param*> host_params = model.params();
  int64_t total = 0;
  for (Param* p : host_params) total += p->value.numel();
  for (int k = 0; k <= config.servers; ++k) shard_begin_.push_back(ps::shard_begin(total, config.servers, k));

  if (serving) {
    server_ = std::make_unique<ps::Server>(std::move(comm_), model, config, optimizer, workers_,
                                           world.rank() - workers_, steps_per_epoch * workers_, timeline);
    return;
  }
  model.to(device);
  params_ = model.params();
  const size_t wire = static_cast<size_t>(config.servers) * kHeaderFloats + static_cast<size_t>(total);
  pull_wire_.assign(wire, 0.0f);
  push_wire_.assign(wire, 0.0f);
}

ParameterServerMode::~ParameterServerMode() {
  // A server's destructor waits for every worker's goodbye. On the way out of an error the job is ending
  // (the error is about to abort it): say nothing, wait for nothing.
  if (server_ || std::uncaught_exceptions() > 0) return;
  finish_pushes();
  const Header bye{};
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
    stop = stop || (reply.flags & ps::kStop);
    staleness_ = std::max(staleness_, reply.staleness);
  }
  worker_stats_.pull_s += seconds_since(start);
  ++worker_stats_.pulls;
  if (stop) return false;
  for_each_piece(params_, shard_begin_, [&](Param& p, int64_t offset, int64_t count, size_t at) {
    copy_bytes(p.value.data() + offset, p.value.device(), pull_wire_.data() + at, Device::cpu,
               sizeof(float) * static_cast<size_t>(count));
  });
  return true;
}

bool ParameterServerMode::begin_step() { return pull(0); }

void ParameterServerMode::finish_pushes() {
  const Clock::time_point start = Clock::now();
  for (size_t k = 0; k < pushing_.size(); ++k) wait_for(*pushing_[k], static_cast<int>(k), "push");
  pushing_.clear();
  worker_stats_.push_s += seconds_since(start);
}

void ParameterServerMode::train_step(const Batch& batch, float lr) {
  model_.zero_grad();
  loss_.forward(model_.forward(batch.x, Mode::train), batch.y);
  model_.backward(loss_.backward(1.0f / static_cast<float>(workers_)));

  // The previous step's push has long been received (the pull after it was answered), but its buffer is
  // about to be refilled.
  finish_pushes();
  const Timeline::Scope span(timeline_, Timeline::communication, "push");
  Header header{};
  header.step = step_;
  header.epoch = epoch_;
  header.staleness = staleness_;
  header.lr = lr;
  for_each_piece(params_, shard_begin_, [&](Param& p, int64_t offset, int64_t count, size_t at) {
    copy_bytes(push_wire_.data() + at, Device::cpu, p.grad.data() + offset, p.grad.device(),
               sizeof(float) * static_cast<size_t>(count));
  });
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

void ParameterServerMode::end_epoch() {
  Header header{};
  header.epoch = epoch_++;
  for (int k = 0; k < config_.servers; ++k) comm_->send(&header, sizeof header, workers_ + k, ps::kEndEpoch);
}

void ParameterServerMode::serve_epoch() { server_->wait_epoch_end(epoch_++); }

Score ParameterServerMode::evaluate(BatchLoader& loader) {
  if (server_) return {};
  pull(ps::kEvaluate);
  return score_batches(model_, loss_, loader);
}

Score ParameterServerMode::sum_over_ranks(const Score& mine) { return sum_scores(world_, mine); }

void ParameterServerMode::sync_buffers() {
  if (server_ || workers_ == 1) return;
  for (const NamedTensor& b : model_.named_buffers()) average_tensor(*workers_comm_, *b.tensor);
}

void ParameterServerMode::gather_model() {
  if (!server_) pull(ps::kEvaluate);  // every worker's model holds the servers' latest parameters
}

PsStats ParameterServerMode::epoch_report() {
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
