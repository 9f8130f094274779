// A vectorisable e^x for x <= 0, shared by GELU and attention's softmax (nn-internal).
#pragma once
#include <algorithm>
#include <bit>
#include <cstdint>
#include <numbers>

namespace ringtrain {

// e^x for x <= 0 (Cephes' expf: x = n ln 2 + r, |r| <= ln 2 / 2, a degree-6 polynomial for e^r, 2^n built
// in the exponent bits), within 2 ulp; 0 below -87. Plain arithmetic with no library call, so that loops
// calling it vectorise (glibc's vector expf needs -ffast-math).
inline float exp_nonpositive(float x) {
  x = std::max(x, -87.0f);
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds to an integer
  const float n = (x * std::numbers::log2e_v<float> + kRound) - kRound;
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // max(-126, n) is n for every x here, and -126 for a NaN, which p carries instead: no NaN cast to an integer.
  return p * std::bit_cast<float>((static_cast<int32_t>(std::max(-126.0f, n)) + 127) << 23);
}

}  // namespace ringtrain
