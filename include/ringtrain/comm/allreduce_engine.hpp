// The gradient-averaging engine, after Horovod's core: the training thread hands over named buffers as
// backward produces them; one background thread per rank, every cycle, agrees with the other ranks on which
// buffers are ready everywhere, packs those into a fusion buffer, allreduces it once and unpacks the
// sums, while backward of earlier layers goes on. The engine sums; a caller that wants the average scales
// before submitting (data parallel scales the loss gradient by 1/ranks: no extra pass over the gradients,
// Horovod's prescale).
//
// Negotiation without a coordinator: each cycle every rank allgathers its state (a bit per tensor seen
// before, the names and sizes of new ones), so every rank computes the same responses in the same order and
// also knows which ranks are late. Names are sent once; after their first allreduce tensors travel as bits
// (Horovod's response cache).
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <iosfwd>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ringtrain/comm/communicator.hpp"
#include "ringtrain/comm/timeline.hpp"

namespace ringtrain {

struct EngineConfig {
  size_t fusion_bytes = 64 << 20;  // ready tensors are reduced together up to this size
  double cycle_ms = 1.0;           // how often ranks negotiate while tensors trickle in
  double stall_warn_s = 60.0;      // warn when a tensor waits this long for some ranks (0 = never)
};

// How tensors of `counts` elements (in the order they are ready) are reduced: one of 1 MiB or more, or of
// fusion_bytes or more, alone and in place, at once; the smaller ones packed together in order, a group
// closed when the next would take it past fusion_bytes. Each group: indices into counts, in the order the
// groups are reduced. The engine reduces by it, and --shard-optimizer's exchange buckets follow it.
std::vector<std::vector<size_t>> fusion_groups(const std::vector<size_t>& counts, size_t fusion_bytes);

struct EngineStats {
  int64_t cycles = 0;      // negotiation rounds
  int64_t allreduces = 0;  // collective calls on the data communicator
  int64_t tensors = 0;     // tensors reduced
  int64_t bytes = 0;       // bytes allreduced
};

class AllreduceEngine {
 public:
  // control carries the negotiation (small host messages); data the fused allreduces (MPI or NCCL). Each
  // must be this engine's own (Communicator::split_off). Warnings (stalls) go to `warnings`.
  AllreduceEngine(std::unique_ptr<Communicator> control, std::unique_ptr<Communicator> data, EngineConfig config,
                  Timeline* timeline, std::ostream& warnings);
  // Normally a collective: returns once every rank's engine has stopped. While an exception unwinds, it
  // leaves the background thread behind instead (the job is being taken down).
  ~AllreduceEngine();
  AllreduceEngine(const AllreduceEngine&) = delete;
  AllreduceEngine& operator=(const AllreduceEngine&) = delete;

  // Training thread: sum `count` floats at `data` over all ranks, in place. Every rank must submit the
  // same names with the same sizes (in any order); the buffer must not be touched until wait() returns.
  void submit(const std::string& name, float* data, size_t count);
  // Blocks until everything submitted is summed (with a device data communicator: queued on its stream; GPU
  // work that reads the sums must wait for that stream, compute_stream_waits_for_comm). Rethrows the engine's error (CollectiveError when ranks
  // submitted mismatched tensors).
  void wait();
  EngineStats stats() const;

 private:
  struct State;
  std::shared_ptr<State> state_;  // shared with the background thread, which may outlive us (see dtor)
  std::thread thread_;
};

}  // namespace ringtrain
