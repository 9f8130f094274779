#include "ringtrain/comm/link_watch.hpp"

#include <algorithm>
#include <cstdio>

namespace ringtrain {

namespace {

constexpr int kProbeTag = 4242;

std::string rate_text(size_t bytes, double seconds) {
  char text[64];
  std::snprintf(text, sizeof text, "%.0f ms (%.1f MB/s)", seconds * 1e3, bytes / seconds / 1e6);
  return text;
}

}  // namespace

std::vector<double> time_ring_links(Communicator& comm, size_t bytes) {
  const int n = comm.size(), rank = comm.rank();
  std::vector<double> all(n, 0.0);
  if (n < 2) return all;
  std::vector<char> out(bytes, 1), in(bytes);
  comm.barrier();  // every link starts at once
  const auto start = std::chrono::steady_clock::now();
  const std::unique_ptr<Transfer> receiving = comm.irecv(in.data(), bytes, (rank + n - 1) % n, kProbeTag);
  const std::unique_ptr<Transfer> sending = comm.isend(out.data(), bytes, (rank + 1) % n, kProbeTag);
  receiving->wait();
  const double mine = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  sending->wait();
  comm.allgather(&mine, all.data(), sizeof mine);
  return all;
}

std::string slow_link_warning(const std::vector<double>& seconds, const std::vector<double>& baseline,
                              const std::vector<std::string>& hosts, size_t bytes) {
  const int n = static_cast<int>(seconds.size());
  std::vector<int> slow;  // by receiving rank: the link from rank r-1 into rank r
  for (int r = 0; r < n; ++r)
    if (seconds[r] >= LinkWatch::kProbeFloorSeconds && seconds[r] >= LinkWatch::kSlowdown * baseline[r])
      slow.push_back(r);
  if (slow.empty()) return "";
  std::string links;
  for (int r : slow) {
    const int from = (r + n - 1) % n;
    char slower[32];
    std::snprintf(slower, sizeof slower, "%.0fx", seconds[r] / baseline[r]);
    links += std::string(links.empty() ? "" : "; ") + "rank " + std::to_string(from) + " (" + hosts[from] +
             ") -> rank " + std::to_string(r) + " (" + hosts[r] + ") carried " + std::to_string(bytes >> 10) +
             " KiB in " + rate_text(bytes, seconds[r]) + ", " + slower + " its time at the start";
  }
  // The node every slow link touches, if one does (with one slow link, either end).
  std::string common;
  for (const std::string& candidate : {hosts[(slow[0] + n - 1) % n], hosts[slow[0]]}) {
    const bool everywhere = std::all_of(slow.begin(), slow.end(), [&](int r) {
      return hosts[r] == candidate || hosts[(r + n - 1) % n] == candidate;
    });
    if (everywhere && common.empty()) common = candidate;
  }
  const bool one_link = slow.size() == 1;
  const std::string where =
      one_link ? " (a degraded network link or NIC on " + hosts[(slow[0] + n - 1) % n] + " or " + hosts[slow[0]] + "?)"
      : !common.empty() ? " (every slow link touches node " + common + ": a degraded network link or NIC there?)"
                        : " (links of several nodes: a switch, or the network as a whole?)";
  return (one_link ? "slow link: " : "slow links: ") + links + where;
}

void LinkWatch::allreduce_took(size_t bytes, double seconds) {
  if (bytes < kMinTimedBytes || seconds <= 0) return;
  const double per_byte = seconds / static_cast<double>(bytes);
  if (seconds >= kNoticeSeconds && per_byte >= kSlowdown * best_seconds_per_byte_ &&
      Clock::now() - last_probe_ >= std::chrono::duration<double>(interval_s_))
    wanted_ = true;
  best_seconds_per_byte_ = std::min(best_seconds_per_byte_, per_byte);
}

std::string LinkWatch::probe(Communicator& comm) {
  wanted_ = false;
  last_probe_ = Clock::now();
  if (hosts_.empty()) hosts_ = allgather_strings(comm, host_name());
  const std::vector<double> seconds = time_ring_links(comm, kProbeBytes);
  if (baseline_.empty()) baseline_ = seconds;
  const std::string warning = slow_link_warning(seconds, baseline_, hosts_, kProbeBytes);
  for (size_t r = 0; r < seconds.size(); ++r) baseline_[r] = std::min(baseline_[r], seconds[r]);
  return warning;
}

}  // namespace ringtrain
