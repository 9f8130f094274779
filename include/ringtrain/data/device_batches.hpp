// A loader's batches on the device the model runs on. On the CPU they are the loader's own. For the CUDA
// engine each batch is copied into pinned (page-locked) host memory and uploaded on the upload stream while
// the GPU still computes the step before; the compute stream waits for the upload by an event, so the
// host never does. Two slots alternate: one being computed on, one being filled.
#pragma once
#include <memory>

#include "ringtrain/data/loader.hpp"

namespace ringtrain {

// Uploads host batches for the CUDA engine (data/cuda_batch_upload.cpp).
class BatchUpload {
 public:
  virtual ~BatchUpload() = default;
  // The device copy of `host`, valid until the call after next; compute-stream work queued after this call
  // sees it.
  virtual const Batch& upload(const Batch& host) = 0;
};
std::unique_ptr<BatchUpload> make_cuda_batch_upload();

class DeviceBatches {
 public:
  DeviceBatches(BatchLoader& loader, Device device);
  void start_epoch(int64_t epoch, int64_t first_sample = 0) { loader_.start_epoch(epoch, first_sample); }
  const BatchLoader& loader() const { return loader_; }
  // The next batch on the device, or null at the end of the epoch. Valid until the call after next.
  const Batch* next();

 private:
  BatchLoader& loader_;
  Batch host_;
  std::unique_ptr<BatchUpload> upload_;  // CUDA only
};

}  // namespace ringtrain
