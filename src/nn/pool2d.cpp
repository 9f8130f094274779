#include "ringtrain/nn/pool2d.hpp"

#include <algorithm>
#include <limits>

#include "ringtrain/tensor/cpu_features.hpp"
#if RINGTRAIN_X86_64
#include <immintrin.h>
#endif

#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

std::string Pool2d::spec() const {
  return kind() + "(" + std::to_string(kernel_) + (stride_ != kernel_ ? ",stride=" + std::to_string(stride_) : "") +
         (pad_ != 0 ? ",pad=" + std::to_string(pad_) : "") + ")";
}

Shape Pool2d::build(const Shape& in, Rng&) {
  if (in.size() != 3) throw Error(kind() + " needs [channels, height, width] input, got " + shape_str(in));
  // PyTorch's rule: with more padding than half the kernel, a window could hold nothing but padding.
  if (2 * pad_ > kernel_)
    throw Error(kind() + " padding " + std::to_string(pad_) + " is more than half its kernel " + std::to_string(kernel_));
  if (in[1] + 2 * pad_ < kernel_ || in[2] + 2 * pad_ < kernel_)
    throw Error(kind() + " kernel " + std::to_string(kernel_) + " is larger than its input " + shape_str(in) +
                (pad_ ? " padded by " + std::to_string(pad_) : ""));
  c_ = in[0], h_ = in[1], w_ = in[2];
  oh_ = (h_ + 2 * pad_ - kernel_) / stride_ + 1;
  ow_ = (w_ + 2 * pad_ - kernel_) / stride_ + 1;
  return {c_, oh_, ow_};
}

namespace {

// 2x2, stride 2 max pooling, the shape nearly every CNN uses: one output row from input rows r0 and r1
// (flat offsets base0 and base1 in the plane). Which input wins is data-dependent, so the scalar form is
// written without branches (mispredicted compares cost more than the loads); on AVX-512, 16 outputs at a
// time: deinterleave even/odd columns, compare, blend values and indices. Ties keep the first input in scan
// order either way, as PyTorch does.
using MaxPoolRow = void (*)(const float* r0, const float* r1, int32_t base0, int32_t base1, int64_t ow, float* out,
                            int32_t* argmax);

void max_pool_2x2_row(const float* r0, const float* r1, int32_t base0, int32_t base1, int64_t ow, float* out,
                      int32_t* argmax) {
  for (int64_t j = 0; j < ow; ++j) {
    const int32_t c = static_cast<int32_t>(2 * j);
    const float a = r0[c], b = r0[c + 1], d = r1[c], e = r1[c + 1];
    const float top = b > a ? b : a, bottom = e > d ? e : d;
    const int32_t top_at = b > a ? base0 + c + 1 : base0 + c, bottom_at = e > d ? base1 + c + 1 : base1 + c;
    out[j] = bottom > top ? bottom : top;
    argmax[j] = bottom > top ? bottom_at : top_at;
  }
}

#if RINGTRAIN_X86_64
namespace avx512 {

RINGTRAIN_TARGET_AVX512 void max_pool_2x2_row(const float* r0, const float* r1, int32_t base0, int32_t base1,
                                              int64_t ow, float* out, int32_t* argmax) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  for (int64_t j = 0; j < ow; j += 16) {
    const int64_t n = std::min<int64_t>(16, ow - j);
    const __mmask16 out_mask = static_cast<__mmask16>((1u << n) - 1u);
    const __mmask16 lo = static_cast<__mmask16>(n >= 8 ? 0xFFFFu : (1u << (2 * n)) - 1u);
    const __mmask16 hi = static_cast<__mmask16>(n > 8 ? (1u << (2 * n - 16)) - 1u : 0u);
    const float* p0 = r0 + 2 * j;
    const float* p1 = r1 + 2 * j;
    const __m512 a_lo = _mm512_maskz_loadu_ps(lo, p0), a_hi = _mm512_maskz_loadu_ps(hi, p0 + 16);
    const __m512 b_lo = _mm512_maskz_loadu_ps(lo, p1), b_hi = _mm512_maskz_loadu_ps(hi, p1 + 16);
    const __m512 a = _mm512_permutex2var_ps(a_lo, even, a_hi), b = _mm512_permutex2var_ps(a_lo, odd, a_hi);
    const __m512 d = _mm512_permutex2var_ps(b_lo, even, b_hi), e = _mm512_permutex2var_ps(b_lo, odd, b_hi);
    const __m512i col = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(2 * j)), even);
    const __m512i a_at = _mm512_add_epi32(col, _mm512_set1_epi32(base0));
    const __m512i d_at = _mm512_add_epi32(col, _mm512_set1_epi32(base1));
    const __m512i one = _mm512_set1_epi32(1);
    const __mmask16 top_odd = _mm512_cmp_ps_mask(b, a, _CMP_GT_OQ), bottom_odd = _mm512_cmp_ps_mask(e, d, _CMP_GT_OQ);
    const __m512 top = _mm512_mask_blend_ps(top_odd, a, b), bottom = _mm512_mask_blend_ps(bottom_odd, d, e);
    const __m512i top_at = _mm512_mask_add_epi32(a_at, top_odd, a_at, one);
    const __m512i bottom_at = _mm512_mask_add_epi32(d_at, bottom_odd, d_at, one);
    const __mmask16 use_bottom = _mm512_cmp_ps_mask(bottom, top, _CMP_GT_OQ);
    _mm512_mask_storeu_ps(out + j, out_mask, _mm512_mask_blend_ps(use_bottom, top, bottom));
    _mm512_mask_storeu_epi32(argmax + j, out_mask, _mm512_mask_blend_epi32(use_bottom, top_at, bottom_at));
  }
}

}  // namespace avx512
#endif

