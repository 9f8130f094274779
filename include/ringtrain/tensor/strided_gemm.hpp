// A GEMM for convolutions: C[m, n] = beta * C + bias[m] + sum_k A(m, k) * B(k, n) with
//   A(m, k) = a[m * a_row + k * a_col]   (any strides: the operand the kernel broadcasts)
//   B(k, n) = b[k * ldb + n]             (rows contiguous)
// and C row-major with leading dimension ldc; beta is 0 or 1; row_bias may be null (no bias).
//
// Why not sgemm: a convolution's three products (forward, weight gradient, input gradient) all read the
// im2col matrix or the weights in place through strides, so this kernel needs no packing copies, and one
// sample's product is small enough that BLAS's per-call packing was a fifth of its time. On a CPU with
// AVX-512 (found at run time: cpu_features.hpp) it is a 8x32 register-tiled FMA kernel; elsewhere it
// forwards to OpenBLAS (which needs a_row or a_col == 1).
#pragma once
#include <cstdint>

namespace ringtrain {

void strided_gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t a_row, int64_t a_col, const float* b,
                  int64_t ldb, float beta, float* c, int64_t ldc, const float* row_bias = nullptr);

// The same with A(m, k) = a[row_offsets[m] + col_offsets[k]]: a convolution's column matrix read straight
// from the zero-padded image (row = channel and kernel offset, column = output position), no im2col copy.
void indexed_gemm(int64_t m, int64_t n, int64_t k, const float* a, const int64_t* row_offsets,
                  const int64_t* col_offsets, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

}  // namespace ringtrain
