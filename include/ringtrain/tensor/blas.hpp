// Row-major single-precision GEMM, the one primitive every layer's heavy lifting goes through.
#pragma once
#include <cstdint>

namespace ringtrain {

enum class Trans { no, yes };

// C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C, all row-major with leading dimensions lda/ldb/ldc.
void gemm(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// Compute threads for BLAS and for our own loops (one OpenMP pool serves both). Setting them also settles
// which CPU kernels run (cpu_path), so an Error for a bad RINGTRAIN_CPU comes from here.
void set_compute_threads(int threads);
int compute_threads();

}  // namespace ringtrain
