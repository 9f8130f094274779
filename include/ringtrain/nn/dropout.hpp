// Inverted dropout: in training, zero each element with probability p and scale the rest by 1/(1-p);
// identity in evaluation. The mask comes from the layer's own seeded generator.
#pragma once
#include <vector>

#include "ringtrain/nn/layer.hpp"

namespace ringtrain {

class Dropout : public Layer {
 public:
  explicit Dropout(float p) : p_(p) {}
  std::string kind() const override { return "dropout"; }
  std::string spec() const override;
  Shape build(const Shape& sample_in, Rng& rng) override;
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  Rng& rng() { return rng_; }

 private:
  float p_;
  Rng rng_;
  Tensor y_, dx_, mask_;  // mask_ holds 0 or 1/(1-p)
  Mode last_mode_ = Mode::eval;
};

class Flatten : public Layer {
 public:
  std::string kind() const override { return "flatten"; }
  std::string spec() const override { return "flatten"; }
  Shape build(const Shape& sample_in, Rng&) override { return {shape_numel(sample_in)}; }
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;

 private:
  Shape in_shape_;
  Tensor y_, dx_;
};

}  // namespace ringtrain