MaxPoolRow max_pool_2x2_row_kernel() {
#if RINGTRAIN_X86_64
  if (cpu_path() == CpuPath::avx512) return avx512::max_pool_2x2_row;
#endif
  return max_pool_2x2_row;
}

void max_pool_2x2(const float* in, int64_t w, int64_t oh, int64_t ow, float* out, int32_t* argmax) {
  const MaxPoolRow row = max_pool_2x2_row_kernel();
  for (int64_t i = 0; i < oh; ++i) {
    const float* r0 = in + 2 * i * w;
    const int32_t base0 = static_cast<int32_t>(2 * i * w), base1 = static_cast<int32_t>((2 * i + 1) * w);
    row(r0, r0 + w, base0, base1, ow, out + i * ow, argmax + i * ow);
  }
}

// The part of a pooling window inside the input: window (i, j) covers input rows [i*stride - pad, ... + k),
// clipped to [0, h); likewise columns.
struct Window {
  int64_t row_begin, row_end, col_begin, col_end;
};

struct PoolGeometry {
  int64_t h, w, k, stride, pad;
  Window window(int64_t i, int64_t j) const {
    const int64_t r = i * stride - pad, c = j * stride - pad;
    return {std::max<int64_t>(r, 0), std::min(r + k, h), std::max<int64_t>(c, 0), std::min(c + k, w)};
  }
};

void max_pool(const float* in, const PoolGeometry& g, int64_t oh, int64_t ow, float* out, int32_t* argmax) {
  for (int64_t i = 0; i < oh; ++i)
    for (int64_t j = 0; j < ow; ++j) {
      const Window win = g.window(i, j);
      float best = -std::numeric_limits<float>::infinity();
      int32_t at = static_cast<int32_t>(win.row_begin * g.w + win.col_begin);
      for (int64_t r = win.row_begin; r < win.row_end; ++r)
        for (int64_t c = win.col_begin; c < win.col_end; ++c)
          if (in[r * g.w + c] > best) best = in[r * g.w + c], at = static_cast<int32_t>(r * g.w + c);
      out[i * ow + j] = best;
      argmax[i * ow + j] = at;
    }
}

void avg_pool(const float* in, const PoolGeometry& g, int64_t oh, int64_t ow, float* out) {
  const float inv_area = 1.0f / static_cast<float>(g.k * g.k);
  for (int64_t i = 0; i < oh; ++i)
    for (int64_t j = 0; j < ow; ++j) {
      const Window win = g.window(i, j);
      float sum = 0.0f;
      for (int64_t r = win.row_begin; r < win.row_end; ++r)
        for (int64_t c = win.col_begin; c < win.col_end; ++c) sum += in[r * g.w + c];
      out[i * ow + j] = sum * inv_area;
    }
}

