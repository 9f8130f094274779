// Launch geometry shared by every element-wise kernel (the tensor's fill and kernels/): a fixed block size,
// a grid covering n elements up to CUDA's 65535-block limit, and grid-stride loops taking the rest.
#pragma once
#include <cstdint>

namespace ringtrain::cuda {

inline constexpr int kThreads = 256;
inline unsigned blocks_for(long long n) {
  const long long b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 ? 65535 : b));
}

}  // namespace ringtrain::cuda

// for (i over this thread's elements of [0, n)), in device code.
#define RINGTRAIN_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
