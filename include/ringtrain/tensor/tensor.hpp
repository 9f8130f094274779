// A float32 tensor: a shape and a contiguous row-major buffer it owns. Deliberately small (ggml-style):
// layers index the buffer directly and call BLAS on it; there is no autograd graph and no views.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ringtrain/tensor/device.hpp"
#include "ringtrain/tensor/host_allocator.hpp"

namespace ringtrain {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& shape);
std::string shape_str(const Shape& shape);  // "[64, 1, 28, 28]"

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(Shape shape);  // zero-filled

  // Changes the shape, reallocating only when the element count grows. Contents are unspecified after
  // a resize that changes the element count; layers call this once per batch size, not per step.
  void resize(const Shape& shape);
  // Same data, new shape of equal element count.
  void reshape(const Shape& shape);
  void fill(float value);

  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_[static_cast<size_t>(i)]; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return numel_; }
  Device device() const { return Device::cpu; }

  float* data() { return data_.data(); }
  const float* data() const { return data_.data(); }
  float& operator[](int64_t i) { return data_[static_cast<size_t>(i)]; }
  float operator[](int64_t i) const { return data_[static_cast<size_t>(i)]; }

 private:
  Shape shape_;
  int64_t numel_ = 0;
  std::vector<float, HostAllocator<float>> data_;
};

}  // namespace ringtrain
