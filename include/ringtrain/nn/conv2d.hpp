// 2-D convolution over [batch, C, H, W] by im2col + strided_gemm, one sample at a time so the column
// buffer stays in cache; samples are spread over the OpenMP threads, each with its own buffers.
#pragma once
#include <vector>

#include "ringtrain/nn/layer.hpp"

namespace ringtrain {

struct ConvGeometry {
  int64_t in_c, in_h, in_w, out_c, kernel, stride, pad, out_h, out_w;
  int64_t col_rows() const { return in_c * kernel * kernel; }
  int64_t col_cols() const { return out_h * out_w; }
  int64_t padded_h() const { return in_h + 2 * pad; }
  int64_t padded_w() const { return in_w + 2 * pad; }
};

// col[c*k*k + ki*k + kj][oh*out_w + ow] = x[c][oh*stride - pad + ki][ow*stride - pad + kj] (0 outside).
// `padded` is scratch of in_c * padded_h * padded_w floats; both it and `col` need kIm2colSlack floats of
// writable slack after them.
inline constexpr int64_t kIm2colSlack = 16;
void im2col(const ConvGeometry& g, const float* x, float* padded, float* col);
// The first half of im2col: the sample with its zero border, [in_c, padded_h, padded_w].
void pad_sample(const ConvGeometry& g, const float* x, float* padded);
// Offsets into the padded sample such that col[r][p] = padded[rows[r] + cols[p]] (for indexed_gemm).
void column_offsets(const ConvGeometry& g, std::vector<int64_t>& rows, std::vector<int64_t>& cols);
// The adjoint of im2col: dx = the sum of col's entries at the input positions they were copied from.
void col2im(const ConvGeometry& g, const float* col, float* padded, float* dx);

class Conv2d : public Layer {
 public:
  Conv2d(int64_t out_channels, int64_t kernel, int64_t stride, int64_t pad, bool bias)
      : out_c_(out_channels), kernel_(kernel), stride_(stride), pad_(pad), has_bias_(bias) {}
  std::string kind() const override { return "conv"; }
  std::string spec() const override;
  Shape build(const Shape& sample_in, Rng& rng) override;
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  ForwardState forward_state() override { return {{&y_}}; }
  std::vector<Param*> params() override;
  double flops_per_sample() const override;
  bool fold_relu() override { return relu_ = true; }

  const ConvGeometry& geometry() const { return g_; }
  bool has_bias() const { return has_bias_; }
  bool relu_folded() const { return relu_; }

 private:
  int64_t scratch_per_thread() const;
  float* thread_col(int thread);
  float* thread_padded(int thread);
  float* thread_dy_t(int thread);
  float* thread_dy_relu(int thread);

  int64_t out_c_, kernel_, stride_, pad_;
  bool has_bias_, relu_ = false;
  ConvGeometry g_{};
  Param weight_{"weight", {}, {}}, bias_{"bias", {}, {}};
  const Tensor* x_ = nullptr;
  Tensor y_, dx_;
  Tensor scratch_;       // per thread: column matrix, padded sample, output gradient transposed and masked
  Tensor weight_grads_;  // per thread: transposed weight-gradient partial, summed in thread order
  Tensor bias_grads_;    // per sample: bias-gradient partial, summed in sample order
  Tensor weight_t_;      // W^T [K, Cout], refreshed each forward
  // Stride-1 input gradient as a convolution of dy (geometry back_) with flipped weights.
  bool direct_input_grad_ = false;
  ConvGeometry back_{};
  std::vector<int64_t> back_rows_, back_cols_;
  Tensor weight_flip_;   // [Cout * k * k, Cin], refreshed each backward
  Tensor dx_scratch_;    // per thread: padded dy, then dx^T
  std::vector<int64_t> col_rows_, col_cols_;  // column_offsets of this geometry
};

}  // namespace ringtrain
