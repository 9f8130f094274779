// Token and learned position embedding (GPT-2's wte + wpe): a sample is a window of T token ids, stored as
// floats [T]; the output [T, C] is token[id_t] + position[t]. The layer is a model's first: it computes no
// input gradient (token ids have none) and returns an empty tensor from backward.
#pragma once
#include <cstdint>
#include <vector>

#include "ringtrain/nn/layer.hpp"

namespace ringtrain {

class Embedding : public Layer {
 public:
  // vocabulary V, channels C, context K: the longest window the position table covers.
  Embedding(int64_t vocabulary, int64_t channels, int64_t context);
  std::string kind() const override { return "embedding"; }
  std::string spec() const override;
  // Takes [T] with T <= K and gives [T, C]; tables N(0, 0.02) as GPT-2's.
  Shape build(const Shape& sample_in, Rng& rng) override;
  // Throws Error("token id 300 at position 5 is outside the vocabulary of 256") for an id that is not an
  // integer in [0, V).
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  // The ids as read by forward (backward scatters into their rows), and the output.
  ForwardState forward_state() override { return {{&y_}, {&ids_}, {}}; }
  std::vector<Param*> params() override { return {&token_, &position_}; }
  double flops_per_sample() const override { return 3.0 * static_cast<double>(time_ * channels_); }
  Param* tied_weight_source() override { return &token_; }

  int64_t vocabulary() const { return vocabulary_; }
  int64_t channels() const { return channels_; }
  int64_t context() const { return context_; }

 private:
  int64_t vocabulary_, channels_, context_, time_ = 0;
  Param token_{"token", {}, {}, true}, position_{"position", {}, {}, true};
  std::vector<int32_t> ids_;  // [batch * T]
  Tensor y_, no_input_gradient_;
};

// The errors of a window an embedding cannot read, one text for the CPU and the GPU layer: a window longer
// than its `context`, and an id that is not an integer in [0, vocabulary).
void check_window_length(int64_t t_len, int64_t context);
[[noreturn]] void throw_token_outside_vocabulary(float id, int64_t position, int64_t vocabulary);

}  // namespace ringtrain
