#include "ringtrain/tensor/blas.hpp"

#include <cblas.h>
#include <omp.h>

#include <cstdlib>
#include <string_view>

#include "ringtrain/tensor/cpu_features.hpp"

// OpenBLAS built with DYNAMIC_ARCH (Debian's) picks its kernels as it loads, from the CPU model or
// OPENBLAS_CORETYPE. These two of its exported functions drop and redo that choice; weak, so that another
// BLAS, or an OpenBLAS built for one CPU, simply lacks them.
extern "C" {
void gotoblas_dynamic_init(void) __attribute__((weak));
void gotoblas_dynamic_quit(void) __attribute__((weak));
}

namespace ringtrain {

namespace {

// Debian 12's OpenBLAS (0.3.21) does not recognise CPUs newer than itself (Sapphire and Emerald Rapids among
// them) and falls back to its generic SSE3 kernels ("Prescott") there, several times slower than its AVX-512
// ones: half of a CNN step went to them. On a CPU with AVX-512 or AVX2 it chooses again, with
// OPENBLAS_CORETYPE naming the kernels the CPU can run; before the first GEMM, while OpenBLAS holds no buffers
// laid out for the old ones. A user's own OPENBLAS_CORETYPE is left alone.
bool fit_blas_kernels_to_cpu() {
  if (!gotoblas_dynamic_init || !gotoblas_dynamic_quit || std::getenv("OPENBLAS_CORETYPE")) return false;
  if (std::string_view(openblas_get_corename()) != "Prescott") return false;
  const char* kernels = cpu_has_avx512() ? "SkylakeX" : cpu_has_avx2_fma() ? "Haswell" : nullptr;
  if (!kernels || setenv("OPENBLAS_CORETYPE", kernels, 1) != 0) return false;
  gotoblas_dynamic_quit();
  gotoblas_dynamic_init();
  unsetenv("OPENBLAS_CORETYPE");
  return true;
}

void ensure_blas_kernels_fit() {
  static const bool refitted = fit_blas_kernels_to_cpu();
  (void)refitted;
}

}  // namespace

void gemm(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  ensure_blas_kernels_fit();
  cblas_sgemm(CblasRowMajor, ta == Trans::yes ? CblasTrans : CblasNoTrans,
              tb == Trans::yes ? CblasTrans : CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta, c,
              static_cast<int>(ldc));
}

void set_compute_threads(int threads) {
  cpu_path();  // settled here, before any parallel loop, where a bad RINGTRAIN_CPU can end the run cleanly
  ensure_blas_kernels_fit();
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
}

int compute_threads() { return omp_get_max_threads(); }


}  // namespace ringtrain
