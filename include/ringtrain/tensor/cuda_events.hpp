// CUDA events from one process-wide pool. Ordering two streams (stream_wait) takes an event for the length
// of two calls and the allocator holds one per stream a freed block was used on: both happen several times a
// step, and a pool makes each a reuse instead of a cudaEventCreate and cudaEventDestroy.
#pragma once
#include <cuda_runtime.h>

#include <mutex>
#include <vector>

namespace ringtrain::cuda {

class EventPool {
 public:
  EventPool() = default;
  ~EventPool();
  EventPool(const EventPool&) = delete;
  EventPool& operator=(const EventPool&) = delete;

  // A free event (created without timing, the cheap kind) on this process's GPU.
  cudaEvent_t acquire();
  // Back to the pool. Safe while work it captured is still queued: cudaEventRecord overwrites an event's
  // state, and a wait already queued on it (cudaStreamWaitEvent) keeps the state it saw.
  void recycle(cudaEvent_t event);

 private:
  std::mutex mutex_;
  std::vector<cudaEvent_t> free_;
};

// Never destroyed: the allocator's pending blocks hold events until after the CUDA context is gone at exit.
EventPool& event_pool();

// An event from the pool for as long as this object lives.
class Event {
 public:
  Event() : event_(event_pool().acquire()) {}
  ~Event() { event_pool().recycle(event_); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  operator cudaEvent_t() const { return event_; }

 private:
  cudaEvent_t event_;
};

// Whether the work `event` captured has run; never blocks. cudaEventQuery's "not ready" is no error, but the
// runtime keeps it as the thread's last error: it is cleared here, or the next kernel's launch check
// (kernels/launch.cuh) would report it. Throws Error for a real failure.
bool event_done(cudaEvent_t event);

// Makes `waiter` wait, on the device, for everything queued on `producer` so far. The host does not block.
void stream_wait(cudaStream_t waiter, cudaStream_t producer);

}  // namespace ringtrain::cuda
