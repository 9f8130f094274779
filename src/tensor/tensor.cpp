#include "ringtrain/tensor/tensor.hpp"

#include <algorithm>
#include <utility>

#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

int64_t shape_numel(const Shape& shape) {
  // Bytes of float32 must fit in size_t: a product that wrapped would allocate a small buffer for a huge tensor.
  constexpr int64_t kMaxElements = int64_t{1} << 61;
  int64_t n = 1;
  for (int64_t d : shape)
    if (__builtin_mul_overflow(n, d, &n) || n > kMaxElements || n < -kMaxElements)
      throw OutOfMemory("a tensor of shape " + shape_str(shape) + " has more elements than any memory holds");
  return n;
}

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

Tensor::Tensor(Shape shape, Device device) : shape_(std::move(shape)), numel_(shape_numel(shape_)), device_(device) {
  if (device_ == Device::cpu) {
    host_.assign(static_cast<size_t>(numel_), 0.0f);
  } else {
    device_buffer_ = DeviceBuffer(sizeof(float) * static_cast<size_t>(numel_));
    fill(0.0f);
  }
}

void Tensor::resize(const Shape& shape) {
  shape_ = shape;
  numel_ = shape_numel(shape);
  const size_t n = static_cast<size_t>(numel_);
  if (device_ == Device::cpu) {
    if (n > host_.size()) host_.resize(n);
  } else {
    device_buffer_.reserve(sizeof(float) * n);
  }
}

void Tensor::reshape(const Shape& shape) {
  if (shape_numel(shape) != numel_)
    throw Error("cannot reshape " + shape_str(shape_) + " to " + shape_str(shape));
  shape_ = shape;
}

void Tensor::fill(float value) {
  if (device_ == Device::cpu)
    std::fill_n(host_.begin(), numel_, value);
  else
    fill_device(data(), numel_, value);
}

Tensor Tensor::to(Device device) const {
  Tensor out;
  out.device_ = device;
  out.copy_from(*this);
  return out;
}

void Tensor::copy_from(const Tensor& src) {
  resize(src.shape());
  copy_bytes(data(), device_, src.data(), src.device(), sizeof(float) * static_cast<size_t>(numel_));
}

}  // namespace ringtrain
