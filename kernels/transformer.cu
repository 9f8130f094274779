// The GPT layers' kernels (nn/cuda/embedding.cpp, layernorm.cpp, attention.cpp): the embedding's gather and
// scatter, layer normalisation, and the causal softmax around attention's cuBLAS products. The formulas are
// the CPU layers' (src/nn/embedding.cpp, layernorm.cpp, attention.cpp); rows that reduce get one warp each.
#include <cfloat>
#include <climits>

#include "kernels/kernels.hpp"
#include "kernels/launch.cuh"

namespace ringtrain::kernels {

using cuda::blocks_for;
using cuda::kThreads;

namespace {

constexpr int kRowsPerBlock = kThreads / kWarp;  // the warp-per-row kernels' rows per block

unsigned row_blocks(int64_t rows) {
  const int64_t b = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  return static_cast<unsigned>(b < 1 ? 1 : b);
}

// ---- embedding ----

// Element (r, j) of [rows, channels]: token[id_r, j] + position[r % time, j]. An id that is not an integer in
// [0, vocabulary) (NaN included) leaves zeros and puts its row into *first_bad (the lowest such row wins).
__global__ void embedding_forward_kernel(const float* x, const float* token, const float* position, float* ids,
                                         float* y, int64_t rows, int64_t time, int64_t channels, int64_t vocabulary,
                                         unsigned* first_bad) {
  RINGTRAIN_GRID_STRIDE(i, rows * channels) {
    const int64_t r = i / channels, j = i % channels;
    const float id = x[r];
    const bool good = id >= 0.0f && id < static_cast<float>(vocabulary) && id == floorf(id);
    if (j == 0) {
      ids[r] = id;
      if (!good) atomicMin(first_bad, static_cast<unsigned>(r));
    }
    y[i] = good ? token[static_cast<int64_t>(id) * channels + j] + position[(r % time) * channels + j] : 0.0f;
  }
}

// Rows of the token table may repeat within a batch: atomics add them.
__global__ void embedding_token_grad_kernel(const float* dy, const float* ids, float* dtoken, int64_t rows,
                                            int64_t channels) {
  RINGTRAIN_GRID_STRIDE(i, rows * channels) {
    const int64_t r = i / channels, j = i % channels;
    atomicAdd(dtoken + static_cast<int64_t>(ids[r]) * channels + j, dy[i]);
  }
}

// Element (t, j) of the position gradient: the sum over the batch, in batch order.
__global__ void embedding_position_grad_kernel(const float* dy, float* dposition, int64_t batch, int64_t time,
                                               int64_t channels) {
  RINGTRAIN_GRID_STRIDE(i, time * channels) {
    float sum = 0.0f;
    for (int64_t b = 0; b < batch; ++b) sum += dy[b * time * channels + i];
    dposition[i] += sum;
  }
}

// ---- layernorm ----

// One warp per row: the mean, then the variance about it (two passes over a row the warp's lanes hold in
// cache), both over C values.
__global__ void layernorm_forward_kernel(const float* x, const float* weight, const float* bias, float* y, float* mean,
                                         float* inv_std, int64_t rows, int64_t channels, float eps) {
  const int64_t r = blockIdx.x * static_cast<int64_t>(kRowsPerBlock) + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (r >= rows) return;
  const float* xr = x + r * channels;
  float sum = 0.0f;
  for (int64_t j = lane; j < channels; j += kWarp) sum += xr[j];
  const float m = warp_sum(sum) / static_cast<float>(channels);
  float sq = 0.0f;
  for (int64_t j = lane; j < channels; j += kWarp) {
    const float d = xr[j] - m;
    sq += d * d;
  }
  const float s = rsqrtf(warp_sum(sq) / static_cast<float>(channels) + eps);
  float* yr = y + r * channels;
  for (int64_t j = lane; j < channels; j += kWarp) yr[j] = (xr[j] - m) * s * weight[j] + bias[j];
  if (lane == 0) mean[r] = m, inv_std[r] = s;
}

// One warp per row: dx = (g - mean(g) - xhat * mean(g * xhat)) * inv_std with g = dy * weight.
__global__ void layernorm_input_grad_kernel(const float* x, const float* dy, const float* weight, const float* mean,
                                            const float* inv_std, float* dx, int64_t rows, int64_t channels) {
  const int64_t r = blockIdx.x * static_cast<int64_t>(kRowsPerBlock) + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (r >= rows) return;
  const float* xr = x + r * channels;
  const float* gr = dy + r * channels;
  const float m = mean[r], s = inv_std[r];
  float sum_g = 0.0f, sum_gx = 0.0f;
  for (int64_t j = lane; j < channels; j += kWarp) {
    const float g = gr[j] * weight[j];
    sum_g += g;
    sum_gx += g * (xr[j] - m) * s;
  }
  const float mean_g = warp_sum(sum_g) / static_cast<float>(channels);
  const float mean_gx = warp_sum(sum_gx) / static_cast<float>(channels);
  float* dxr = dx + r * channels;
  for (int64_t j = lane; j < channels; j += kWarp)
    dxr[j] = (gr[j] * weight[j] - mean_g - (xr[j] - m) * s * mean_gx) * s;
}

// The parameter gradients are column sums over every row. Stage one: block (x, y) sums rows
// [y * kLayerNormChunk, ...) of 32 columns, its 8 warps taking every 8th row, then adds the warps' sums in
// shared memory; partial[y][j] holds the chunk's sum of dy * xhat and partial[y][C + j] that of dy. Stage two
// adds the chunks in order. No atomics: the same input gives the same sums.
constexpr int kLayerNormChunk = 256;
constexpr int kColumnWarps = kThreads / kWarp;

__global__ void layernorm_param_partials_kernel(const float* x, const float* dy, const float* mean,
                                                const float* inv_std, float* partial, int64_t rows, int64_t channels) {
  __shared__ float s_wx[kColumnWarps][kWarp], s_b[kColumnWarps][kWarp];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int64_t j = blockIdx.x * static_cast<int64_t>(kWarp) + lane;
  const int64_t begin = blockIdx.y * static_cast<int64_t>(kLayerNormChunk);
  const int64_t end = begin + kLayerNormChunk < rows ? begin + kLayerNormChunk : rows;
  float wx = 0.0f, b = 0.0f;
  if (j < channels)
    for (int64_t r = begin + warp; r < end; r += kColumnWarps) {
      const float g = dy[r * channels + j];
      wx += g * (x[r * channels + j] - mean[r]) * inv_std[r];
      b += g;
    }
  s_wx[warp][lane] = wx;
  s_b[warp][lane] = b;
  __syncthreads();
  if (warp == 0 && j < channels) {
    for (int w = 1; w < kColumnWarps; ++w) wx += s_wx[w][lane], b += s_b[w][lane];
    partial[blockIdx.y * 2 * channels + j] = wx;
    partial[blockIdx.y * 2 * channels + channels + j] = b;
  }
}

__global__ void layernorm_param_sum_kernel(const float* partial, int64_t chunks, int64_t channels, float* dweight,
                                           float* dbias) {
  RINGTRAIN_GRID_STRIDE(j, channels) {
    float wx = 0.0f, b = 0.0f;
    for (int64_t c = 0; c < chunks; ++c) {
      wx += partial[c * 2 * channels + j];
      b += partial[c * 2 * channels + channels + j];
    }
    dweight[j] += wx;
    dbias[j] += b;
  }
}

// ---- causal attention ----

// One warp per row i of a [time, time] score matrix: softmax over columns 0..i, zeros after.
__global__ void causal_softmax_kernel(float* scores, int64_t rows, int64_t time) {
  const int64_t r = blockIdx.x * static_cast<int64_t>(kRowsPerBlock) + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (r >= rows) return;
  const int64_t i = r % time;
  float* row = scores + r * time;
  float top = -FLT_MAX;
  for (int64_t j = lane; j <= i; j += kWarp) top = fmaxf(top, row[j]);
  top = warp_max(top);
  float sum = 0.0f;
  for (int64_t j = lane; j <= i; j += kWarp) {
    const float e = expf(row[j] - top);
    row[j] = e;
    sum += e;
  }
  const float inv = 1.0f / warp_sum(sum);
  for (int64_t j = lane; j < time; j += kWarp) row[j] = j <= i ? row[j] * inv : 0.0f;
}

// One warp per row: grad_j <- probs_j (grad_j - sum_k probs_k grad_k) * scale for j <= i, zeros after.
__global__ void causal_softmax_backward_kernel(const float* probs, float* grad, int64_t rows, int64_t time,
                                               float scale) {
  const int64_t r = blockIdx.x * static_cast<int64_t>(kRowsPerBlock) + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (r >= rows) return;
  const int64_t i = r % time;
  const float* a = probs + r * time;
  float* g = grad + r * time;
  float dot = 0.0f;
  for (int64_t j = lane; j <= i; j += kWarp) dot += a[j] * g[j];
  dot = warp_sum(dot);
  for (int64_t j = lane; j < time; j += kWarp) g[j] = j <= i ? a[j] * (g[j] - dot) * scale : 0.0f;
}

}  // namespace

void embedding_forward(const float* x, const float* token, const float* position, float* ids, float* y, int64_t rows,
                       int64_t time, int64_t channels, int64_t vocabulary, unsigned* first_bad, cudaStream_t stream) {
  if (rows == 0) return;
  embedding_forward_kernel<<<blocks_for(rows * channels), kThreads, 0, stream>>>(x, token, position, ids, y, rows, time,
                                                                                 channels, vocabulary, first_bad);
  check_launch("embedding_forward");
}

void embedding_backward(const float* dy, const float* ids, float* dtoken, float* dposition, int64_t batch, int64_t time,
                        int64_t channels, cudaStream_t stream) {
  const int64_t rows = batch * time;
  if (rows == 0) return;
  embedding_token_grad_kernel<<<blocks_for(rows * channels), kThreads, 0, stream>>>(dy, ids, dtoken, rows, channels);
  check_launch("embedding_token_grad");
  embedding_position_grad_kernel<<<blocks_for(time * channels), kThreads, 0, stream>>>(dy, dposition, batch, time,
                                                                                       channels);
  check_launch("embedding_position_grad");
}

void layernorm_forward(const float* x, const float* weight, const float* bias, float* y, float* mean, float* inv_std,
                       int64_t rows, int64_t channels, float eps, cudaStream_t stream) {
  if (rows == 0) return;
  layernorm_forward_kernel<<<row_blocks(rows), kThreads, 0, stream>>>(x, weight, bias, y, mean, inv_std, rows, channels,
                                                                      eps);
  check_launch("layernorm_forward");
}

size_t layernorm_scratch_floats(int64_t rows, int64_t channels) {
  const int64_t chunks = (rows + kLayerNormChunk - 1) / kLayerNormChunk;
  return static_cast<size_t>(chunks * 2 * channels);
}

void layernorm_backward(const float* x, const float* dy, const float* weight, const float* mean, const float* inv_std,
                        float* dx, float* dweight, float* dbias, float* scratch, int64_t rows, int64_t channels,
                        cudaStream_t stream) {
  if (rows == 0) return;
  const int64_t chunks = (rows + kLayerNormChunk - 1) / kLayerNormChunk;
  const dim3 grid(static_cast<unsigned>((channels + kWarp - 1) / kWarp), static_cast<unsigned>(chunks));
  layernorm_param_partials_kernel<<<grid, kThreads, 0, stream>>>(x, dy, mean, inv_std, scratch, rows, channels);
  check_launch("layernorm_param_partials");
  layernorm_param_sum_kernel<<<blocks_for(channels), kThreads, 0, stream>>>(scratch, chunks, channels, dweight, dbias);
  check_launch("layernorm_param_sum");
  if (!dx) return;
  layernorm_input_grad_kernel<<<row_blocks(rows), kThreads, 0, stream>>>(x, dy, weight, mean, inv_std, dx, rows,
                                                                         channels);
  check_launch("layernorm_input_grad");
}

void causal_softmax(float* scores, int64_t rows, int64_t time, cudaStream_t stream) {
  if (rows == 0) return;
  causal_softmax_kernel<<<row_blocks(rows), kThreads, 0, stream>>>(scores, rows, time);
  check_launch("causal_softmax");
}

void causal_softmax_backward(const float* probs, float* grad, int64_t rows, int64_t time, float scale,
                             cudaStream_t stream) {
  if (rows == 0) return;
  causal_softmax_backward_kernel<<<row_blocks(rows), kThreads, 0, stream>>>(probs, grad, rows, time, scale);
  check_launch("causal_softmax_backward");
}

}  // namespace ringtrain::kernels
