#include "ringtrain/tensor/half.hpp"

#include <bit>

namespace ringtrain {

uint16_t to_bf16(float value) {
  const uint32_t x = std::bit_cast<uint32_t>(value);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40);  // NaN: keep it quiet
  // Adding 0x7fff plus the lowest kept bit rounds to nearest, ties to even; a carry into the exponent is
  // the correct rounding up (to infinity past the largest finite value).
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

float from_bf16(uint16_t bits) { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }

// After Fabian Giesen's float_to_half_fast3_rtne (public domain).
uint16_t to_fp16(float value) {
  constexpr uint32_t kInfinity32 = 255u << 23, kOverflow = (127u + 16) << 23;
  constexpr uint32_t kDenormalMagic = ((127u - 15) + (23 - 10) + 1) << 23;  // 0.5f: aligns the mantissa for us
  uint32_t x = std::bit_cast<uint32_t>(value);
  const uint32_t sign = x & 0x80000000u;
  x ^= sign;
  uint32_t out;
  if (x >= kOverflow) {
    out = x > kInfinity32 ? 0x7e00 : 0x7c00;  // NaN stays NaN; too large becomes infinity
  } else if (x < (113u << 23)) {
    // Subnormal or zero in fp16: the float addition does the shift and the rounding.
    out = std::bit_cast<uint32_t>(std::bit_cast<float>(x) + std::bit_cast<float>(kDenormalMagic)) - kDenormalMagic;
  } else {
    const uint32_t odd = (x >> 13) & 1;
    x += (uint32_t(15 - 127) << 23) + 0xfff + odd;  // rebias the exponent, round to nearest even
    out = x >> 13;
  }
  return static_cast<uint16_t>(out | (sign >> 16));
}

float from_fp16(uint16_t bits) {
  constexpr uint32_t kExponent = 0x7c00u << 13;
  uint32_t out = (bits & 0x7fffu) << 13;
  const uint32_t exponent = out & kExponent;
  out += (127u - 15) << 23;
  if (exponent == kExponent) {
    out += (128u - 16) << 23;  // infinity or NaN
  } else if (exponent == 0) {  // subnormal: renormalise through a float subtraction
    out += 1u << 23;
    out = std::bit_cast<uint32_t>(std::bit_cast<float>(out) - std::bit_cast<float>(113u << 23));
  }
  return std::bit_cast<float>(out | (static_cast<uint32_t>(bits & 0x8000u) << 16));
}

namespace {

template <class Encode>
void encode_all(Encode encode, const float* __restrict in, uint16_t* __restrict out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = encode(in[i]);
}

template <class Decode>
void decode_all(Decode decode, const uint16_t* __restrict in, float* __restrict out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = decode(in[i]);
}

template <class Decode>
void add_all(Decode decode, const uint16_t* __restrict in, float* __restrict out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] += decode(in[i]);
}

}  // namespace

// Lambdas rather than function pointers, so each loop is compiled (and vectorised) with its conversion inlined.
void encode_half(HalfFormat format, const float* in, uint16_t* out, size_t n) {
  if (format == HalfFormat::bf16) encode_all([](float v) { return to_bf16(v); }, in, out, n);
  else encode_all([](float v) { return to_fp16(v); }, in, out, n);
}

void decode_half(HalfFormat format, const uint16_t* in, float* out, size_t n) {
  if (format == HalfFormat::bf16) decode_all([](uint16_t h) { return from_bf16(h); }, in, out, n);
  else decode_all([](uint16_t h) { return from_fp16(h); }, in, out, n);
}

void add_decoded_half(HalfFormat format, const uint16_t* in, float* out, size_t n) {
  if (format == HalfFormat::bf16) add_all([](uint16_t h) { return from_bf16(h); }, in, out, n);
  else add_all([](uint16_t h) { return from_fp16(h); }, in, out, n);
}

}  // namespace ringtrain
