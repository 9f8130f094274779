// Image augmentation, done by the loader's background thread as it writes each training sample into its
// batch: torchvision's RandomCrop(size, padding=P) followed by RandomHorizontalFlip(), in one pass.
//
// A sample's draw depends on the seed, the epoch and the sample's index in the source only, never on the
// rank or the batch it lands in, so N ranks see exactly the augmented samples one rank sees, and a resumed
// run the ones the interrupted run would have seen.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ringtrain/tensor/tensor.hpp"

namespace ringtrain {

struct Augmentation {
  int64_t crop_padding = 0;  // > 0: pad every side by this many pixels, then crop back to the size at random
  bool flip = false;         // mirror left to right with probability 1/2
  bool any() const { return crop_padding > 0 || flip; }
  bool operator==(const Augmentation&) const = default;
};

// As --augment takes it ("crop:4,flip", "flip"); "" for none (the flag's `none`).
std::string to_string(const Augmentation& augmentation);

// Throws Error, naming the flag, when samples of this shape cannot take it: not images ([C, H, W] or
// [H, W]), or a padding larger than they are.
void check_augmentation(const Augmentation& augmentation, const Shape& sample_shape);

// Augments samples of one shape in place. Padding is black: the value a stored 0 becomes after the data's
// normalisation (value = raw * x_scale + x_shift, per feature or for all), as torchvision pads before its
// Normalize.
class SampleAugmenter {
 public:
  // Throws as check_augmentation does.
  SampleAugmenter(const Augmentation& augmentation, const Shape& sample_shape, const std::vector<float>& x_shift,
                  uint64_t seed);

  // Sample `index` of the source as it is seen in `epoch`.
  void apply(float* sample, int64_t epoch, int64_t index);

 private:
  Augmentation augmentation_;
  int64_t channels_ = 1, height_ = 0, width_ = 0;
  std::vector<float> black_;    // per feature: a padded pixel's value there
  uint64_t seed_;
  std::vector<float> original_;  // one sample, copied before it is overwritten
};

}  // namespace ringtrain
