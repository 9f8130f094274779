// What every kernel file shares: grid sizing (cuda_context.hpp) and the check after a launch.
#pragma once
#include "ringtrain/tensor/cuda_context.hpp"

namespace ringtrain::kernels {

// A launch fails only for bad configurations; the kernel's own faults surface at the next synchronising call.
inline void check_launch(const char* kernel) { cuda::check(cudaGetLastError(), kernel); }

#define RINGTRAIN_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

}  // namespace ringtrain::kernels
