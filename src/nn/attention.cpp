#include "ringtrain/nn/attention.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "exp_nonpositive.hpp"
#include "heads_spec.hpp"
#include "ringtrain/nn/init.hpp"
#include "ringtrain/tensor/blas.hpp"
#include "ringtrain/tensor/counter_rng.hpp"
#include "ringtrain/tensor/cpu_features.hpp"
#include "ringtrain/tensor/error.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace ringtrain {

namespace {

// Causal attention touches only the lower triangle of each T x T score matrix. The products run over blocks
// of kRowBlock query rows, each against the keys up to its last row, which skips most of the upper triangle
// once T is a few blocks long.
constexpr int64_t kRowBlock = 64;

int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

int thread_count() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// out[j] += the sum over rows of m[r, j].
void add_column_sums(const float* m, int64_t rows, int64_t cols, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* __restrict row = m + r * cols;
    float* __restrict o = out;
    for (int64_t j = 0; j < cols; ++j) o[j] += row[j];
  }
}

// Rows [i0, i1) of a causal product and the columns they need, blocks visited last first: the last block
// covers every key, so a product that adds up over blocks (dK, dV) can overwrite with the first it runs.
template <class F>
void for_each_row_block_last_first(int64_t t_len, const F& f) {
  const int64_t blocks = (t_len + kRowBlock - 1) / kRowBlock;
  for (int64_t blk = blocks; blk-- > 0;) f(blk * kRowBlock, std::min(t_len, (blk + 1) * kRowBlock), blk + 1 == blocks);
}

}  // namespace

std::string Attention::spec() const { return heads_spec("attention", heads_, p_); }

Shape Attention::build(const Shape& sample_in, Rng& rng) {
  if (sample_in.size() != 2)
    throw Error("attention takes [T, C] (tokens x channels), got samples of shape " + shape_str(sample_in));
  time_ = sample_in[0];
  channels_ = sample_in[1];
  if (channels_ % heads_ != 0)
    throw Error("attention: " + std::to_string(heads_) + " heads do not divide " + std::to_string(channels_) +
                " channels");
  head_dim_ = channels_ / heads_;
  const int64_t c = channels_;
  for (auto [param, rows] : {std::pair{&qkv_weight_, 3 * c}, std::pair{&proj_weight_, c}}) {
    param->value = Tensor({rows, c});
    param->grad = Tensor({rows, c});
    fill_normal(param->value, 0.02f, rng);
  }
  qkv_bias_.value = Tensor({3 * c});
  qkv_bias_.grad = Tensor({3 * c});
  proj_bias_.value = Tensor({c});
  proj_bias_.grad = Tensor({c});
  seed_ = rng.next_u64();
  return sample_in;
}

double Attention::flops_per_sample() const {
  const double t = static_cast<double>(time_), c = static_cast<double>(channels_);
  // As Linear's: 6 per multiply-add of forward (2 there, 4 in backward). The projections: 4C^2 per token; the
  // two causal products: T^2 C / 2 each.
  return 6.0 * t * (4.0 * c * c + t * c);
}

void Attention::dropped_row(const float* att_row, int64_t b, int64_t h, int64_t i, float* out) const {
  const float keep_scale = 1.0f / (1.0f - p_);
  const uint64_t base = static_cast<uint64_t>(((b * heads_ + h) * pass_time_ + i) * pass_time_);
  for (int64_t j = 0; j <= i; ++j)
    out[j] = counter_uniform(seed_, forward_call_, base + static_cast<uint64_t>(j)) < p_ ? 0.0f : att_row[j] * keep_scale;
  std::fill(out + i + 1, out + pass_time_, 0.0f);
}

