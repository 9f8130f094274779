// A float32 tensor: a shape and a contiguous row-major buffer it owns, in host memory or in the memory of
// this process's GPU. Deliberately small (ggml-style): layers index the buffer directly and call BLAS or
// cuBLAS on it; there is no autograd graph and no views. Host code may only index CPU tensors; to read a
// CUDA tensor, copy it with to(Device::cpu).
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
  explicit Tensor(Shape shape, Device device = Device::cpu);  // zero-filled

  // Changes the shape, reallocating only when the element count grows. Contents are unspecified after
  // a resize that changes the element count; layers call this once per batch size, not per step.
  void resize(const Shape& shape);
  // Same data, new shape of equal element count.
  void reshape(const Shape& shape);
  void fill(float value);

  // A copy on `device` (a plain copy when it is already there).
  Tensor to(Device device) const;
  // Takes src's shape and contents, keeping this tensor's device.
  void copy_from(const Tensor& src);

  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_[static_cast<size_t>(i)]; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return numel_; }
  Device device() const { return device_; }

  // Host or device address, as device() says.
  float* data() { return device_ == Device::cpu ? host_.data() : static_cast<float*>(device_buffer_.get()); }
  const float* data() const {
    return device_ == Device::cpu ? host_.data() : static_cast<const float*>(device_buffer_.get());
  }
  float& operator[](int64_t i) { return host_[static_cast<size_t>(i)]; }
  float operator[](int64_t i) const { return host_[static_cast<size_t>(i)]; }

 private:
  Shape shape_;
  int64_t numel_ = 0;
  Device device_ = Device::cpu;
  std::vector<float, HostAllocator<float>> host_;
  DeviceBuffer device_buffer_;
};

}  // namespace ringtrain
