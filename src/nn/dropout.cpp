#include "ringtrain/nn/dropout.hpp"

#include <cstring>

#include "ringtrain/tensor/counter_rng.hpp"

namespace ringtrain {

std::string Dropout::spec() const {
  std::string p = std::to_string(p_);
  p.erase(p.find_last_not_of('0') + 1);  // "0.500000" -> "0.5"
  return "dropout(" + p + ")";
}

Shape Dropout::build(const Shape& sample_in, Rng& rng) {
  seed_ = rng.next_u64();
  return sample_in;
}

void Dropout::mask(const Tensor& in, Tensor& out, uint64_t call) const {
  const float keep_scale = 1.0f / (1.0f - p_);
  const int64_t n = in.numel();
  for (int64_t i = 0; i < n; ++i)
    out[i] = counter_uniform(seed_, call, static_cast<uint64_t>(i)) < p_ ? 0.0f : in[i] * keep_scale;
}

const Tensor& Dropout::forward(const Tensor& x, Mode mode) {
  last_mode_ = mode;
  y_.resize(x.shape());
  const int64_t n = x.numel();
  if (mode == Mode::eval || p_ == 0.0f) {
    std::memcpy(y_.data(), x.data(), sizeof(float) * static_cast<size_t>(n));
    return y_;
  }
  forward_call_ = calls_++;
  mask(x, y_, forward_call_);
  return y_;
}

const Tensor& Dropout::backward(const Tensor& dy) {
  if (!input_grad_needed_) return dx_;
  dx_.resize(dy.shape());
  const int64_t n = dy.numel();
  if (last_mode_ == Mode::eval || p_ == 0.0f) {
    std::memcpy(dx_.data(), dy.data(), sizeof(float) * static_cast<size_t>(n));
    return dx_;
  }
  mask(dy, dx_, forward_call_);
  return dx_;
}

// Flatten copies rather than aliasing: layers own their outputs, and the copy is small next to the
// GEMMs around it.
const Tensor& Flatten::forward(const Tensor& x, Mode) {
  y_.resize({x.dim(0), x.numel() / x.dim(0)});
  std::memcpy(y_.data(), x.data(), sizeof(float) * static_cast<size_t>(x.numel()));
  return y_;
}

const Tensor& Flatten::backward(const Tensor& dy) {
  if (!input_grad_needed_) return dx_;
  Shape shape{dy.dim(0)};
  shape.insert(shape.end(), sample_shape_.begin(), sample_shape_.end());
  dx_.resize(shape);
  std::memcpy(dx_.data(), dy.data(), sizeof(float) * static_cast<size_t>(dy.numel()));
  return dx_;
}

}  // namespace ringtrain
