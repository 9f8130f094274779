#include "ringtrain/nn/init.hpp"

#include <cmath>
#include <numbers>

#include "ringtrain/tensor/counter_rng.hpp"
#include "ringtrain/tensor/cpu_features.hpp"

namespace ringtrain {

void fill_normal(Tensor& t, float std, Rng& rng) {
  const uint64_t seed = rng.next_u64();
  const int64_t n = t.numel();
  for_each_chunk((n + 1) / 2, [&](int64_t begin, int64_t end) {
    float* __restrict out = t.data();
    for (int64_t k = begin; k < end; ++k) {
      // Two 24-bit uniforms from one hash; the first in (0, 1], so that its log is finite.
      const uint64_t h = counter_hash(seed, 0, static_cast<uint64_t>(k));
      const float u1 = static_cast<float>((h >> 40) + 1) * (1.0f / 16777216.0f);
      const float u2 = static_cast<float>((h >> 16) & 0xFFFFFFu) * (1.0f / 16777216.0f);
      const float radius = std * std::sqrt(-2.0f * std::log(u1)), angle = 2.0f * std::numbers::pi_v<float> * u2;
      out[2 * k] = radius * std::cos(angle);
      if (2 * k + 1 < n) out[2 * k + 1] = radius * std::sin(angle);
    }
  });
}

}  // namespace ringtrain
