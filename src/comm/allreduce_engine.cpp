#include "ringtrain/comm/allreduce_engine.hpp"
#include "ringtrain/comm/link_watch.hpp"
#include "ringtrain/comm/mpi_session.hpp"

#include <sys/prctl.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <optional>
#include <ostream>
#include <sstream>
#include <unordered_map>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/tensor.hpp"

namespace ringtrain {

namespace {

using Clock = std::chrono::steady_clock;

struct Submitted {
  std::string name;
  float* data = nullptr;
  size_t count = 0;
};

// A tensor requested by name that not every rank has submitted yet. Replicated: every rank holds the same.
struct Request {
  size_t count = 0;
  int first_rank = 0;
  std::vector<char> ranks;  // which ranks have submitted it
  Clock::time_point since;
  bool warned = false;
};

struct Cached {
  std::string name;
  size_t count;
};

// The fixed part of each rank's message per cycle (words: shutdown, the bytes of new names, a link probe
// wanted), followed by one bit per cached tensor.
constexpr size_t kHeaderWords = 3;

std::string join_ranks(const std::vector<int>& ranks) {
  std::string s;
  for (int r : ranks) {
    if (!s.empty()) s += ',';
    s += std::to_string(r);
  }
  return s;
}

// Every allreduce span ends in the bytes that crossed the wire, so that a trace adds up a step's traffic:
// "ALLREDUCE <what>, 4096 bytes", or with --compress "ALLREDUCE <what>, 4096 bytes, 16-bit on the wire: 2048 bytes".
std::string allreduce_span(const std::string& what, size_t elements, size_t wire_bytes_per_float) {
  std::string name = "ALLREDUCE " + what + ", " + std::to_string(elements * sizeof(float)) + " bytes";
  if (wire_bytes_per_float != sizeof(float))
    name += ", 16-bit on the wire: " + std::to_string(elements * wire_bytes_per_float) + " bytes";
  return name;
}

}  // namespace

struct AllreduceEngine::State {
  // First, so it is released last: after the communicators below are freed, by whichever thread frees them.
  MpiThreadGuard in_use;
  std::unique_ptr<Communicator> control, data;
  EngineConfig config;
  std::atomic<Timeline*> timeline;  // null once the engine lets its thread go
  std::ostream& warnings;
  int rank, size;

  // Shared with the training thread, under mu.
  mutable std::mutex mu;
  std::condition_variable wake, done;
  std::vector<Submitted> queue;  // submitted since the last cycle
  size_t outstanding = 0;        // submitted and not yet reduced
  bool flush = false, stopping = false, finished = false;
  std::exception_ptr error;
  EngineStats stats;

  // Engine thread only.
  std::unordered_map<std::string, Submitted> local;  // submitted here, waiting for the other ranks
  std::vector<Cached> cache;                         // replicated: id -> tensor
  std::unordered_map<std::string, uint32_t> cache_ids;
  std::map<std::string, Request> requests;           // replicated
  std::vector<Clock::time_point> partial_since;      // replicated, per cached id: first seen on some ranks
  std::vector<char> partial_warned;
  Tensor fusion;  // in the data communicator's memory (host or GPU)
  // Host allreduces only: a device communicator returns before the GPU has moved the bytes.
  std::optional<LinkWatch> links;
  bool probe_agreed = false;  // replicated: some rank asked for a link probe this cycle

  State(std::unique_ptr<Communicator> c, std::unique_ptr<Communicator> d, EngineConfig cfg, Timeline* t,
        std::ostream& w)
      : control(std::move(c)), data(std::move(d)), config(cfg), timeline(t), warnings(w), rank(control->rank()),
        size(control->size()) {
    if (config.stall_warn_s > 0 && data->device() == Device::cpu) links.emplace(config.stall_warn_s);
  }

