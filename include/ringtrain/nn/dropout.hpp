// Inverted dropout: in training, zero each element with probability p and scale the rest by 1/(1-p);
// identity in evaluation. Element i of the c-th training forward is dropped when
// counter_uniform(seed, c, i) < p: the mask is a function, never stored, and the CUDA engine draws the same one.
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
  ForwardState forward_state() override { return {{&y_}, {}, {&forward_call_}}; }
  std::vector<uint64_t*> random_streams() override { return {&calls_}; }
  float p() const { return p_; }
  uint64_t seed() const { return seed_; }
  // Training forwards so far: the stream of the next mask.
  uint64_t calls() const { return calls_; }

 private:
  void mask(const Tensor& in, Tensor& out, uint64_t call) const;

  float p_;
  uint64_t seed_ = 0, calls_ = 0;
  uint64_t forward_call_ = 0;  // the mask stream of the forward that backward follows
  Tensor y_, dx_;
  Mode last_mode_ = Mode::eval;
};

class Flatten : public Layer {
 public:
  std::string kind() const override { return "flatten"; }
  std::string spec() const override { return "flatten"; }
  Shape build(const Shape& sample_in, Rng&) override {
    sample_shape_ = sample_in;
    return {shape_numel(sample_in)};
  }
  const Tensor& forward(const Tensor& x, Mode mode) override;
  // dx takes dy's batch size, not the last forward's: a pipeline stage runs the backward of an earlier
  // micro-batch, of another size, after later forwards.
  const Tensor& backward(const Tensor& dy) override;
  ForwardState forward_state() override { return {{&y_}}; }

 private:
  Shape sample_shape_;
  Tensor y_, dx_;
};

}  // namespace ringtrain
