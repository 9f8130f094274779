// A Chrome/Perfetto trace of one job (chrome://tracing, ui.perfetto.dev): one process per rank, one thread
// row for training (data loading, per-layer forward/backward, the optimizer step, evaluation), one for
// communication (negotiate, fusion copies, allreduce), as Horovod's timeline, and one with a span per step.
// Spans are kept in memory and gathered to rank 0 at the end; a window of steps keeps a long run's trace
// small (a 5-epoch mlp on 2 ranks is 13 MB whole).
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "ringtrain/comm/communicator.hpp"

namespace ringtrain {

class Timeline {
 public:
  enum Row : int { training = 0, communication = 1, steps = 2 };
  using Clock = std::chrono::steady_clock;

  // Call at the same moment on every rank (after a barrier): spans are placed relative to it. With
  // first_step > 0, only what happens during steps first..last (counted from 1, as the run counts them) is
  // kept, and what follows the last of them until the next step begins (an epoch's evaluation).
  explicit Timeline(int64_t first_step = 0, int64_t last_step = 0);
  // Thread-safe. Dropped outside the window of steps.
  void span(Row row, const std::string& name, Clock::time_point begin, Clock::time_point end);

  // Step `step` begins: spans from now until the next call are kept when it is in the window. Called by one
  // thread: the training thread, or on a parameter server the thread that applies the workers' steps.
  void begin_step(int64_t step);

  // A span from construction to destruction; does nothing when the timeline is null.
  class Scope {
   public:
    Scope(Timeline* timeline, Row row, std::string name)
        : timeline_(timeline), row_(row), name_(timeline ? std::move(name) : std::string()),
          begin_(timeline ? Clock::now() : Clock::time_point()) {}
    ~Scope() {
      if (timeline_) timeline_->span(row_, name_, begin_, Clock::now());
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Timeline* timeline_;
    Row row_;
    std::string name_;
    Clock::time_point begin_;
  };

  // This rank's events as trace-event JSON objects, comma-separated.
  std::string events_json(int rank) const;
  // Collective: gathers every rank's events to rank 0, which writes the trace JSON to `out` (null on the
  // other ranks), one rank's events in memory at a time.
  void write(Communicator& comm, std::ostream* out) const;

 private:
  struct Event {
    uint32_t name;
    Row row;
    int64_t begin_us, duration_us;
  };
  Clock::time_point origin_;
  const int64_t first_step_, last_step_;  // 0: no window
  std::atomic<bool> recording_;           // the communication thread reads it
  mutable std::mutex mu_;
  std::vector<std::string> names_;
  std::unordered_map<std::string, uint32_t> name_ids_;
  std::vector<Event> events_;
};

// Seconds from `t` until now, on the timeline's clock (steady).
inline double seconds_since(Timeline::Clock::time_point t) {
  return std::chrono::duration<double>(Timeline::Clock::now() - t).count();
}

}  // namespace ringtrain
