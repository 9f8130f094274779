#include "ringtrain/tensor/tensor.hpp"

#include <algorithm>

#include "ringtrain/error.hpp"

namespace ringtrain {

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

Tensor::Tensor(Shape shape) : shape_(std::move(shape)), numel_(shape_numel(shape_)) {
  data_.assign(static_cast<size_t>(numel_), 0.0f);
}

void Tensor::resize(const Shape& shape) {
  shape_ = shape;
  numel_ = shape_numel(shape);
  if (static_cast<size_t>(numel_) > data_.size()) data_.resize(static_cast<size_t>(numel_));
}

void Tensor::reshape(const Shape& shape) {
  if (shape_numel(shape) != numel_)
    throw Error("cannot reshape " + shape_str(shape_) + " to " + shape_str(shape));
  shape_ = shape;
}

void Tensor::fill(float value) { std::fill_n(data_.begin(), numel_, value); }

}  // namespace ringtrain