void Attention::head_forward(int64_t b, int64_t h, bool drop) {
  const int64_t t_len = pass_time_, c = channels_, d = head_dim_, ld = 3 * c;
  const float* q = qkv_.data() + b * t_len * ld + h * d;
  const float* k = q + c;
  const float* v = q + 2 * c;
  float* att = att_.data() + (b * heads_ + h) * t_len * t_len;
  float* out = heads_out_.data() + b * t_len * c + h * d;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  for_each_row_block_last_first(t_len, [&](int64_t i0, int64_t i1, bool) {
    gemm(Trans::no, Trans::yes, i1 - i0, i1, d, scale, q + i0 * ld, ld, k, ld, 0.0f, att + i0 * t_len, t_len);
  });
  // Softmax over the keys up to the query's own position; zeros after it, where the blocks' products read.
  run_vectorised([&] {
    for (int64_t i = 0; i < t_len; ++i) {
      float* __restrict row = att + i * t_len;
      float top = row[0];
#pragma omp simd reduction(max : top)
      for (int64_t j = 1; j <= i; ++j) top = std::max(top, row[j]);
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j <= i; ++j) {
        row[j] = exp_nonpositive(row[j] - top);
        sum += row[j];
      }
      const float inv = 1.0f / sum;
      for (int64_t j = 0; j <= i; ++j) row[j] *= inv;
      std::fill(row + i + 1, row + t_len, 0.0f);
    }
  });
  const float* probs = att;
  if (drop) {
    float* dropped = scratch_[static_cast<size_t>(thread_index())].data();
    for (int64_t i = 0; i < t_len; ++i) dropped_row(att + i * t_len, b, h, i, dropped + i * t_len);
    probs = dropped;
  }
  for_each_row_block_last_first(t_len, [&](int64_t i0, int64_t i1, bool) {
    gemm(Trans::no, Trans::no, i1 - i0, d, i1, 1.0f, probs + i0 * t_len, t_len, v, ld, 0.0f, out + i0 * c, c);
  });
}

const Tensor& Attention::forward(const Tensor& x, Mode mode) {
  x_ = &x;
  const int64_t batch = x.dim(0), t_len = x.dim(1), c = channels_, rows = batch * t_len;
  if (t_len > time_) throw Error("attention built for " + std::to_string(time_) + " tokens got " + std::to_string(t_len));
  pass_time_ = t_len;
  dropped_ = mode == Mode::train && p_ > 0.0f;
  if (dropped_) forward_call_ = calls_++;
  qkv_.resize({batch, t_len, 3 * c});
  float* qkv = qkv_.data();
  for (int64_t r = 0; r < rows; ++r) std::memcpy(qkv + r * 3 * c, qkv_bias_.value.data(), sizeof(float) * 3 * c);
  gemm(Trans::no, Trans::yes, rows, 3 * c, c, 1.0f, x.data(), c, qkv_weight_.value.data(), c, 1.0f, qkv, 3 * c);
  att_.resize({batch, heads_, t_len, t_len});
  heads_out_.resize({batch, t_len, c});
  scratch_.resize(static_cast<size_t>(thread_count()));
  if (dropped_)
    for (Tensor& s : scratch_) s.resize({t_len, t_len});
  const int64_t pairs = batch * heads_;
#pragma omp parallel for schedule(dynamic)
  for (int64_t bh = 0; bh < pairs; ++bh) head_forward(bh / heads_, bh % heads_, dropped_);
  y_.resize({batch, t_len, c});
  float* y = y_.data();
  for (int64_t r = 0; r < rows; ++r) std::memcpy(y + r * c, proj_bias_.value.data(), sizeof(float) * c);
  gemm(Trans::no, Trans::yes, rows, c, c, 1.0f, heads_out_.data(), c, proj_weight_.value.data(), c, 1.0f, y, c);
  return y_;
}

