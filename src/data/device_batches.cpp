#include "ringtrain/data/device_batches.hpp"

namespace ringtrain {

DeviceBatches::DeviceBatches(BatchLoader& loader, Device device)
    : loader_(loader), upload_(device == Device::cuda ? make_cuda_batch_upload() : nullptr) {}

const Batch* DeviceBatches::next() {
  if (!loader_.next(host_)) return nullptr;
  return upload_ ? &upload_->upload(host_) : &host_;
}

}  // namespace ringtrain
