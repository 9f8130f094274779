// What a batch is scored against: class labels for classification or target values for regression.
// Lives beside Tensor so that data readers can fill it and losses can read it without knowing each other.
#pragma once
#include <cstdint>
#include <vector>

#include "ringtrain/tensor/tensor.hpp"

namespace ringtrain {

// What a model's outputs are: class scores, or values of regression targets that the data standardised
// (standardised = raw * scale + shift, so that a target in the hundreds of thousands trains with the default
// learning rate); losses and errors are reported in the target's own units.
struct TargetSpace {
  bool classification = true;
  float scale = 1.0f, shift = 0.0f;  // regression only
  bool operator==(const TargetSpace&) const = default;
};

struct Targets {
  std::vector<int32_t> labels;  // [batch] when classifying; [batch, T] row-major for token data (one per position)
  Tensor values;                // [batch, outputs] when regressing, on the device the model runs on
  // The labels again, in GPU memory, when the batch was uploaded for the CUDA engine (int32, as `labels`).
  DeviceBuffer device_labels;
};

}  // namespace ringtrain
