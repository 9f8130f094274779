// Names a slow network link. A ring allreduce runs at the pace of its slowest link, so a slow allreduce says
// that some link is slow, not which: every rank waits alike. So the ranks probe: each sends kProbeBytes to
// the next rank while it receives from the previous one, all at the same time, so that every link carries
// one message alone, and times its receive. The first probe, at the start, times every link healthy; the
// engine then times its allreduces, and one much slower than the best seen per byte (kSlowdown times, and
// kNoticeSeconds or more) asks for another (the ranks agree in the engine's negotiation). A link now
// kSlowdown times slower than at the start is named, with the nodes at its ends; when every slow link
// touches one node (a node's cable, switch port or NIC degrades both ways), that node is named.
#pragma once
#include <chrono>
#include <cstddef>
#include <limits>
#include <string>
#include <vector>

#include "ringtrain/comm/communicator.hpp"

namespace ringtrain {

// Collective: seconds each rank's incoming link (from rank r-1 to rank r) took to carry `bytes` alone, by r.
std::vector<double> time_ring_links(Communicator& comm, size_t bytes);

// The warning for the links of `seconds` (as time_ring_links returns them) kSlowdown times slower than their
// `baseline` and kProbeFloorSeconds or more, else "". hosts: each rank's node.
std::string slow_link_warning(const std::vector<double>& seconds, const std::vector<double>& baseline,
                              const std::vector<std::string>& hosts, size_t bytes);

class LinkWatch {
 public:
  static constexpr double kSlowdown = 10.0, kNoticeSeconds = 0.05;
  // A shared-memory link that went from 0.1 to 2 ms is a descheduled rank, not a link to name.
  static constexpr double kProbeFloorSeconds = 0.01;
  static constexpr size_t kProbeBytes = 256 << 10;
  static constexpr size_t kMinTimedBytes = 64 << 10;  // smaller allreduces are latency, not bandwidth

  // At most one probe every `interval_s` seconds (a probe costs every rank a few milliseconds).
  explicit LinkWatch(double interval_s) : interval_s_(interval_s) {}
  void allreduce_took(size_t bytes, double seconds);
  bool wants_probe() const { return wanted_; }
  // Collective over `comm` (every rank, when any wants it): the warning, the same on every rank, or "".
  std::string probe(Communicator& comm);

 private:
  using Clock = std::chrono::steady_clock;
  double interval_s_;
  double best_seconds_per_byte_ = std::numeric_limits<double>::infinity();
  bool wanted_ = true;  // the first probe times the links healthy
  Clock::time_point last_probe_{};
  std::vector<std::string> hosts_;  // gathered at the first probe
  std::vector<double> baseline_;    // each link's fastest probe
};

}  // namespace ringtrain