  void loop();
  bool cycle();  // false once every rank has asked to stop
  std::vector<std::string> negotiate(std::vector<std::string>& fresh, bool& all_stopping);
  void check_stalls(const std::vector<std::vector<uint64_t>>& bits, size_t cached_before);
  void probe_links();
  void reduce(const std::vector<std::string>& ready);
  void reduce_group(const std::vector<Submitted*>& group, size_t elements);
  void timed_allreduce(float* buffer, size_t elements);
  void grow_fusion(size_t elements);
  void finish(size_t tensors);
};

void AllreduceEngine::State::loop() {
  // Naps in the communicator's waits should be short: the default 50 us timer slack would triple them.
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  const auto cycle_time = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(config.cycle_ms));
  // With nothing submitted here the thread sleeps until the training thread submits, then gives that first
  // cycle its time to gather more. It still joins a negotiation every kIdleCycle, since other ranks may be
  // waiting on it (for stall reports, or to stop). Idle 1 ms cycles would cost a CPU-bound rank ~25%.
  constexpr auto kIdleCycle = std::chrono::milliseconds(100);
  Clock::time_point last = Clock::now();
  try {
    for (;;) {
      {
        std::unique_lock lock(mu);
        if (outstanding == 0 && !stopping) {
          if (wake.wait_for(lock, kIdleCycle, [&] { return stopping || outstanding > 0; }))
            wake.wait_for(lock, cycle_time, [&] { return stopping || flush; });
        } else {
          // A rank whose backward is done (flush) negotiates at once, and again until its tensors are
          // reduced: each round waits in the allgather for the ranks still in backward.
          wake.wait_until(lock, last + cycle_time, [&] { return stopping || flush; });
        }
      }
      last = Clock::now();
      if (!cycle()) break;
    }
  } catch (...) {
    std::lock_guard lock(mu);
    error = std::current_exception();
  }
  std::lock_guard lock(mu);
  finished = true;
  done.notify_all();
}

bool AllreduceEngine::State::cycle() {
  std::vector<std::string> fresh;  // names this rank announces for the first time
  bool stop_requested = false;
  {
    std::lock_guard lock(mu);
    for (Submitted& s : queue) {
      if (local.count(s.name)) throw Error("tensor '" + s.name + "' submitted again before it was reduced");
      auto cached = cache_ids.find(s.name);
      if (cached != cache_ids.end() && cache[cached->second].count != s.count)
        throw Error("tensor '" + s.name + "' changed size from " + std::to_string(cache[cached->second].count) +
                    " to " + std::to_string(s.count) + " elements");
      if (cached == cache_ids.end()) fresh.push_back(s.name);
      local.emplace(s.name, s);
    }
    queue.clear();
    stop_requested = stopping;
    ++stats.cycles;
  }
  bool all_stopping = stop_requested;
  const std::vector<std::string> ready = negotiate(fresh, all_stopping);
  if (probe_agreed) probe_links();
  reduce(ready);
  return !all_stopping;
}

