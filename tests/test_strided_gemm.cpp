#include <gtest/gtest.h>

#include <cmath>

#include "ringtrain/nn/conv2d.hpp"
#include "ringtrain/tensor/strided_gemm.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

// Against a double-precision reference, over shapes with every kind of edge: partial row blocks, partial
// column panels, k longer than one pass, both A layouts, beta 0 and 1, with and without a row bias.
TEST(StridedGemm, MatchesReferenceOnRaggedShapes) {
  for (int64_t m : {1, 7, 8, 13, 64})
    for (int64_t n : {1, 5, 16, 31, 32, 33, 196})
      for (int64_t k : {1, 25, 600})
        for (bool transposed_a : {false, true})
          for (float beta : {0.0f, 1.0f})
            for (bool with_bias : {false, true}) {
              const Tensor a = test::random_tensor({m * k}, 1), b = test::random_tensor({k * n}, 2);
              const Tensor bias = test::random_tensor({m}, 4);
              Tensor c = test::random_tensor({m * n}, 3);
              const Tensor c0 = c;
              const int64_t a_row = transposed_a ? 1 : k, a_col = transposed_a ? m : 1;
              strided_gemm(m, n, k, a.data(), a_row, a_col, b.data(), n, beta, c.data(), n,
                           with_bias ? bias.data() : nullptr);
              for (int64_t i = 0; i < m; ++i)
                for (int64_t j = 0; j < n; ++j) {
                  double want = beta * c0[i * n + j] + (with_bias ? bias[i] : 0.0f);
                  for (int64_t p = 0; p < k; ++p) want += static_cast<double>(a[i * a_row + p * a_col]) * b[p * n + j];
                  ASSERT_NEAR(c[i * n + j], want, 1e-4 * (1.0 + std::sqrt(static_cast<double>(k))))
                      << m << "x" << n << "x" << k << " transposed " << transposed_a << " beta " << beta;
                }
            }
}

TEST(IndexedGemm, ReadsTheColumnMatrixStraightFromThePaddedImage) {
  // indexed_gemm over column_offsets must equal strided_gemm over the materialised im2col matrix.
  for (ConvGeometry g : {ConvGeometry{3, 7, 6, 0, 3, 1, 1, 0, 0}, ConvGeometry{2, 9, 9, 0, 5, 2, 2, 0, 0}}) {
    g.out_h = (g.in_h + 2 * g.pad - g.kernel) / g.stride + 1;
    g.out_w = (g.in_w + 2 * g.pad - g.kernel) / g.stride + 1;
    const int64_t rows = g.col_rows(), cols = g.col_cols(), n = 5;
    const Tensor x = test::random_tensor({g.in_c * g.in_h * g.in_w}, 1), b = test::random_tensor({cols * n}, 2);
    Tensor padded({g.in_c * g.padded_h() * g.padded_w() + kIm2colSlack}), col({rows * cols + kIm2colSlack});
    im2col(g, x.data(), padded.data(), col.data());
    std::vector<int64_t> row_off, col_off;
    column_offsets(g, row_off, col_off);
    Tensor want({rows * n}), got({rows * n});
    strided_gemm(rows, n, cols, col.data(), cols, 1, b.data(), n, 0.0f, want.data(), n);
    indexed_gemm(rows, n, cols, padded.data(), row_off.data(), col_off.data(), b.data(), n, 0.0f, got.data(), n);
    for (int64_t i = 0; i < want.numel(); ++i) EXPECT_NEAR(got[i], want[i], 1e-4) << i;
  }
}

}  // namespace
}  // namespace ringtrain
