// BatchUpload for the CUDA engine: pinned staging, a copy on the upload stream, events in both directions.
#include <cstring>

#include "ringtrain/data/device_batches.hpp"
#include "ringtrain/tensor/cuda_allocator.hpp"
#include "ringtrain/tensor/cuda_context.hpp"
#include "ringtrain/tensor/cuda_events.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

namespace {

using cuda::check;

// Page-locked host memory: the DMA engine reads it directly, so the copy to the GPU runs asynchronously.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer() {
    if (ptr_) cudaFreeHost(ptr_);
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  void* ensure(size_t bytes) {
    if (bytes > bytes_) {
      if (ptr_) cudaFreeHost(ptr_);
      ptr_ = nullptr;
      check(cudaHostAlloc(&ptr_, bytes, cudaHostAllocDefault), "cudaHostAlloc");
      bytes_ = bytes;
    }
    return ptr_;
  }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

struct Slot {
  PinnedBuffer staging;  // x, then labels or target values
  Batch device;
  cuda::Event uploaded;  // on the upload stream: the slot's copy has landed
  cuda::Event consumed;  // on the compute stream: the last step that read the slot has run
};

class CudaBatchUpload final : public BatchUpload {
 public:
  CudaBatchUpload() = default;
  // The pinned staging memory must outlive the copies out of it. (The device buffers need no wait: the
  // allocator keeps their blocks until the upload stream's work on them has run.)
  ~CudaBatchUpload() override { cudaStreamSynchronize(cuda::context().upload()); }
  CudaBatchUpload(const CudaBatchUpload&) = delete;
  CudaBatchUpload& operator=(const CudaBatchUpload&) = delete;

  const Batch& upload(const Batch& host) override {
    cuda::Context& ctx = cuda::context();
    const int previous = 1 - next_;
    // Everything queued so far reads the previous slot at most: once this fires, that slot may be refilled.
    check(cudaEventRecord(slots_[previous].consumed, ctx.compute()), "cudaEventRecord");

    Slot& slot = slots_[next_];
    next_ = previous;
    check(cudaEventSynchronize(slot.uploaded), "cudaEventSynchronize");  // its last copy out of staging is done
    const size_t x_bytes = sizeof(float) * static_cast<size_t>(host.x.numel());
    const bool labelled = !host.y.labels.empty();
    const size_t y_bytes = labelled ? sizeof(int32_t) * host.y.labels.size()
                                    : sizeof(float) * static_cast<size_t>(host.y.values.numel());
    auto* staging = static_cast<char*>(slot.staging.ensure(x_bytes + y_bytes));
    std::memcpy(staging, host.x.data(), x_bytes);
    std::memcpy(staging + x_bytes, labelled ? static_cast<const void*>(host.y.labels.data()) : host.y.values.data(),
                y_bytes);

    // Device buffers grow with the batch (rarely: eval batches, a last partial batch).
    Batch& dev = slot.device;
    if (dev.x.device() != Device::cuda) dev.x = Tensor({0}, Device::cuda);
    dev.x.resize(host.x.shape());
    void* y_dst;
    if (labelled) {
      dev.y.labels = host.y.labels;  // the loss checks label ranges on the host
      y_dst = dev.y.device_labels.reserve(y_bytes);
    } else {
      if (dev.y.values.device() != Device::cuda) dev.y.values = Tensor({0}, Device::cuda);
      dev.y.values.resize(host.y.values.shape());
      y_dst = dev.y.values.data();
    }

    cudaStream_t up = ctx.upload();
    check(cudaStreamWaitEvent(up, slot.consumed, 0), "cudaStreamWaitEvent");
    // The upload stream writes buffers that belong to the compute stream: the allocator keeps them from
    // their next owner until these copies have run, and the upload stream waits for the compute work of a
    // grown buffer's previous owner.
    cuda::record_stream(dev.x.data(), up);
    cuda::record_stream(y_dst, up);
    check(cudaMemcpyAsync(dev.x.data(), staging, x_bytes, cudaMemcpyHostToDevice, up), "cudaMemcpyAsync");
    check(cudaMemcpyAsync(y_dst, staging + x_bytes, y_bytes, cudaMemcpyHostToDevice, up), "cudaMemcpyAsync");
    check(cudaEventRecord(slot.uploaded, up), "cudaEventRecord");
    check(cudaStreamWaitEvent(ctx.compute(), slot.uploaded, 0), "cudaStreamWaitEvent");
    return dev;
  }

 private:
  Slot slots_[2];
  int next_ = 0;
};

}  // namespace

std::unique_ptr<BatchUpload> make_cuda_batch_upload() { return std::make_unique<CudaBatchUpload>(); }

}  // namespace ringtrain