// One allgather of every rank's state (two when some rank has new names); returns the tensors ready on
// every rank, in the same order on every rank.
std::vector<std::string> AllreduceEngine::State::negotiate(std::vector<std::string>& fresh, bool& all_stopping) {
  const size_t cached_before = cache.size();  // the tensors that travel as bits this cycle
  const size_t words = (cached_before + 63) / 64;
  std::ostringstream fresh_text;
  for (const std::string& name : fresh) fresh_text << name << '\t' << local.at(name).count << '\n';
  const std::string announce = fresh_text.str();

  std::vector<uint64_t> mine(kHeaderWords + words, 0);
  mine[0] = all_stopping ? 1 : 0;
  mine[1] = announce.size();
  mine[2] = links && links->wants_probe() ? 1 : 0;
  for (auto& [name, s] : local) {
    auto id = cache_ids.find(name);
    if (id != cache_ids.end()) mine[kHeaderWords + id->second / 64] |= uint64_t{1} << (id->second % 64);
  }
  const bool busy = !local.empty();
  Timeline::Scope span(busy ? timeline.load() : nullptr, Timeline::communication, "NEGOTIATE_ALLREDUCE");
  std::vector<uint64_t> all(mine.size() * size);
  control->allgather(mine.data(), all.data(), mine.size() * sizeof(uint64_t));

  std::vector<std::vector<uint64_t>> bits(size);
  bool any_new = false;
  all_stopping = true;
  probe_agreed = false;
  for (int r = 0; r < size; ++r) {
    const uint64_t* m = all.data() + r * mine.size();
    all_stopping = all_stopping && m[0] != 0;
    any_new = any_new || m[1] != 0;
    probe_agreed = probe_agreed || m[2] != 0;
    bits[r].assign(m + kHeaderWords, m + kHeaderWords + words);
  }

  // Cached tensors ready everywhere, by id: the order they were first reduced in (backward order).
  std::vector<std::string> ready;
  for (size_t w = 0; w < words; ++w) {
    uint64_t everywhere = ~uint64_t{0};
    for (int r = 0; r < size; ++r) everywhere &= bits[r][w];
    for (; everywhere; everywhere &= everywhere - 1) {
      const size_t id = w * 64 + static_cast<size_t>(__builtin_ctzll(everywhere));
      ready.push_back(cache[id].name);
      partial_since[id] = Clock::time_point();
      partial_warned[id] = 0;
    }
  }

  if (any_new) {
    const std::vector<std::string> lists = allgather_strings(*control, announce);
    for (int r = 0; r < size; ++r) {
      std::istringstream in(lists[r]);
      std::string name;
      size_t count = 0;
      while (std::getline(in, name, '\t') && in >> count && in.ignore()) {
        Request& q = requests[name];
        if (q.ranks.empty()) {
          q.count = count, q.first_rank = r, q.since = Clock::now();
          q.ranks.assign(size, 0);
        } else if (q.count != count) {
          throw CollectiveError("ranks submitted tensor '" + name + "' with different sizes: rank " +
                                std::to_string(q.first_rank) + " has " + std::to_string(q.count) +
                                " elements, rank " + std::to_string(r) + " has " + std::to_string(count) +
                                " (are all ranks running the same model?)");
        }
        q.ranks[r] = 1;
        if (std::count(q.ranks.begin(), q.ranks.end(), 1) == size) {
          // Ready everywhere: from now on it travels as a bit.
          cache_ids[name] = static_cast<uint32_t>(cache.size());
          cache.push_back({name, count});
          partial_since.push_back(Clock::time_point());
          partial_warned.push_back(0);
          ready.push_back(name);
          requests.erase(name);
        }
      }
    }
  }
  check_stalls(bits, cached_before);
  return ready;
}

// Every rank knows who is late; the lowest rank among those waiting reports, once per stalled tensor.
void AllreduceEngine::State::check_stalls(const std::vector<std::vector<uint64_t>>& bits, size_t cached_before) {
  if (config.stall_warn_s <= 0) return;
  const Clock::time_point now = Clock::now();
  const auto limit = std::chrono::duration<double>(config.stall_warn_s);
  std::map<std::vector<int>, std::vector<std::string>> by_missing;  // missing ranks -> tensors
  std::map<std::vector<int>, int> reporter;
  auto consider = [&](const std::string& name, const std::vector<char>& has, Clock::time_point& since, auto& warned) {
    std::vector<int> missing;
    int first_ready = -1;
    for (int r = 0; r < size; ++r) {
      if (has[r] && first_ready < 0) first_ready = r;
      if (!has[r]) missing.push_back(r);
    }
    if (missing.empty() || first_ready < 0) return;
    if (since == Clock::time_point()) since = now;
    if (warned || now - since < limit) return;
    warned = 1;
    by_missing[missing].push_back(name);
    reporter[missing] = first_ready;
  };
  std::vector<char> has(size);
  for (size_t id = 0; id < cached_before; ++id) {
    for (int r = 0; r < size; ++r) has[r] = (bits[r][id / 64] >> (id % 64)) & 1;
    consider(cache[id].name, has, partial_since[id], partial_warned[id]);
  }
  for (auto& [name, q] : requests) consider(name, q.ranks, q.since, q.warned);
  for (auto& [missing, names] : by_missing) {
    if (reporter[missing] != rank) continue;
    std::string list;
    for (size_t i = 0; i < names.size() && i < 8; ++i) list += (i ? ", " : "") + names[i];
    if (names.size() > 8) list += ", ... (" + std::to_string(names.size()) + " tensors)";
    char waited[32];
    std::snprintf(waited, sizeof waited, "%.0f", config.stall_warn_s);
    warnings << "ringtrain: warning: stall: rank(s) " << join_ranks(missing) << " have not submitted " << list
             << " for more than " << waited << " s while the other ranks wait (one rank slower, stuck, or out of data?)"
             << std::endl;
  }
}

