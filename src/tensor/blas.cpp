#include "ringtrain/tensor/blas.hpp"

#include <cblas.h>
#include <omp.h>

#include <string_view>

#include "ringtrain/tensor/cpu_features.hpp"

namespace ringtrain {

void gemm(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta == Trans::yes ? CblasTrans : CblasNoTrans,
              tb == Trans::yes ? CblasTrans : CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta, c,
              static_cast<int>(ldc));
}

void set_compute_threads(int threads) {
  cpu_path();  // settled here, before any parallel loop, where a bad RINGTRAIN_CPU can end the run cleanly
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
}

int compute_threads() { return omp_get_max_threads(); }

std::string blas_kernels_for_unrecognised_cpu() {
  if (std::string_view(openblas_get_corename()) != "Prescott") return "";  // its fallback for a CPU it does not know
  if (cpu_has_avx512()) return "SkylakeX";
  if (cpu_has_avx2_fma()) return "Haswell";
  return "";
}

}  // namespace ringtrain
