// What every kernel file shares: grid sizing (tensor/cuda_grid.hpp), the warp sum of the kernels that give
// each row a warp, and the check after a launch.
#pragma once
#include "ringtrain/tensor/cuda_context.hpp"
#include "ringtrain/tensor/cuda_grid.hpp"

namespace ringtrain::kernels {

// A launch fails only for bad configurations; the kernel's own faults surface at the next synchronising call.
// cudaGetLastError reports the thread's last runtime error whatever call made it: code that lets a runtime
// error pass on purpose clears it (cuda_events.hpp event_done, the convolution's algorithm search), so that
// this reports only the launch it follows.
inline void check_launch(const char* kernel) { cuda::check(cudaGetLastError(), kernel); }

inline constexpr int kWarp = 32;

// The sum of v over the 32 lanes of a full warp, in every lane (a butterfly of shuffles: no shared memory,
// and the same order of additions every run).
template <class T>
__device__ T warp_sum(T v) {
  for (int o = kWarp / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// The maximum of v over the 32 lanes of a full warp, in every lane.
__device__ inline float warp_max(float v) {
  for (int o = kWarp / 2; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

}  // namespace ringtrain::kernels
