#include "ringtrain/tensor/strided_gemm.hpp"

#include "ringtrain/tensor/cpu_features.hpp"
#if RINGTRAIN_X86_64
#include <immintrin.h>
#endif

#include <algorithm>
#include <vector>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/blas.hpp"

namespace ringtrain {

namespace {

#if RINGTRAIN_X86_64
namespace avx512 {

constexpr int64_t kNr = 32;   // columns per tile: two zmm registers
constexpr int64_t kMr = 8;    // rows per tile: 8 x 2 accumulators, 8 broadcasts and 2 loads per k
constexpr int64_t kKc = 512;  // k per pass, so a tile's A rows stay in L1

RINGTRAIN_TARGET_AVX512 __mmask16 mask_of(int64_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
}

// How the kernel finds A(i, p): a[row_offset(i) + column(p)], by strides or by offset tables.
struct StridedA {
  const float* a;
  int64_t row, col;
  int64_t row_offset(int64_t i) const { return i * row; }
  const float* column(int64_t p) const { return a + p * col; }
  StridedA shifted(int64_t i0, int64_t p0) const { return {a + i0 * row + p0 * col, row, col}; }
};

struct IndexedA {
  const float* a;
  const int64_t* rows;
  const int64_t* cols;
  int64_t row_offset(int64_t i) const { return rows[i]; }
  const float* column(int64_t p) const { return a + cols[p]; }
  IndexedA shifted(int64_t i0, int64_t p0) const { return {a, rows + i0, cols + p0}; }
};

// One MR x (16 * NV) tile of C, n_valid of its columns real, over k in [0, kc). NV = 1 serves the last
// narrow column panel (196 = 6 * 32 + 4 columns would otherwise waste an eighth of the FMAs).
template <int MR, int NV, typename A>
RINGTRAIN_TARGET_AVX512 void tile(int64_t kc, const A& a, const float* b, int64_t ldb, float* c, int64_t ldc,
                                  int64_t n_valid, bool accumulate, const float* row_bias) {
  __mmask16 mask[NV];
  for (int v = 0; v < NV; ++v) mask[v] = mask_of(std::max<int64_t>(0, n_valid - 16 * v));
  // Every loop is unrolled so the accumulators live in registers (GCC spills arrays otherwise).
  __m512 acc[MR][NV];
  int64_t row[MR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) row[i] = a.row_offset(i);
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[i][v] = row_bias ? _mm512_set1_ps(row_bias[i]) : _mm512_setzero_ps();
  for (int64_t p = 0; p < kc; ++p) {
    __m512 bv[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_maskz_loadu_ps(mask[v], b + p * ldb + 16 * v);
    const float* ap = a.column(p);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(ap[row[i]]);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
  }
  const bool full = n_valid == 16 * NV;  // full tiles take plain stores (masked stores are slow on some CPUs)
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      float* ci = c + i * ldc + 16 * v;
      if (full) {
        if (accumulate) acc[i][v] = _mm512_add_ps(acc[i][v], _mm512_loadu_ps(ci));
        _mm512_storeu_ps(ci, acc[i][v]);
      } else {
        if (accumulate) acc[i][v] = _mm512_add_ps(acc[i][v], _mm512_maskz_loadu_ps(mask[v], ci));
        _mm512_mask_storeu_ps(ci, mask[v], acc[i][v]);
      }
    }
}

template <typename A>
using TileFn = void (*)(int64_t, const A&, const float*, int64_t, float*, int64_t, int64_t, bool, const float*);

// [rows in the tile][vectors per row - 1]
template <typename A>
constexpr TileFn<A> kTiles[kMr + 1][2] = {
    {nullptr, nullptr},           {tile<1, 1, A>, tile<1, 2, A>}, {tile<2, 1, A>, tile<2, 2, A>},
    {tile<3, 1, A>, tile<3, 2, A>}, {tile<4, 1, A>, tile<4, 2, A>}, {tile<5, 1, A>, tile<5, 2, A>},
    {tile<6, 1, A>, tile<6, 2, A>}, {tile<7, 1, A>, tile<7, 2, A>}, {tile<8, 1, A>, tile<8, 2, A>}};

template <typename A>
RINGTRAIN_TARGET_AVX512 void blocked_gemm(int64_t m, int64_t n, int64_t k, const A& a, const float* b, int64_t ldb,
                                          float beta, float* c, int64_t ldc, const float* row_bias) {
  if (k == 0) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta * c[i * ldc + j] + (row_bias ? row_bias[i] : 0.0f);
    return;
  }
  // Row blocks outside column panels: a block's A rows (MR x kc) stay in L1 while B's panels stream by.
  for (int64_t p0 = 0; p0 < k; p0 += kKc) {
    const int64_t kc = std::min(kKc, k - p0);
    const bool accumulate = p0 > 0 || beta != 0.0f;
    const float* bias = p0 == 0 ? row_bias : nullptr;
    for (int64_t i0 = 0; i0 < m; i0 += kMr) {
      const int64_t mr = std::min(kMr, m - i0);
      const A block = a.shifted(i0, p0);
      for (int64_t j0 = 0; j0 < n; j0 += kNr) {
        const int64_t nv = std::min(kNr, n - j0);
        kTiles<A>[mr][nv > 16 ? 1 : 0](kc, block, b + p0 * ldb + j0, ldb, c + i0 * ldc + j0, ldc, nv, accumulate,
                                       bias ? bias + i0 : nullptr);
      }
    }
  }
}

}  // namespace avx512
#endif

// Without AVX-512 the products go to OpenBLAS, after materialising A where its layout is not one BLAS takes.
namespace portable {

void strided_gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t a_row, int64_t a_col, const float* b,
                  int64_t ldb, float beta, float* c, int64_t ldc, const float* row_bias) {
  if (row_bias) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta * c[i * ldc + j] + row_bias[i];
    beta = 1.0f;
  }
  // BLAS wants a leading dimension of at least the row length, even where a single row or column makes the
  // stride irrelevant (a 1 x k A with both strides 1).
  if (a_col == 1 && (a_row >= k || m == 1))
    gemm(Trans::no, Trans::no, m, n, k, 1.0f, a, std::max(a_row, k), b, ldb, beta, c, ldc);
  else if (a_row == 1 && (a_col >= m || k == 1))
    gemm(Trans::yes, Trans::no, m, n, k, 1.0f, a, std::max(a_col, m), b, ldb, beta, c, ldc);
  else
    throw Error("strided_gemm: without AVX-512 A must be stored by rows or by columns");
}

