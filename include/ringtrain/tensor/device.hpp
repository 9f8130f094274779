// Where a computation runs. The CPU engine (OpenBLAS) is complete; the CUDA engine is built from kernels/
// whenever nvcc is present, so the build always compiles it even on machines without a GPU.
#pragma once
#include <string>

namespace ringtrain {

enum class Device { cpu, cuda };

struct CudaProbe {
  int device_count = 0;
  std::string reason;  // why no device is usable, when device_count == 0
};

// Never throws: a machine without a driver or GPU reports device_count 0 and the CUDA runtime's reason.
CudaProbe probe_cuda();

}  // namespace ringtrain