// Every rank probes (some asked in the negotiation); all get the same verdict, and rank 0 says it.
void AllreduceEngine::State::probe_links() {
  if (!links) links.emplace(config.stall_warn_s);  // a rank that watches nothing still takes part
  Timeline::Scope span(timeline, Timeline::communication, "PROBE_LINKS");
  const std::string warning = links->probe(*control);
  if (!warning.empty() && rank == 0) warnings << "ringtrain: warning: " << warning << std::endl;
}

std::vector<std::vector<size_t>> fusion_groups(const std::vector<size_t>& counts, size_t fusion_bytes) {
  // Fusion saves per-collective latency; a tensor of kAloneBytes or more already amortises it, and copying
  // it in and out of the buffer would cost more memory traffic than the allreduce itself saves.
  constexpr size_t kAloneBytes = 1 << 20;
  const size_t limit = std::max<size_t>(1, fusion_bytes / sizeof(float));
  std::vector<std::vector<size_t>> groups;
  std::vector<size_t> group;
  size_t elements = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] * sizeof(float) >= kAloneBytes || counts[i] >= limit) {
      groups.push_back({i});
      continue;
    }
    if (!group.empty() && elements + counts[i] > limit) {
      groups.push_back(std::move(group));
      group.clear(), elements = 0;
    }
    group.push_back(i);
    elements += counts[i];
  }
  if (!group.empty()) groups.push_back(std::move(group));
  return groups;
}

void AllreduceEngine::State::reduce(const std::vector<std::string>& ready) {
  std::vector<Submitted*> tensors;
  std::vector<size_t> counts;
  for (const std::string& name : ready) {
    tensors.push_back(&local.at(name));
    counts.push_back(tensors.back()->count);
  }
  for (const std::vector<size_t>& group : fusion_groups(counts, config.fusion_bytes)) {
    std::vector<Submitted*> members;
    size_t elements = 0;
    for (size_t i : group) {
      members.push_back(tensors[i]);
      elements += tensors[i]->count;
    }
    reduce_group(members, elements);
  }
}

void AllreduceEngine::State::grow_fusion(size_t elements) {
  // At least one huge page (see HostAllocator): an mlp's 1 MB of gradients then crosses ranks from huge
  // pages too.
  fusion = Tensor({0}, data->device());
  fusion.resize({static_cast<int64_t>(std::max<size_t>(elements, (size_t{2} << 20) / sizeof(float)))});
  // On a GPU, the communicator tells the caching allocator which stream uses the buffer: the old one's block
  // goes to no one before that stream is done with it, and the stream waits for compute work of the new
  // one's previous owner (cuda_allocator.hpp). No wait on the host.
}

void AllreduceEngine::State::timed_allreduce(float* buffer, size_t elements) {
  const Clock::time_point start = Clock::now();
  data->allreduce_sum(buffer, elements);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (links) links->allreduce_took(elements * sizeof(float), seconds);
}

