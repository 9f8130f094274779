// What every kernel file shares: grid sizing (tensor/cuda_grid.hpp) and the check after a launch.
#pragma once
#include "ringtrain/tensor/cuda_context.hpp"
#include "ringtrain/tensor/cuda_grid.hpp"

namespace ringtrain::kernels {

// A launch fails only for bad configurations; the kernel's own faults surface at the next synchronising call.
// cudaGetLastError reports the thread's last runtime error whatever call made it: code that lets a runtime
// error pass on purpose clears it (cuda_events.hpp event_done, the convolution's algorithm search), so that
// this reports only the launch it follows.
inline void check_launch(const char* kernel) { cuda::check(cudaGetLastError(), kernel); }

}  // namespace ringtrain::kernels