void avg_pool_backward(const float* dout, const PoolGeometry& g, int64_t oh, int64_t ow, float* din) {
  const float inv_area = 1.0f / static_cast<float>(g.k * g.k);
  for (int64_t i = 0; i < oh; ++i)
    for (int64_t j = 0; j < ow; ++j) {
      const Window win = g.window(i, j);
      const float share = dout[i * ow + j] * inv_area;
      for (int64_t r = win.row_begin; r < win.row_end; ++r)
        for (int64_t c = win.col_begin; c < win.col_end; ++c) din[r * g.w + c] += share;
    }
}

}  // namespace

const Tensor& Pool2d::forward(const Tensor& x, Mode) {
  x_ = &x;
  const int64_t planes = x.dim(0) * c_, in_plane = h_ * w_, out_plane = oh_ * ow_;
  const PoolGeometry g{h_, w_, kernel_, stride_, pad_};
  y_.resize({x.dim(0), c_, oh_, ow_});
  if (pool_ == PoolKind::max) argmax_.resize(static_cast<size_t>(y_.numel()));
#pragma omp parallel for schedule(static) if (planes > 64)
  for (int64_t p = 0; p < planes; ++p) {
    const float* in = x.data() + p * in_plane;
    float* out = y_.data() + p * out_plane;
    if (pool_ == PoolKind::avg) avg_pool(in, g, oh_, ow_, out);
    else if (kernel_ == 2 && stride_ == 2 && pad_ == 0)
      max_pool_2x2(in, w_, oh_, ow_, out, argmax_.data() + p * out_plane);
    else max_pool(in, g, oh_, ow_, out, argmax_.data() + p * out_plane);
  }
  return y_;
}

const Tensor& Pool2d::backward(const Tensor& dy) {
  if (!input_grad_needed_) return dx_;
  const int64_t planes = dy.dim(0) * c_, out_plane = oh_ * ow_;
  const PoolGeometry g{h_, w_, kernel_, stride_, pad_};
  dx_.resize(x_->shape());
  dx_.fill(0.0f);
#pragma omp parallel for schedule(static) if (planes > 64)
  for (int64_t p = 0; p < planes; ++p) {
    float* din = dx_.data() + p * h_ * w_;
    const float* dout = dy.data() + p * out_plane;
    if (pool_ == PoolKind::avg) {
      avg_pool_backward(dout, g, oh_, ow_, din);
    } else {
      const int32_t* from = argmax_.data() + p * out_plane;
      for (int64_t o = 0; o < out_plane; ++o) din[from[o]] += dout[o];
    }
  }
  return dx_;
}

Shape GlobalAvgPool::build(const Shape& in, Rng&) {
  if (in.size() != 3) throw Error("globalavgpool needs [channels, height, width] input, got " + shape_str(in));
  sample_in_ = in;
  c_ = in[0], plane_ = in[1] * in[2];
  return {c_};
}

const Tensor& GlobalAvgPool::forward(const Tensor& x, Mode) {
  const int64_t planes = x.dim(0) * c_;
  const float inv = 1.0f / static_cast<float>(plane_);
  y_.resize({x.dim(0), c_});
  for (int64_t p = 0; p < planes; ++p) {
    const float* in = x.data() + p * plane_;
    float sum = 0.0f;
    for (int64_t i = 0; i < plane_; ++i) sum += in[i];
    y_.data()[p] = sum * inv;
  }
  return y_;
}

const Tensor& GlobalAvgPool::backward(const Tensor& dy) {
  if (!input_grad_needed_) return dx_;
  const int64_t planes = dy.dim(0) * c_;
  const float inv = 1.0f / static_cast<float>(plane_);
  Shape shape = sample_in_;
  shape.insert(shape.begin(), dy.dim(0));
  dx_.resize(shape);
  for (int64_t p = 0; p < planes; ++p) {
    const float share = dy.data()[p] * inv;
    float* out = dx_.data() + p * plane_;
    for (int64_t i = 0; i < plane_; ++i) out[i] = share;
  }
  return dx_;
}

}  // namespace ringtrain
