// 16-bit floats as raw bits (uint16_t): bfloat16 (float32's 8-bit exponent, 7-bit mantissa: the range of
// float32 at ~3 significant digits) and IEEE binary16 (5-bit exponent, 10-bit mantissa: ~3.3 digits, largest
// 65504). Conversions round to nearest, ties to even, as hardware does; NaN stays NaN, overflow becomes
// infinity. Written as plain integer code that the compiler vectorises, on any x86-64 or ARM CPU.
#pragma once
#include <cstddef>
#include <cstdint>

#include "ringtrain/tensor/enum_names.hpp"

namespace ringtrain {

enum class HalfFormat { bf16, fp16 };
inline constexpr EnumNames<HalfFormat, 2> kHalfFormatNames{{{HalfFormat::bf16, "bf16"}, {HalfFormat::fp16, "fp16"}}};
constexpr const auto& enum_names(HalfFormat) { return kHalfFormatNames; }

uint16_t to_bf16(float value);
float from_bf16(uint16_t bits);
uint16_t to_fp16(float value);
float from_fp16(uint16_t bits);

// Array forms: n values from `in` to `out`.
void encode_half(HalfFormat format, const float* in, uint16_t* out, size_t n);
void decode_half(HalfFormat format, const uint16_t* in, float* out, size_t n);
// out[i] += decode(in[i]): a reduction that accumulates in float32.
void add_decoded_half(HalfFormat format, const uint16_t* in, float* out, size_t n);

}  // namespace ringtrain
