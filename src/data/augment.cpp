#include "ringtrain/data/augment.hpp"

#include <algorithm>
#include <cstring>

#include "ringtrain/tensor/counter_rng.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/rng.hpp"

namespace ringtrain {

namespace {

// Keeps augmentation's draws apart from every other use of the seed (loader.cpp's shuffles, synthetic.cpp).
constexpr uint64_t kAugmentStream = uint64_t{1} << 41;

}  // namespace

std::string to_string(const Augmentation& a) {
  std::string text;
  if (a.crop_padding > 0) text = "crop:" + std::to_string(a.crop_padding);
  if (a.flip) text += text.empty() ? "flip" : ",flip";
  return text;
}

void check_augmentation(const Augmentation& augmentation, const Shape& sample_shape) {
  if (!augmentation.any()) return;
  const std::string flag = "--augment " + to_string(augmentation);
  if (sample_shape.size() != 2 && sample_shape.size() != 3)
    throw Error(flag + " is for images ([C, H, W] or [H, W] samples); this data's samples are " +
                shape_str(sample_shape));
  const int64_t height = sample_shape[sample_shape.size() - 2], width = sample_shape.back();
  if (augmentation.crop_padding > std::min(height, width))
    throw Error(flag + ": the padding is larger than the images (" + std::to_string(height) + "x" +
                std::to_string(width) + ")");
}

SampleAugmenter::SampleAugmenter(const Augmentation& augmentation, const Shape& sample_shape,
                                 const std::vector<float>& x_shift, uint64_t seed)
    : augmentation_(augmentation), seed_(derive_seed(seed, kAugmentStream)) {
  check_augmentation(augmentation, sample_shape);
  channels_ = sample_shape.size() == 3 ? sample_shape[0] : 1;
  height_ = sample_shape[sample_shape.size() - 2];
  width_ = sample_shape.back();
  const int64_t features = shape_numel(sample_shape);
  black_.assign(static_cast<size_t>(features), x_shift.empty() ? 0.0f : x_shift[0]);
  if (x_shift.size() == static_cast<size_t>(features)) black_ = x_shift;
  original_.resize(static_cast<size_t>(features));
}

void SampleAugmenter::apply(float* sample, int64_t epoch, int64_t index) {
  Rng rng(counter_hash(seed_, static_cast<uint64_t>(epoch), static_cast<uint64_t>(index)));
  const int64_t pad = augmentation_.crop_padding;
  // The crop's corner in the padded image, then the coin for the flip: torchvision's order.
  const int64_t top = pad > 0 ? static_cast<int64_t>(rng.below(static_cast<uint64_t>(2 * pad + 1))) - pad : 0;
  const int64_t left = pad > 0 ? static_cast<int64_t>(rng.below(static_cast<uint64_t>(2 * pad + 1))) - pad : 0;
  const bool flip = augmentation_.flip && (rng.next_u64() >> 63) != 0;
  if (top == 0 && left == 0 && !flip) return;
  std::memcpy(original_.data(), sample, original_.size() * sizeof(float));
  // Output pixel (y, x) shows the original's (y + top, x + left), read from the mirrored column when flipped;
  // a pixel from outside the image is black.
  const int64_t plane = height_ * width_;
  for (int64_t c = 0; c < channels_; ++c) {
    for (int64_t y = 0; y < height_; ++y) {
      float* out = sample + c * plane + y * width_;
      const float* black = black_.data() + c * plane + y * width_;
      const int64_t sy = y + top;
      if (sy < 0 || sy >= height_) {
        std::memcpy(out, black, static_cast<size_t>(width_) * sizeof(float));
        continue;
      }
      const float* in = original_.data() + c * plane + sy * width_;
      for (int64_t x = 0; x < width_; ++x) {
        const int64_t sx = (flip ? width_ - 1 - x : x) + left;
        out[x] = sx >= 0 && sx < width_ ? in[sx] : black[x];
      }
    }
  }
}

}  // namespace ringtrain
