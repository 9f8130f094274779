#include "ringtrain/nn/conv2d.hpp"

#include <omp.h>

#include "ringtrain/tensor/cpu_features.hpp"
#if RINGTRAIN_X86_64
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/blas.hpp"
#include "ringtrain/tensor/strided_gemm.hpp"

namespace ringtrain {

namespace {

// Rows of the column matrix are as short as the output width (14 or 28 for MNIST-sized images), so a
// generic loop spends its time in vector prologues and epilogues; one masked AVX-512 operation per 16
// floats avoids both. Other CPUs take the plain loop.
#if RINGTRAIN_X86_64
namespace avx512 {

RINGTRAIN_TARGET_AVX512 void copy_row(float* dst, const float* src, int64_t n) {
  for (; n >= 16; n -= 16, dst += 16, src += 16) _mm512_storeu_ps(dst, _mm512_loadu_ps(src));
  const __mmask16 m = static_cast<__mmask16>((1u << n) - 1u);
  _mm512_mask_storeu_ps(dst, m, _mm512_maskz_loadu_ps(m, src));
}

RINGTRAIN_TARGET_AVX512 void copy_row_spill(float* dst, const float* src, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) _mm512_storeu_ps(dst + i, _mm512_loadu_ps(src + i));
}

RINGTRAIN_TARGET_AVX512 void add_row(float* dst, const float* src, int64_t n) {
  for (; n >= 16; n -= 16, dst += 16, src += 16)
    _mm512_storeu_ps(dst, _mm512_add_ps(_mm512_loadu_ps(dst), _mm512_loadu_ps(src)));
  if (n > 0) {
    const __mmask16 m = static_cast<__mmask16>((1u << n) - 1u);
    _mm512_storeu_ps(dst, _mm512_add_ps(_mm512_loadu_ps(dst), _mm512_maskz_loadu_ps(m, src)));
  }
}

}  // namespace avx512
#endif

inline void copy_row(float* dst, const float* src, int64_t n) {
#if RINGTRAIN_X86_64
  if (cpu_path() == CpuPath::avx512) return avx512::copy_row(dst, src, n);
#endif
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
}

// Like copy_row, but on AVX-512 with whole 16-float stores that may spill up to 15 floats past dst + n and
// read up to 15 past src + n. Masked stores are slow on some AVX-512 CPUs (AMD Zen 4); im2col writes its
// column matrix strictly front to back, so each spill is overwritten by the next row, and its buffers carry
// kIm2colSlack floats of slack at the end.
inline void copy_row_spill(float* dst, const float* src, int64_t n) {
#if RINGTRAIN_X86_64
  if (cpu_path() == CpuPath::avx512) return avx512::copy_row_spill(dst, src, n);
#endif
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
}

// dst[0, n) += src[0, n). On AVX-512 the tail is a masked load of src (zeros past n) added to a full load of
// dst and stored back whole: the lanes past n store what they held, avoiding slow masked stores; dst needs
// up to 15 floats of slack, and no other thread may write there meanwhile.
inline void add_row(float* dst, const float* src, int64_t n) {
#if RINGTRAIN_X86_64
  if (cpu_path() == CpuPath::avx512) return avx512::add_row(dst, src, n);
#endif
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

// dst[cols, rows] = src[rows, cols]^T in 16 x 16 blocks, so reads and writes both stay within a few
// cache lines.
void transpose(const float* src, int64_t rows, int64_t cols, float* dst) {
  constexpr int64_t kB = 16;
  for (int64_t r0 = 0; r0 < rows; r0 += kB)
    for (int64_t c0 = 0; c0 < cols; c0 += kB)
      for (int64_t r = r0; r < std::min(r0 + kB, rows); ++r)
        for (int64_t c = c0; c < std::min(c0 + kB, cols); ++c) dst[c * rows + r] = src[r * cols + c];
}

}  // namespace

// Both work on a zero-padded copy of the sample, so no loop checks borders: row (c, ki, kj) of the
// column matrix, output row oh, starts at padded[c][oh * stride + ki][kj].
void pad_sample(const ConvGeometry& g, const float* x, float* padded) {
  const int64_t ph = g.padded_h(), pw = g.padded_w();
  std::fill_n(padded, g.in_c * ph * pw, 0.0f);
  for (int64_t c = 0; c < g.in_c; ++c)
    for (int64_t h = 0; h < g.in_h; ++h)
      copy_row(padded + (c * ph + h + g.pad) * pw + g.pad, x + (c * g.in_h + h) * g.in_w, g.in_w);
}

void im2col(const ConvGeometry& g, const float* x, float* padded, float* col) {
  const int64_t k = g.kernel, cols = g.col_cols(), ph = g.padded_h(), pw = g.padded_w();
  pad_sample(g, x, padded);
  for (int64_t c = 0; c < g.in_c; ++c)
    for (int64_t ki = 0; ki < k; ++ki)
      for (int64_t kj = 0; kj < k; ++kj) {
        float* row = col + ((c * k + ki) * k + kj) * cols;
        for (int64_t oh = 0; oh < g.out_h; ++oh) {
          const float* src = padded + (c * ph + oh * g.stride + ki) * pw + kj;
          float* dst = row + oh * g.out_w;
          if (g.stride == 1) copy_row_spill(dst, src, g.out_w);
          else for (int64_t ow = 0; ow < g.out_w; ++ow) dst[ow] = src[ow * g.stride];
        }
      }
}

void column_offsets(const ConvGeometry& g, std::vector<int64_t>& rows, std::vector<int64_t>& cols) {
  const int64_t k = g.kernel, ph = g.padded_h(), pw = g.padded_w();
  rows.clear();
  cols.clear();
  for (int64_t c = 0; c < g.in_c; ++c)
    for (int64_t ki = 0; ki < k; ++ki)
      for (int64_t kj = 0; kj < k; ++kj) rows.push_back((c * ph + ki) * pw + kj);
  for (int64_t oh = 0; oh < g.out_h; ++oh)
    for (int64_t ow = 0; ow < g.out_w; ++ow) cols.push_back(oh * g.stride * pw + ow * g.stride);
}

void col2im(const ConvGeometry& g, const float* col, float* padded, float* dx) {
  const int64_t k = g.kernel, cols = g.col_cols(), ph = g.padded_h(), pw = g.padded_w();
  std::fill_n(padded, g.in_c * ph * pw, 0.0f);
  for (int64_t c = 0; c < g.in_c; ++c)
    for (int64_t ki = 0; ki < k; ++ki)
      for (int64_t kj = 0; kj < k; ++kj) {
        const float* row = col + ((c * k + ki) * k + kj) * cols;
        for (int64_t oh = 0; oh < g.out_h; ++oh) {
          float* dst = padded + (c * ph + oh * g.stride + ki) * pw + kj;
          const float* src = row + oh * g.out_w;
          if (g.stride == 1) add_row(dst, src, g.out_w);
          else for (int64_t ow = 0; ow < g.out_w; ++ow) dst[ow * g.stride] += src[ow];
        }
      }
  for (int64_t c = 0; c < g.in_c; ++c)
    for (int64_t h = 0; h < g.in_h; ++h)
      copy_row(dx + (c * g.in_h + h) * g.in_w, padded + (c * ph + h + g.pad) * pw + g.pad, g.in_w);
}

std::string Conv2d::spec() const {
  return "conv(" + std::to_string(out_c_) + "," + std::to_string(kernel_) + ",stride=" + std::to_string(stride_) +
         ",pad=" + std::to_string(pad_) + (has_bias_ ? "" : ",bias=0") + ")";
}

Shape Conv2d::build(const Shape& in, Rng& rng) {
  if (in.size() != 3)
    throw Error("conv needs image input [channels, height, width], got " + shape_str(in) +
                (in.size() == 1 ? ": flat samples (tabular data, or the output of a flatten) suit linear layers"
                                : std::string()));
  g_ = {in[0], in[1], in[2], out_c_, kernel_, stride_, pad_, 0, 0};
  g_.out_h = (g_.in_h + 2 * pad_ - kernel_) / stride_ + 1;
  g_.out_w = (g_.in_w + 2 * pad_ - kernel_) / stride_ + 1;
  if (g_.in_h + 2 * pad_ < kernel_ || g_.in_w + 2 * pad_ < kernel_)
    throw Error("conv kernel " + std::to_string(kernel_) + " is larger than its padded input " + shape_str(in));
  const int64_t fan_in = g_.col_rows();
  const float bound = 1.0f / std::sqrt(static_cast<float>(fan_in));
  weight_.value = Tensor({out_c_, in[0], kernel_, kernel_});
  weight_.grad = Tensor(weight_.value.shape());
  for (int64_t i = 0; i < weight_.value.numel(); ++i) weight_.value[i] = rng.uniform(-bound, bound);
  if (has_bias_) {
    bias_.value = Tensor({out_c_});
    bias_.grad = Tensor({out_c_});
    for (int64_t i = 0; i < out_c_; ++i) bias_.value[i] = rng.uniform(-bound, bound);
  }
  column_offsets(g_, col_rows_, col_cols_);
  // With stride 1 the input gradient is itself a convolution: of dy, padded by kernel - 1 - pad, with the
  // weights flipped and their channel axes swapped. It then reads dy in place like the forward reads x.
  direct_input_grad_ = stride_ == 1 && pad_ <= kernel_ - 1;
  if (direct_input_grad_) {
    back_ = {out_c_, g_.out_h, g_.out_w, g_.in_c, kernel_, 1, kernel_ - 1 - pad_, g_.in_h, g_.in_w};
    column_offsets(back_, back_rows_, back_cols_);
  }
  return {out_c_, g_.out_h, g_.out_w};
}

double Conv2d::flops_per_sample() const {
  return 6.0 * static_cast<double>(out_c_ * g_.col_rows() * g_.col_cols());
}

// Per thread: [column matrix][slack][padded sample][slack][dy^T][dy masked by the folded ReLU], the
// slack taking im2col's spills.
int64_t Conv2d::scratch_per_thread() const {
  return g_.col_rows() * g_.col_cols() + g_.in_c * g_.padded_h() * g_.padded_w() + 2 * kIm2colSlack +
         2 * out_c_ * g_.col_cols();
}

float* Conv2d::thread_col(int thread) { return scratch_.data() + thread * scratch_per_thread(); }

float* Conv2d::thread_padded(int thread) { return thread_col(thread) + g_.col_rows() * g_.col_cols() + kIm2colSlack; }

float* Conv2d::thread_dy_t(int thread) {
  return thread_padded(thread) + g_.in_c * g_.padded_h() * g_.padded_w() + kIm2colSlack;
}

float* Conv2d::thread_dy_relu(int thread) { return thread_dy_t(thread) + out_c_ * g_.col_cols(); }

// The three products read the column matrix col[K, P] (K = in_c * kernel^2, P = out_h * out_w) in place
// from the padded sample where they can (indexed_gemm), and the weights by strides (strided_gemm):
//   forward        y^T[P, Cout]    = col^T[P, K] . W^T[K, Cout],  then y = (y^T)^T + bias   (K > 2 Cout)
//                  y[Cout, P]      = W[Cout, K] . col[K, P] + bias, col by im2col             (otherwise)
//   weight grad    dW^T[K, Cout]  += col[K, P] . dy^T[P, Cout]     (dy^T: this sample's dy, transposed;
//                                                                   col read in place by indexed_gemm)
//   input grad     dx^T[P_in, Cin] = dycol^T . W_flip              (stride 1: a convolution of dy, read
//                                                                   in place by indexed_gemm)
//                  dcol[K, P]      = W^T[K, Cout] . dy[Cout, P],  then dx = col2im(dcol)   (stride > 1)
const Tensor& Conv2d::forward(const Tensor& x, Mode) {
  x_ = &x;
  const int64_t n = x.dim(0), in_size = g_.in_c * g_.in_h * g_.in_w, out_size = out_c_ * g_.col_cols();
  const int64_t kk = g_.col_rows(), cols = g_.col_cols();
  y_.resize({n, out_c_, g_.out_h, g_.out_w});
  scratch_.resize({compute_threads(), scratch_per_thread()});
  // Reading the column matrix in place saves im2col's K * P copies but costs two [P, Cout] transposes
  // (the product comes out as y^T): worth it when K > 2 * Cout (conv 2 of the cnn preset, not conv 1).
  const bool indexed_forward = kk > 2 * out_c_;
  if (indexed_forward) {
    weight_t_.resize({kk, out_c_});
    transpose(weight_.value.data(), out_c_, kk, weight_t_.data());
  }
#pragma omp parallel for schedule(static)
  for (int64_t s = 0; s < n; ++s) {
    run_vectorised([&] {  // the transpose and epilogue loops: AVX-512 where the CPU has it
      const int t = omp_get_thread_num();
      float* padded = thread_padded(t);
      float* y = y_.data() + s * out_size;
      if (indexed_forward) {
        float* y_t = thread_dy_t(t);  // [P, Cout], the product's layout before the epilogue
        pad_sample(g_, x.data() + s * in_size, padded);
        indexed_gemm(cols, out_c_, kk, padded, col_cols_.data(), col_rows_.data(), weight_t_.data(), out_c_, 0.0f,
                     y_t, out_c_);
        transpose(y_t, cols, out_c_, y);
      } else {
        float* col = thread_col(t);
        im2col(g_, x.data() + s * in_size, padded, col);
        strided_gemm(out_c_, cols, kk, weight_.value.data(), kk, 1, col, cols, 0.0f, y, cols);
      }
      // Epilogue while the sample is in cache: bias, clamped by a folded ReLU.
      for (int64_t c = 0; c < out_c_; ++c) {
        const float b = has_bias_ ? bias_.value[c] : 0.0f;
        float* yc = y + c * cols;
        if (relu_)
          for (int64_t p = 0; p < cols; ++p) yc[p] = std::max(yc[p] + b, 0.0f);
        else
          for (int64_t p = 0; p < cols; ++p) yc[p] += b;
      }
    });
  }
  return y_;
}

const Tensor& Conv2d::backward(const Tensor& dy) {
  const int64_t n = dy.dim(0), in_size = g_.in_c * g_.in_h * g_.in_w, out_size = out_c_ * g_.col_cols();
  const int64_t kk = g_.col_rows(), cols = g_.col_cols(), wsize = weight_.value.numel();
  const int threads = compute_threads();
  if (input_grad_needed_) dx_.resize(x_->shape());
  // Partials summed afterwards in a fixed order, so a run is deterministic for a given thread count:
  // one transposed weight gradient per thread, one bias gradient per sample.
  weight_grads_.resize({threads, wsize});
  weight_grads_.fill(0.0f);
  bias_grads_.resize({n, out_c_});
  const int64_t dx_scratch_per_thread =
      back_.in_c * back_.padded_h() * back_.padded_w() + kIm2colSlack + g_.in_c * g_.in_h * g_.in_w;
  if (input_grad_needed_ && direct_input_grad_) {
    // weight_flip_[(co, ki, kj)][ci] = W[co][ci][k-1-ki][k-1-kj]: B of the input-gradient convolution.
    const int64_t k = kernel_, ci_n = g_.in_c;
    weight_flip_.resize({out_c_ * k * k, ci_n});
    for (int64_t co = 0; co < out_c_; ++co)
      for (int64_t ci = 0; ci < ci_n; ++ci)
        for (int64_t ki = 0; ki < k; ++ki)
          for (int64_t kj = 0; kj < k; ++kj)
            weight_flip_[((co * k + ki) * k + kj) * ci_n + ci] =
                weight_.value[((co * ci_n + ci) * k + (k - 1 - ki)) * k + (k - 1 - kj)];
    dx_scratch_.resize({threads, dx_scratch_per_thread});
  }
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    float* col = thread_col(t);
    float* padded = thread_padded(t);
    float* dy_t = thread_dy_t(t);
    float* dy_relu = thread_dy_relu(t);
    float* dw_t = weight_grads_.data() + t * wsize;
#pragma omp for schedule(static)
    for (int64_t s = 0; s < n; ++s) {
      run_vectorised([&] {  // the ReLU mask, bias sums and transposes: AVX-512 where the CPU has it
        const float* g = dy.data() + s * out_size;
        if (relu_) {
          const float* y = y_.data() + s * out_size;
          for (int64_t i = 0; i < out_size; ++i) dy_relu[i] = y[i] > 0.0f ? g[i] : 0.0f;
          g = dy_relu;
        }
        for (int64_t c = 0; c < out_c_; ++c) {
          float sum = 0.0f;
          // simd reduction: one accumulator is a chain of dependent adds, ~4x slower (same result every run)
#pragma omp simd reduction(+ : sum)
          for (int64_t p = 0; p < cols; ++p) sum += g[c * cols + p];
          bias_grads_[s * out_c_ + c] = sum;
        }
        transpose(g, out_c_, cols, dy_t);
        // The weight gradient reads the column matrix straight from the padded sample (no im2col copy).
        pad_sample(g_, x_->data() + s * in_size, padded);
        indexed_gemm(kk, out_c_, cols, padded, col_rows_.data(), col_cols_.data(), dy_t, out_c_, 1.0f, dw_t, out_c_);
        if (input_grad_needed_ && direct_input_grad_) {
          float* dy_padded = dx_scratch_.data() + t * dx_scratch_per_thread;
          float* dx_t = dy_padded + back_.in_c * back_.padded_h() * back_.padded_w() + kIm2colSlack;
          pad_sample(back_, g, dy_padded);
          indexed_gemm(in_size / g_.in_c, g_.in_c, back_.col_rows(), dy_padded, back_cols_.data(), back_rows_.data(),
                       weight_flip_.data(), g_.in_c, 0.0f, dx_t, g_.in_c);
          transpose(dx_t, in_size / g_.in_c, g_.in_c, dx_.data() + s * in_size);
        } else if (input_grad_needed_) {
          strided_gemm(kk, cols, out_c_, weight_.value.data(), 1, kk, g, cols, 0.0f, col, cols);
          col2im(g_, col, padded, dx_.data() + s * in_size);
        }
      });
    }
  }
  float* dw = weight_.grad.data();
  for (int t = 0; t < threads; ++t) {
    const float* part = weight_grads_.data() + t * wsize;
    for (int64_t c = 0; c < out_c_; ++c)
      for (int64_t k = 0; k < kk; ++k) dw[c * kk + k] += part[k * out_c_ + c];
  }
  if (has_bias_)
    for (int64_t s = 0; s < n; ++s)
      for (int64_t c = 0; c < out_c_; ++c) bias_.grad[c] += bias_grads_[s * out_c_ + c];
  return dx_;
}

std::vector<Param*> Conv2d::params() {
  if (has_bias_) return {&weight_, &bias_};
  return {&weight_};
}

}  // namespace ringtrain
