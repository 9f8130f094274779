// make_cuda_batch_upload for builds configured with -DRINGTRAIN_CUDA=OFF.
#include "ringtrain/data/device_batches.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

std::unique_ptr<BatchUpload> make_cuda_batch_upload() {
  throw Error("no CUDA device: ringtrain was built with RINGTRAIN_CUDA=OFF");
}

}  // namespace ringtrain
