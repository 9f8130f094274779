// probe_cuda() for builds configured with -DRINGTRAIN_CUDA=OFF.
#include "ringtrain/tensor/device.hpp"

namespace ringtrain {

CudaProbe probe_cuda() { return {0, "no CUDA device: ringtrain was built with RINGTRAIN_CUDA=OFF"}; }

}  // namespace ringtrain
