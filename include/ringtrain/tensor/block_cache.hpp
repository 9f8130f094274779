// The caching allocator's bookkeeping, free of CUDA so that it can be tested on any machine: which freed
// block may be handed out again, to work on which stream, and when. Streams and events are opaque handles;
// `Events` records and queries them (CUDA events in src/tensor/cuda_allocator.cpp, fakes in the tests):
//
//   struct Events {
//     using Stream = ...; using Event = ...;
//     std::optional<Event> record(Stream s);  // marks the end of the work queued on s so far; nullopt: failed
//     bool done(Event e);                     // whether that work has run; never blocks
//     void recycle(Event e);                  // no longer needed
//   };
//
// A block is allocated for one stream (its home) and its owner may use it on other streams too, after saying
// so (record_use). Work on one stream runs in queue order, so a block that only its home used is handed out
// again on its home at once: whatever its next owner queues there runs after its last owner's work. A block
// that other streams used gets an event on each of its streams when it is freed and stays pending: a stream
// may have it once the events of every other stream have completed (its own work runs first anyway), and
// any stream once all have. The host never waits: a pending block is passed over, not waited for
// (PyTorch's record_stream, with the same rule). The one hand-over by queue order that crosses streams is
// caught in record_use: the new owner's first use on another stream must wait for the block's home.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ringtrain/tensor/device.hpp"

namespace ringtrain {

template <class Events>
class BlockCache {
 public:
  using Stream = typename Events::Stream;
  using Event = typename Events::Event;

  explicit BlockCache(Events& events) : events_(events) {}
  BlockCache(const BlockCache&) = delete;
  BlockCache& operator=(const BlockCache&) = delete;

  // A cached block of exactly `size` bytes that work on `stream` may use now, now in use with `stream` as its
  // home; nullptr when there is none (the caller then allocates a fresh block and calls add).
  void* take(size_t size, Stream stream) {
    auto bucket = free_.find(size);
    if (bucket == free_.end()) return nullptr;
    std::vector<Free>& blocks = bucket->second;
    for (size_t i = blocks.size(); i-- > 0;) {  // most recently freed first: likeliest still in the GPU's caches
      Free& b = blocks[i];
      if (!reusable(b, stream)) continue;
      void* ptr = b.ptr;
      // Settled: no earlier owner's work can still be queued anywhere. Otherwise it may, on this stream.
      live_[address(ptr)] = Live{size, stream, {}, {}, !b.sole.has_value(), false};
      blocks.erase(blocks.begin() + static_cast<std::ptrdiff_t>(i));
      stats_.cached_bytes -= size;
      count_in_use(size);
      return ptr;
    }
    return nullptr;
  }

  // A freshly allocated block, now in use with `stream` as its home.
  void add(void* ptr, size_t size, Stream stream) {
    live_[address(ptr)] = Live{size, stream, {}, {}, true, false};
    ++stats_.cuda_mallocs;
    count_in_use(size);
  }

  // Work about to be queued on `stream` uses the block in use that holds `p` (its start or any byte inside).
  // Returns the stream that `stream` must first wait for (the block's home), when the block was handed out
  // by queue order and its previous owner's work may still be queued there; else nullopt. Memory that is
  // not a block of this cache is left alone.
  std::optional<Stream> record_use(const void* p, Stream stream) {
    Live* block = find_live(p);
    if (!block || (block->home && *block->home == stream)) return std::nullopt;
    if (std::find(block->others.begin(), block->others.end(), stream) != block->others.end()) return std::nullopt;
    block->others.push_back(stream);
    if (block->settled || !block->home) return std::nullopt;
    return block->home;
  }

  // Frees the block in use at `ptr` (as take or add returned it) and returns its size; 0 for an unknown
  // pointer. A block that other streams used gets an event on each stream it is used on.
  size_t release(void* ptr) {
    auto it = live_.find(address(ptr));
    if (it == live_.end()) return 0;
    Live block = std::move(it->second);
    live_.erase(it);
    stats_.in_use_bytes -= block.size;
    Free freed{ptr, std::nullopt, std::move(block.retired)};  // the ends of retired streams' work on it
    if (block.others.empty() && freed.pending.empty()) {
      freed.sole = block.home;  // nullopt once its home was retired: settled
    } else {
      if (block.home) block.others.push_back(*block.home);
      for (Stream s : block.others) {
        const std::optional<Event> e = events_.record(s);
        if (!e) block.lost = true;
        else freed.pending.push_back({s, *e});
      }
    }
    if (block.lost) {  // the device is failing: never hand this block out again
      for (Mark& m : freed.pending) events_.recycle(m.event);
      return block.size;
    }
    free_[block.size].push_back(std::move(freed));
    stats_.cached_bytes += block.size;
    return block.size;
  }