// With P the (dropped) probabilities and dO this head's output gradient: dV = P^T dO, dP = dO V^T, through the
// mask to dA, then the softmax: dS_ij = A_ij (dA_ij - sum_k A_ik dA_ik), scaled by 1/sqrt(d) as the scores
// were; dQ = dS K, dK = dS^T Q.
void Attention::head_backward(int64_t b, int64_t h, const float* dheads, bool drop) {
  const int64_t t_len = pass_time_, c = channels_, d = head_dim_, ld = 3 * c;
  const float* q = qkv_.data() + b * t_len * ld + h * d;
  const float* k = q + c;
  const float* v = q + 2 * c;
  const float* att = att_.data() + (b * heads_ + h) * t_len * t_len;
  const float* dout = dheads + b * t_len * c + h * d;
  float* dq = dqkv_.data() + b * t_len * ld + h * d;
  float* dk = dq + c;
  float* dv = dq + 2 * c;
  float* work = scratch_[static_cast<size_t>(thread_index())].data();
  const float* probs = att;
  if (drop) {
    for (int64_t i = 0; i < t_len; ++i) dropped_row(att + i * t_len, b, h, i, work + i * t_len);
    probs = work;
  }
  for_each_row_block_last_first(t_len, [&](int64_t i0, int64_t i1, bool first) {
    gemm(Trans::yes, Trans::no, i1, d, i1 - i0, 1.0f, probs + i0 * t_len, t_len, dout + i0 * c, c,
         first ? 0.0f : 1.0f, dv, ld);
  });
  for_each_row_block_last_first(t_len, [&](int64_t i0, int64_t i1, bool) {
    gemm(Trans::no, Trans::yes, i1 - i0, i1, d, 1.0f, dout + i0 * c, c, v, ld, 0.0f, work + i0 * t_len, t_len);
  });
  const float scale = 1.0f / std::sqrt(static_cast<float>(d)), keep_scale = 1.0f / (1.0f - p_);
  run_vectorised([&] {
    for (int64_t i = 0; i < t_len; ++i) {
      const float* __restrict a = att + i * t_len;
      float* __restrict g = work + i * t_len;
      if (drop) {
        const uint64_t base = static_cast<uint64_t>(((b * heads_ + h) * t_len + i) * t_len);
        for (int64_t j = 0; j <= i; ++j)
          g[j] = counter_uniform(seed_, forward_call_, base + static_cast<uint64_t>(j)) < p_ ? 0.0f : g[j] * keep_scale;
      }
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int64_t j = 0; j <= i; ++j) dot += a[j] * g[j];
      for (int64_t j = 0; j <= i; ++j) g[j] = a[j] * (g[j] - dot) * scale;
      std::fill(g + i + 1, g + t_len, 0.0f);
    }
  });

  for_each_row_block_last_first(t_len, [&](int64_t i0, int64_t i1, bool first) {
    gemm(Trans::no, Trans::no, i1 - i0, d, i1, 1.0f, work + i0 * t_len, t_len, k, ld, 0.0f, dq + i0 * ld, ld);
    gemm(Trans::yes, Trans::no, i1, d, i1 - i0, 1.0f, work + i0 * t_len, t_len, q + i0 * ld, ld,
         first ? 0.0f : 1.0f, dk, ld);
  });
}

const Tensor& Attention::backward(const Tensor& dy) {
  const int64_t batch = dy.dim(0), t_len = dy.dim(1), c = channels_, rows = batch * t_len;
  pass_time_ = t_len;  // a pipeline runs the backward of an earlier micro-batch after later forwards
  // The output projection.
  gemm(Trans::yes, Trans::no, c, c, rows, 1.0f, dy.data(), c, heads_out_.data(), c, 1.0f, proj_weight_.grad.data(), c);
  add_column_sums(dy.data(), rows, c, proj_bias_.grad.data());
  dheads_.resize({batch, t_len, c});
  gemm(Trans::no, Trans::no, rows, c, c, 1.0f, dy.data(), c, proj_weight_.value.data(), c, 0.0f, dheads_.data(), c);
  // The heads.
  dqkv_.resize({batch, t_len, 3 * c});
  scratch_.resize(static_cast<size_t>(thread_count()));
  for (Tensor& s : scratch_) s.resize({t_len, t_len});
  const int64_t pairs = batch * heads_;
  const float* dheads = dheads_.data();
#pragma omp parallel for schedule(dynamic)
  for (int64_t bh = 0; bh < pairs; ++bh) head_backward(bh / heads_, bh % heads_, dheads, dropped_);
  // The input projection.
  gemm(Trans::yes, Trans::no, 3 * c, c, rows, 1.0f, dqkv_.data(), 3 * c, x_->data(), c, 1.0f,
       qkv_weight_.grad.data(), c);
  add_column_sums(dqkv_.data(), rows, 3 * c, qkv_bias_.grad.data());
  if (!input_grad_needed_) return dx_;
  dx_.resize(x_->shape());
  gemm(Trans::no, Trans::no, rows, c, 3 * c, 1.0f, dqkv_.data(), 3 * c, qkv_weight_.value.data(), c, 0.0f, dx_.data(), c);
  return dx_;
}

}  // namespace ringtrain
