// A Chrome/Perfetto trace of one job (chrome://tracing, ui.perfetto.dev): one process per rank, one thread
// row for training (per-layer forward/backward) and one for communication (negotiate, fusion copies,
// allreduce), as Horovod's timeline. Spans are kept in memory and gathered to rank 0 at the end.
#pragma once
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
  enum Row : int { training = 0, communication = 1 };
  using Clock = std::chrono::steady_clock;

  // Call at the same moment on every rank (after a barrier): spans are placed relative to it.
  Timeline();
  // Thread-safe.
  void span(Row row, const std::string& name, Clock::time_point begin, Clock::time_point end);

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
