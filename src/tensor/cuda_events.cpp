// Pooled CUDA events, and the stream orderings built from them.
#include "ringtrain/tensor/cuda_events.hpp"

#include "ringtrain/tensor/cuda_context.hpp"

namespace ringtrain {

namespace cuda {

EventPool::~EventPool() {
  for (cudaEvent_t e : free_) cudaEventDestroy(e);
}

cudaEvent_t EventPool::acquire() {
  {
    std::lock_guard lock(mutex_);
    if (!free_.empty()) {
      const cudaEvent_t e = free_.back();
      free_.pop_back();
      return e;
    }
  }
  context();  // an event belongs to the device current on this thread: ours
  cudaEvent_t e = nullptr;
  check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
  return e;
}

void EventPool::recycle(cudaEvent_t event) {
  std::lock_guard lock(mutex_);
  free_.push_back(event);
}

EventPool& event_pool() {
  static EventPool* pool = new EventPool;
  return *pool;
}

bool event_done(cudaEvent_t event) {
  const cudaError_t status = cudaEventQuery(event);
  if (status == cudaSuccess) return true;
  if (status != cudaErrorNotReady) check(status, "cudaEventQuery");
  cudaGetLastError();
  return false;
}

void stream_wait(cudaStream_t waiter, cudaStream_t producer) {
  const Event event;
  check(cudaEventRecord(event, producer), "cudaEventRecord");
  check(cudaStreamWaitEvent(waiter, event, 0), "cudaStreamWaitEvent");
}

}  // namespace cuda

void comm_stream_waits_for_compute() {
  if (cuda_device_in_use()) cuda::stream_wait(cuda::context().comm(), cuda::context().compute());
}

void compute_stream_waits_for_comm() {
  if (cuda_device_in_use()) cuda::stream_wait(cuda::context().compute(), cuda::context().comm());
}

}  // namespace ringtrain
