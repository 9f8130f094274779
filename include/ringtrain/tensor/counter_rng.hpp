// A counter-based random number: a pure function of (seed, stream, index), computed the same way on the CPU
// and in CUDA kernels. Dropout draws its masks from it, so a mask never has to be stored or sent, any element
// can be drawn in any order by any thread, and the CPU and CUDA engines drop the same elements.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define RINGTRAIN_HOST_DEVICE __host__ __device__
#else
#define RINGTRAIN_HOST_DEVICE
#endif

namespace ringtrain {

// splitmix64's finaliser over the three inputs: consecutive indices give independent-looking outputs.
RINGTRAIN_HOST_DEVICE inline uint64_t counter_hash(uint64_t seed, uint64_t stream, uint64_t index) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (stream + 1) + 0xD1B54A32D192ED03ull * (index + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in [0, 1) with 24 random bits, exactly representable as float.
RINGTRAIN_HOST_DEVICE inline float counter_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
  return static_cast<float>(counter_hash(seed, stream, index) >> 40) * (1.0f / 16777216.0f);
}

}  // namespace ringtrain