void indexed_gemm(int64_t m, int64_t n, int64_t k, const float* a, const int64_t* row_offsets,
                  const int64_t* col_offsets, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  thread_local std::vector<float> gathered;  // A materialised row-major for BLAS
  gathered.resize(static_cast<size_t>(m * k));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t p = 0; p < k; ++p) gathered[static_cast<size_t>(i * k + p)] = a[row_offsets[i] + col_offsets[p]];
  gemm(Trans::no, Trans::no, m, n, k, 1.0f, gathered.data(), k, b, ldb, beta, c, ldc);
}

}  // namespace portable

}  // namespace

void strided_gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t a_row, int64_t a_col, const float* b,
                  int64_t ldb, float beta, float* c, int64_t ldc, const float* row_bias) {
#if RINGTRAIN_X86_64
  if (cpu_path() == CpuPath::avx512)
    return avx512::blocked_gemm(m, n, k, avx512::StridedA{a, a_row, a_col}, b, ldb, beta, c, ldc, row_bias);
#endif
  portable::strided_gemm(m, n, k, a, a_row, a_col, b, ldb, beta, c, ldc, row_bias);
}

void indexed_gemm(int64_t m, int64_t n, int64_t k, const float* a, const int64_t* row_offsets,
                  const int64_t* col_offsets, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
#if RINGTRAIN_X86_64
  if (cpu_path() == CpuPath::avx512)
    return avx512::blocked_gemm(m, n, k, avx512::IndexedA{a, row_offsets, col_offsets}, b, ldb, beta, c, ldc,
                                nullptr);
#endif
  portable::indexed_gemm(m, n, k, a, row_offsets, col_offsets, b, ldb, beta, c, ldc);
}

}  // namespace ringtrain