void AllreduceEngine::State::reduce_group(const std::vector<Submitted*>& group, size_t elements) {
  if (group.size() == 1) {  // alone: reduced in place, no copies
    Submitted& s = *group.front();
    Timeline::Scope span(timeline, Timeline::communication,
                         allreduce_span(s.name, s.count, data->wire_bytes_per_float()));
    timed_allreduce(s.data, s.count);
  } else {
    if (static_cast<size_t>(fusion.numel()) < elements) grow_fusion(elements);
    {
      Timeline::Scope span(timeline, Timeline::communication, "MEMCPY_IN_FUSION_BUFFER");
      size_t at = 0;
      for (const Submitted* s : group) data->copy(fusion.data() + at, s->data, s->count * sizeof(float)), at += s->count;
    }
    {
      Timeline::Scope span(timeline, Timeline::communication,
                           allreduce_span(std::to_string(group.size()) + " tensors", elements,
                                          data->wire_bytes_per_float()));
      timed_allreduce(fusion.data(), elements);
    }
    Timeline::Scope span(timeline, Timeline::communication, "MEMCPY_OUT_FUSION_BUFFER");
    size_t at = 0;
    for (Submitted* s : group) data->copy(s->data, fusion.data() + at, s->count * sizeof(float)), at += s->count;
  }
  {
    std::lock_guard lock(mu);
    ++stats.allreduces;
    stats.tensors += static_cast<int64_t>(group.size());
    stats.bytes += static_cast<int64_t>(elements * sizeof(float));
  }
  for (const Submitted* s : group) {
    const std::string name = s->name;  // erasing destroys *s, whose name the key argument would alias
    local.erase(name);
  }
  finish(group.size());
}

void AllreduceEngine::State::finish(size_t tensors) {
  std::lock_guard lock(mu);
  outstanding -= tensors;
  if (outstanding == 0) flush = false, done.notify_all();
}

AllreduceEngine::AllreduceEngine(std::unique_ptr<Communicator> control, std::unique_ptr<Communicator> data,
                                 EngineConfig config, Timeline* timeline, std::ostream& warnings)
    : state_(std::make_shared<State>(std::move(control), std::move(data), config, timeline, warnings)) {
  if (config.cycle_ms <= 0) throw Error("--cycle-ms must be positive");
  if (config.fusion_bytes == 0) throw Error("--fusion-mb must be positive");
  thread_ = std::thread([state = state_] { state->loop(); });
}

AllreduceEngine::~AllreduceEngine() {
  {
    std::lock_guard lock(state_->mu);
    state_->stopping = true;
    state_->wake.notify_all();
  }
  const bool unwinding = std::uncaught_exceptions() > 0;
  std::unique_lock lock(state_->mu);
  // An error every rank raised (a non-finite stop, a bad setting found together) stops every rank's thread
  // at its next negotiation, well within the wait. An error of this rank alone leaves the others
  // negotiating: the job is going down by MPI_Abort, and the thread is let go; it owns the state, and MPI
  // is not finalized under it (MpiThreadGuard).
  if (unwinding && !state_->done.wait_for(lock, std::chrono::seconds(2), [&] { return state_->finished; })) {
    state_->timeline = nullptr;  // the trainer's timeline goes with the unwinding
    lock.unlock();
    thread_.detach();
    return;
  }
  lock.unlock();
  thread_.join();
}

void AllreduceEngine::submit(const std::string& name, float* data, size_t count) {
  std::lock_guard lock(state_->mu);
  if (state_->error) std::rethrow_exception(state_->error);
  state_->queue.push_back({name, data, count});
  if (state_->outstanding++ == 0) state_->wake.notify_all();
}

void AllreduceEngine::wait() {
  std::unique_lock lock(state_->mu);
  state_->flush = true;
  state_->wake.notify_all();
  state_->done.wait(lock, [&] { return state_->outstanding == 0 || state_->error || state_->finished; });
  if (state_->error) std::rethrow_exception(state_->error);
  if (state_->outstanding) throw Error("the allreduce engine stopped with tensors outstanding");
}

EngineStats AllreduceEngine::stats() const {
  std::lock_guard lock(state_->mu);
  return state_->stats;
}

}  // namespace ringtrain
