// 16-bit float conversions against the hardware's: the CPU's F16C instructions (IEEE binary16, round to
// nearest even) for fp16, and for bf16 the definition (the top 16 bits of the float32, rounded to nearest even).
#include <gtest/gtest.h>
#include <cpuid.h>
#include <immintrin.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "ringtrain/tensor/half.hpp"

namespace ringtrain {
namespace {

// bf16 by its definition, through double arithmetic: the nearest float32 whose low 16 bits are zero, ties to
// the one whose bit 16 is zero.
uint16_t reference_bf16(float v) {
  const uint32_t bits = std::bit_cast<uint32_t>(v);
  const uint32_t down = bits & 0xffff0000u, up = down + 0x10000u;
  const double lo = std::fabs(static_cast<double>(std::bit_cast<float>(down)));
  const double hi = (up & 0x7f800000u) == 0x7f800000u && (up & 0x007fffffu) == 0
                        ? std::ldexp(1.0, 128)  // rounding up overflows to infinity
                        : std::fabs(static_cast<double>(std::bit_cast<float>(up)));
  const double x = std::fabs(static_cast<double>(v));
  if (x - lo < hi - x) return static_cast<uint16_t>(down >> 16);
  if (x - lo > hi - x) return static_cast<uint16_t>(up >> 16);
  return static_cast<uint16_t>(((down >> 16) & 1) ? up >> 16 : down >> 16);
}

// F16C, through the target attribute: the build targets the baseline x86-64, and clang has no _Float16 there.
__attribute__((target("f16c"))) uint16_t hardware_fp16(float v) {
  return static_cast<uint16_t>(_cvtss_sh(v, _MM_FROUND_TO_NEAREST_INT));
}
__attribute__((target("f16c"))) float hardware_float(uint16_t h) { return _cvtsh_ss(h); }

// CPUID leaf 1: ECX bit 29 is F16C (clang's __builtin_cpu_supports does not know the name).
bool cpu_has_f16c() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(1, &a, &b, &c, &d) && (c >> 29 & 1);
}

#define REQUIRE_F16C() \
  if (!cpu_has_f16c()) GTEST_SKIP() << "this CPU has no F16C instructions to compare with"

std::vector<float> awkward_floats() {
  std::vector<float> v = {0.0f, -0.0f, 1.0f, -1.0f, 65504.0f, 65519.99f, 65520.0f, 1e-8f, 5.96e-8f, 2.98e-8f,
                          6.1e-5f, std::numeric_limits<float>::max(), std::numeric_limits<float>::min(),
                          std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity(), 3.3895314e38f, 1.00390625f, 1.01171875f};
  std::mt19937 rng(7);
  for (int i = 0; i < 200000; ++i) v.push_back(std::bit_cast<float>(static_cast<uint32_t>(rng())));
  for (int i = 0; i < 200000; ++i) v.push_back(std::ldexp(static_cast<float>(rng() % 4096) / 2048.0f, int(rng() % 50) - 30));
  return v;
}

TEST(Half, Fp16RoundsAsTheHardwareDoes) {
  REQUIRE_F16C();
  for (float v : awkward_floats()) {
    if (std::isnan(v)) {
      EXPECT_TRUE(std::isnan(from_fp16(to_fp16(v))));
      continue;
    }
    ASSERT_EQ(to_fp16(v), hardware_fp16(v)) << v;
  }
}

TEST(Half, EveryFp16DecodesAsTheHardwareDoes) {
  REQUIRE_F16C();
  for (uint32_t h = 0; h < 65536; ++h) {
    const float expect = hardware_float(static_cast<uint16_t>(h));
    const float got = from_fp16(static_cast<uint16_t>(h));
    if (std::isnan(expect)) ASSERT_TRUE(std::isnan(got)) << h;
    else ASSERT_EQ(std::bit_cast<uint32_t>(got), std::bit_cast<uint32_t>(expect)) << h;
  }
}

TEST(Half, Bf16RoundsToNearestEven) {
  for (float v : awkward_floats()) {
    if (std::isnan(v)) ASSERT_TRUE(std::isnan(from_bf16(to_bf16(v))));  // a NaN's payload may be any
    else ASSERT_EQ(to_bf16(v), reference_bf16(v)) << v;
  }
  for (uint32_t h = 0; h < 65536; ++h) {  // every bf16 is a float32 with its low half zero, and back
    const float f = from_bf16(static_cast<uint16_t>(h));
    if (!std::isnan(f)) ASSERT_EQ(to_bf16(f), h);
  }
}

TEST(Half, ArrayFormsMatchTheScalarOnes) {
  const std::vector<float> in = {1.0f, -2.5f, 1e-3f, 300.7f, 70000.0f};
  for (HalfFormat format : {HalfFormat::bf16, HalfFormat::fp16}) {
    std::vector<uint16_t> wire(in.size());
    std::vector<float> out(in.size()), sum(in.size(), 1.0f);
    encode_half(format, in.data(), wire.data(), in.size());
    decode_half(format, wire.data(), out.data(), in.size());
    add_decoded_half(format, wire.data(), sum.data(), in.size());
    for (size_t i = 0; i < in.size(); ++i) {
      const uint16_t h = format == HalfFormat::bf16 ? to_bf16(in[i]) : to_fp16(in[i]);
      const float back = format == HalfFormat::bf16 ? from_bf16(h) : from_fp16(h);
      EXPECT_EQ(wire[i], h);
      EXPECT_EQ(out[i], back);
      EXPECT_EQ(sum[i], 1.0f + back);
    }
  }
}

}  // namespace
}  // namespace ringtrain