  // `stream` is about to be destroyed: no event may be recorded on it from now on. Each block it used gets
  // one now instead, marking the end of everything queued on it (destroying a stream lets its work finish),
  // and a new stream at the same address is a stranger to every block. The host does not wait.
  void retire(Stream stream) {
    for (auto& [addr, block] : live_) {
      const auto other = std::find(block.others.begin(), block.others.end(), stream);
      const bool home = block.home && *block.home == stream;
      if (other == block.others.end() && !home) continue;
      if (const std::optional<Event> e = events_.record(stream)) block.retired.push_back({std::nullopt, *e});
      else block.lost = true;
      if (other != block.others.end()) block.others.erase(other);
      if (home) block.home.reset(), block.settled = true;  // only at exit: the compute stream goes last
    }
    for (auto& [size, blocks] : free_) {
      for (size_t i = blocks.size(); i-- > 0;) {
        Free& b = blocks[i];
        for (Mark& m : b.pending)
          if (m.stream == stream) m.stream.reset();
        if (b.sole != stream) continue;
        b.sole.reset();
        if (const std::optional<Event> e = events_.record(stream)) {
          b.pending.push_back({std::nullopt, *e});
          continue;
        }
        for (Mark& m : b.pending) events_.recycle(m.event);
        blocks.erase(blocks.begin() + static_cast<std::ptrdiff_t>(i));  // lost with the failing device
        stats_.cached_bytes -= size;
      }
    }
  }

  // Empties the cache, pending blocks included, and returns the blocks for the caller to give back to the
  // system. Only after the host has waited for the whole device.
  std::vector<void*> drain() {
    std::vector<void*> out;
    for (auto& [size, blocks] : free_) {
      for (Free& b : blocks) {
        for (Mark& m : b.pending) events_.recycle(m.event);
        out.push_back(b.ptr);
      }
    }
    free_.clear();
    stats_.cached_bytes = 0;
    return out;
  }

  DeviceMemoryStats stats() const { return stats_; }

 private:
  // The end of one stream's work on a block, as an event; the stream is nullopt once retired.
  struct Mark {
    std::optional<Stream> stream;
    Event event;
  };
  struct Live {
    size_t size = 0;
    std::optional<Stream> home;  // nullopt once retired
    std::vector<Stream> others;  // other streams that used it (record_use)
    std::vector<Mark> retired;   // the ends of retired streams' work on it
    bool settled = true;         // handed out with no earlier owner's work possibly queued
    bool lost = false;           // an event could not be recorded: never reused
  };
  struct Free {
    void* ptr = nullptr;
    std::optional<Stream> sole;  // freed by this stream's work alone: it may reuse it at once
    std::vector<Mark> pending;   // the end of each using stream's work
  };

  static uintptr_t address(const void* p) { return reinterpret_cast<uintptr_t>(p); }

  Live* find_live(const void* p) {
    auto it = live_.upper_bound(address(p));
    if (it == live_.begin()) return nullptr;
    --it;
    return address(p) < it->first + it->second.size ? &it->second : nullptr;
  }

  // Whether work on `stream` may use the freed block `b` now: no other stream's work on it may still be
  // queued. Its events are then no longer needed: the block becomes settled (anyone's), or, when only
  // `stream`'s own work may be left, that stream's alone (its next work runs after it).
  bool reusable(Free& b, Stream stream) {
    if (b.pending.empty()) return !b.sole || *b.sole == stream;
    bool own_work_left = false;
    for (Mark& m : b.pending) {
      if (events_.done(m.event)) continue;
      if (m.stream != stream) return false;
      own_work_left = true;
    }
    for (Mark& m : b.pending) events_.recycle(m.event);
    b.pending.clear();
    if (own_work_left) b.sole = stream;
    return true;
  }

  void count_in_use(size_t size) {
    stats_.in_use_bytes += size;
    stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.in_use_bytes);
  }

  Events& events_;
  std::map<uintptr_t, Live> live_;                      // by address: record_use finds the block around a pointer
  std::unordered_map<size_t, std::vector<Free>> free_;  // by size
  DeviceMemoryStats stats_;
};

}  // namespace ringtrain
