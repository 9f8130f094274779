// Which CPU kernels run. One binary serves a whole cluster, whose nodes may be of different CPU generations,
// so the build assumes no more than the architecture's baseline (no -march=native). Code that needs AVX-512
// is compiled for it function by function (hand-written kernels marked RINGTRAIN_TARGET_AVX512, plain loops
// through run_vectorised) and runs only on the path cpu_path() chose once per process: avx512 where the CPU
// has it. The environment variable RINGTRAIN_CPU overrides the choice: `portable` forces the portable code
// (to test it, or to compare), `avx512` insists on AVX-512.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string_view>

#include "ringtrain/tensor/enum_names.hpp"

#if defined(__x86_64__)
#define RINGTRAIN_X86_64 1
// Compiles one function for AVX-512 whatever the build's baseline; call it only on the avx512 path. F, BW, DQ
// and VL, as every AVX-512 CPU since Skylake-SP and Zen 4 has them: with F alone GCC keeps mask registers
// on the stack, and the GEMM kernel's inner loop reloads them (12% slower).
#define RINGTRAIN_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#else
#define RINGTRAIN_X86_64 0
#endif

namespace ringtrain {

enum class CpuPath { portable, avx512 };
inline constexpr EnumNames<CpuPath, 2> kCpuPathNames{{{CpuPath::portable, "portable"}, {CpuPath::avx512, "avx512"}}};
constexpr const auto& enum_names(CpuPath) { return kCpuPathNames; }

// The AVX-512 subsets RINGTRAIN_TARGET_AVX512 compiles for (F, BW, DQ, VL); AVX2 with FMA.
bool cpu_has_avx512();
bool cpu_has_avx2_fma();

// The path for a value of RINGTRAIN_CPU (null or empty: the best this CPU has). Error for an unknown
// value, or for avx512 on a CPU without it.
CpuPath choose_cpu_path(const char* setting, bool cpu_has_avx512);

// choose_cpu_path for this process's environment and CPU.
CpuPath detect_cpu_path();

// This process's path, decided on first use; kernels ask per call, so it must be cheap.
inline CpuPath cpu_path() {
  static const CpuPath path = detect_cpu_path();
  return path;
}

#if RINGTRAIN_X86_64
// f() and everything it calls inlined into one function built for AVX-512, so that their plain loops are
// vectorised with it.
template <class F>
RINGTRAIN_TARGET_AVX512 __attribute__((flatten)) void run_compiled_for_avx512(const F& f) {
  f();
}
#endif

// Runs f(), a piece of plain loops, compiled for AVX-512 on the avx512 path and for the baseline otherwise:
// auto-vectorised loops get the wide vectors -march=native gave them, from one source and by the same switch
// as the hand-written kernels. f must not open an OpenMP region (that body is outlined, baseline only): call
// it inside one, per item of work.
template <class F>
void run_vectorised(const F& f) {
#if RINGTRAIN_X86_64
  if (cpu_path() == CpuPath::avx512) return run_compiled_for_avx512(f);
#endif
  f();
}

// Element-wise work over [0, n): f(begin, end) on chunks spread over the OpenMP threads (where there are
// enough elements to pay for a parallel region), each chunk's loop vectorised as run_vectorised's. Every
// element is computed alike whatever the thread count, so results are bitwise the same on 1 thread or many.
// ResNets' batchnorm, residual sums and ReLUs are such loops over tensors of megabytes: on one thread and at
// the baseline's 4-wide vectors they took a third of a ResNet-20 step.
template <class F>
void for_each_chunk(int64_t n, const F& f) {
  constexpr int64_t kChunk = int64_t{1} << 14, kParallelFrom = int64_t{1} << 16;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n >= kParallelFrom)
#endif
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t begin = c * kChunk, end = std::min(n, begin + kChunk);
    run_vectorised([&] { f(begin, end); });
  }
}

}  // namespace ringtrain
