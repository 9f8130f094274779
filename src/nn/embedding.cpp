#include "ringtrain/nn/embedding.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>

#include "ringtrain/nn/init.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

Embedding::Embedding(int64_t vocabulary, int64_t channels, int64_t context)
    : vocabulary_(vocabulary), channels_(channels), context_(context) {}

std::string Embedding::spec() const {
  return "embedding(" + std::to_string(vocabulary_) + "," + std::to_string(channels_) +
         ",context=" + std::to_string(context_) + ")";
}

Shape Embedding::build(const Shape& sample_in, Rng& rng) {
  if (sample_in.size() != 1)
    throw Error("embedding takes a window of token ids [T], got samples of shape " + shape_str(sample_in));
  time_ = sample_in[0];
  if (time_ > context_)
    throw Error("the data's context of " + std::to_string(time_) + " tokens is longer than the model's " +
                std::to_string(context_) + " (embedding context=" + std::to_string(context_) + ")");
  for (Param* p : {&token_, &position_}) {
    const int64_t rows = p == &token_ ? vocabulary_ : context_;
    p->value = Tensor({rows, channels_});
    p->grad = Tensor({rows, channels_});
    fill_normal(p->value, 0.02f, rng);
  }
  return {time_, channels_};
}

void check_window_length(int64_t t_len, int64_t context) {
  if (t_len > context)
    throw Error("a window of " + std::to_string(t_len) + " tokens is longer than the model's context of " +
                std::to_string(context));
}

void throw_token_outside_vocabulary(float id, int64_t position, int64_t vocabulary) {
  char value[32];
  std::snprintf(value, sizeof value, "%.9g", static_cast<double>(id));
  throw Error("token id " + std::string(value) + " at position " + std::to_string(position) +
              " is outside the vocabulary of " + std::to_string(vocabulary));
}

const Tensor& Embedding::forward(const Tensor& x, Mode) {
  const int64_t batch = x.dim(0), t_len = x.numel() / batch, c = channels_;
  check_window_length(t_len, context_);
  ids_.resize(static_cast<size_t>(x.numel()));
  for (int64_t i = 0; i < x.numel(); ++i) {
    const float id = x[i];
    // A float holds every id below 2^24 exactly; anything else (a fraction, NaN, out of range) is refused.
    if (!(id >= 0.0f && id < static_cast<float>(vocabulary_) && id == std::floor(id)))
      throw_token_outside_vocabulary(id, i % t_len, vocabulary_);
    ids_[static_cast<size_t>(i)] = static_cast<int32_t>(id);
  }
  y_.resize({batch, t_len, c});
  const float* tok = token_.value.data();
  const float* pos = position_.value.data();
  float* y = y_.data();
#pragma omp parallel for schedule(static) if (batch * t_len * c > (1 << 16))
  for (int64_t r = 0; r < batch * t_len; ++r) {
    const float* __restrict a = tok + ids_[static_cast<size_t>(r)] * c;
    const float* __restrict p = pos + (r % t_len) * c;
    float* __restrict out = y + r * c;
    for (int64_t j = 0; j < c; ++j) out[j] = a[j] + p[j];
  }
  return y_;
}

// Rows of the token table may repeat within a batch, so the scatter into it runs on one thread; the position
// gradient is a sum over the batch, parallel over positions.
const Tensor& Embedding::backward(const Tensor& dy) {
  const int64_t c = channels_, rows = dy.numel() / c, t_len = dy.dim(1), batch = rows / t_len;
  const float* g = dy.data();
  float* dtok = token_.grad.data();
  for (int64_t r = 0; r < rows; ++r) {
    float* __restrict out = dtok + ids_[static_cast<size_t>(r)] * c;
    const float* __restrict in = g + r * c;
    for (int64_t j = 0; j < c; ++j) out[j] += in[j];
  }
  float* dpos = position_.grad.data();
#pragma omp parallel for schedule(static) if (rows * c > (1 << 16))
  for (int64_t t = 0; t < t_len; ++t)
    for (int64_t b = 0; b < batch; ++b) {
      float* __restrict out = dpos + t * c;
      const float* __restrict in = g + (b * t_len + t) * c;
      for (int64_t j = 0; j < c; ++j) out[j] += in[j];
    }
  return no_input_gradient_;
}

}  // namespace ringtrain
