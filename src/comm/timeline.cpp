#include "ringtrain/comm/timeline.hpp"

#include <cstdio>
#include <ostream>

#include "ringtrain/tensor/text.hpp"

namespace ringtrain {

namespace {

int64_t micros(Timeline::Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

}  // namespace

Timeline::Timeline(int64_t first_step, int64_t last_step)
    : origin_(Clock::now()), first_step_(first_step), last_step_(last_step), recording_(first_step <= 1) {}

void Timeline::begin_step(int64_t step) {
  recording_ = first_step_ == 0 || (step >= first_step_ && step <= last_step_);
}

void Timeline::span(Row row, const std::string& name, Clock::time_point begin, Clock::time_point end) {
  if (!recording_) return;
  std::lock_guard lock(mu_);
  auto [it, inserted] = name_ids_.try_emplace(name, static_cast<uint32_t>(names_.size()));
  if (inserted) names_.push_back(name);
  events_.push_back({it->second, row, micros(begin - origin_), micros(end - begin)});
}

std::string Timeline::events_json(int rank) const {
  std::lock_guard lock(mu_);
  const std::string pid = std::to_string(rank);
  std::string out = "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":" + pid + ",\"args\":{\"name\":\"rank " + pid +
                    "\"}},{\"name\":\"process_sort_index\",\"ph\":\"M\",\"pid\":" + pid +
                    ",\"args\":{\"sort_index\":" + pid + "}}";
  const char* rows[] = {"training", "communication", "steps"};  // by Row
  for (int tid = 0; tid < 3; ++tid)
    out += ",{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":" + pid + ",\"tid\":" + std::to_string(tid) +
           ",\"args\":{\"name\":\"" + rows[tid] + "\"}}";
  char buf[96];
  for (const Event& e : events_) {
    std::snprintf(buf, sizeof buf, ",\"ph\":\"X\",\"pid\":%d,\"tid\":%d,\"ts\":%lld,\"dur\":%lld}", rank,
                  static_cast<int>(e.row), static_cast<long long>(e.begin_us), static_cast<long long>(e.duration_us));
    out += ",{\"name\":" + json_string(names_[e.name]) + buf;
  }
  return out;
}

void Timeline::write(Communicator& comm, std::ostream* out) const {
  constexpr int kTag = 7001;
  const std::string mine = events_json(comm.rank());
  if (comm.rank() != 0) {
    const uint64_t length = mine.size();
    comm.send(&length, sizeof length, 0, kTag);
    comm.send(mine.data(), mine.size(), 0, kTag);
    return;
  }
  *out << "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[" << mine;
  std::string theirs;
  for (int r = 1; r < comm.size(); ++r) {  // one rank's events in memory at a time
    uint64_t length = 0;
    comm.recv(&length, sizeof length, r, kTag);
    theirs.resize(length);
    comm.recv(theirs.data(), length, r, kTag);
    *out << "," << theirs;
  }
  *out << "]}\n";
}

}  // namespace ringtrain
