// Augmentation (data/augment.hpp) against a literal reference of torchvision's RandomCrop(size, padding=P)
// and RandomHorizontalFlip: pad the image with black, cut the window at a corner, mirror it. And in the
// loader: N ranks and a resumed epoch see the augmented samples one uninterrupted rank sees.
#include <gtest/gtest.h>

#include <map>
#include <numeric>
#include <tuple>

#include "ringtrain/data/augment.hpp"
#include "ringtrain/data/loader.hpp"
#include "ringtrain/data/shard_set.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

using test::error_of;
using test::TempDir;

// torchvision's crop then flip, written out: `top`, `left` in [-pad, pad] are the window's corner in the
// original's coordinates.
std::vector<float> reference(const std::vector<float>& image, const Shape& chw, int64_t top, int64_t left,
                             bool flip, const std::vector<float>& black) {
  const int64_t c_n = chw[0], h = chw[1], w = chw[2];
  std::vector<float> cropped(image.size());
  for (int64_t c = 0; c < c_n; ++c)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const int64_t sy = y + top, sx = x + left, at = (c * h + y) * w + x;
        const bool inside = sy >= 0 && sy < h && sx >= 0 && sx < w;
        cropped[at] = inside ? image[(c * h + sy) * w + sx] : black[at];
      }
  if (!flip) return cropped;
  std::vector<float> mirrored(cropped.size());
  for (int64_t c = 0; c < c_n; ++c)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) mirrored[(c * h + y) * w + x] = cropped[(c * h + y) * w + (w - 1 - x)];
  return mirrored;
}

std::vector<float> counting(int64_t n) {  // distinct values, so that one crop and flip explain a result
  std::vector<float> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 1.0f);
  return v;
}

// Which (top, left, flip) of the reference gives `out`; every one that does.
std::vector<std::tuple<int64_t, int64_t, bool>> explanations(const std::vector<float>& image, const Shape& chw,
                                                             int64_t pad, const std::vector<float>& black,
                                                             const std::vector<float>& out) {
  std::vector<std::tuple<int64_t, int64_t, bool>> found;
  for (int64_t top = -pad; top <= pad; ++top)
    for (int64_t left = -pad; left <= pad; ++left)
      for (bool flip : {false, true})
        if (reference(image, chw, top, left, flip, black) == out) found.emplace_back(top, left, flip);
  return found;
}

TEST(Augment, EachSampleIsOneCropAndFlipOfTheReferenceAndEveryOneOccurs) {
  const Shape chw = {2, 3, 4};
  const std::vector<float> image = counting(24), black(24, -0.5f);
  SampleAugmenter augmenter({1, true}, chw, {-0.5f}, 7);
  std::map<std::tuple<int64_t, int64_t, bool>, int> seen;
  for (int64_t index = 0; index < 900; ++index) {
    std::vector<float> sample = image;
    augmenter.apply(sample.data(), 0, index);
    const auto found = explanations(image, chw, 1, black, sample);
    ASSERT_EQ(found.size(), 1u) << "sample " << index;
    ++seen[found[0]];
  }
  ASSERT_EQ(seen.size(), 18u);  // 3 x 3 corners x 2
  for (const auto& [draw, count] : seen) EXPECT_NEAR(count, 50, 25);
}

TEST(Augment, FlipAloneMirrorsAboutHalfAndCropAloneNeverMirrors) {
  const Shape chw = {1, 2, 5};
  const std::vector<float> image = counting(10), black(10, 0.0f);
  SampleAugmenter flip_only({0, true}, {2, 5}, {0.0f}, 1), crop_only({2, false}, chw, {0.0f}, 1);
  int mirrored = 0;
  for (int64_t index = 0; index < 400; ++index) {
    std::vector<float> a = image, b = image;
    flip_only.apply(a.data(), 3, index);
    crop_only.apply(b.data(), 3, index);
    mirrored += a != image;
    ASSERT_TRUE(a == image || a == reference(image, chw, 0, 0, true, black)) << index;
    bool unmirrored = false;  // one explanation at least (a crop of black rows has many)
    for (const auto& [top, left, flip] : explanations(image, chw, 2, black, b)) unmirrored |= !flip;
    EXPECT_TRUE(unmirrored) << index;
  }
  EXPECT_NEAR(mirrored, 200, 40);
}

// Black is what a stored 0 becomes: x_shift, per feature when the data has one per feature.
TEST(Augment, PaddingIsTheNormalisedBlackOfEachPixel) {
  const Shape chw = {1, 3, 3};
  std::vector<float> shift(9);
  std::iota(shift.begin(), shift.end(), -20.0f);
  const std::vector<float> image = counting(9);
  SampleAugmenter augmenter({2, false}, chw, shift, 5);
  int padded = 0;
  for (int64_t index = 0; index < 50; ++index) {
    std::vector<float> sample = image;
    augmenter.apply(sample.data(), 0, index);
    EXPECT_EQ(explanations(image, chw, 2, shift, sample).size(), 1u) << index;
    for (size_t i = 0; i < 9; ++i) padded += sample[i] == shift[i];
  }
  EXPECT_GT(padded, 0);
}

TEST(Augment, TheDrawDependsOnSeedEpochAndIndexAlone) {
  const Shape chw = {1, 4, 4};
  const std::vector<float> image = counting(16);
  auto seen = [&](uint64_t seed, int64_t epoch, int64_t index) {
    SampleAugmenter augmenter({2, true}, chw, {0.0f}, seed);
    std::vector<float> sample = image;
    augmenter.apply(sample.data(), epoch, index);
    return sample;
  };
  int other_epoch = 0, other_seed = 0;
  for (int64_t index = 0; index < 40; ++index) {
    EXPECT_EQ(seen(3, 1, index), seen(3, 1, index));
    other_epoch += seen(3, 1, index) != seen(3, 2, index);
    other_seed += seen(3, 1, index) != seen(4, 1, index);
  }
  EXPECT_GT(other_epoch, 30);
  EXPECT_GT(other_seed, 30);
}

TEST(Augment, OnlyImagesAndPaddingsThatFitThem) {
  EXPECT_EQ(error_of([] { check_augmentation({0, true}, {784}); }),
            "--augment flip is for images ([C, H, W] or [H, W] samples); this data's samples are [784]");
  EXPECT_EQ(error_of([] { check_augmentation({4, true}, {1, 2, 3, 4}); }),
            "--augment crop:4,flip is for images ([C, H, W] or [H, W] samples); this data's samples are [1, 2, 3, 4]");
  EXPECT_EQ(error_of([] { check_augmentation({29, false}, {1, 28, 30}); }),
            "--augment crop:29: the padding is larger than the images (28x30)");
  EXPECT_EQ(error_of([] { check_augmentation({28, false}, {28, 30}); }), "");
  EXPECT_EQ(error_of([] { check_augmentation({}, {784}); }), "");  // none: any data
  EXPECT_EQ(to_string(Augmentation{4, true}), "crop:4,flip");
  EXPECT_EQ(to_string(Augmentation{0, true}), "flip");
  EXPECT_EQ(to_string(Augmentation{}), "");
}

// The inputs of every batch of an epoch, from position `first` of its order on.
std::vector<float> inputs_seen(const ShardSet& set, LoaderConfig c, int64_t epoch, int64_t first = 0) {
  BatchLoader loader(set, c);
  loader.start_epoch(epoch, first);
  Batch b;
  std::vector<float> out;
  while (loader.next(b)) out.insert(out.end(), b.x.data(), b.x.data() + b.x.numel());
  return out;
}

TEST(Augment, RanksAndAResumedEpochSeeWhatOneRankSees) {
  TempDir dir;
  test::write_classification_shard(dir.path("a.h5"), 24, {1, 5, 5}, 3, 1);
  const ShardSet set = ShardSet::open(dir.path());
  LoaderConfig one;
  one.batch = 6;
  one.seed = 11;
  one.augment = {2, true};
  const std::vector<float> whole = inputs_seen(set, one, 2);
  ASSERT_EQ(whole.size(), 24u * 25);
  LoaderConfig plain = one;
  plain.augment = {};
  EXPECT_NE(inputs_seen(set, plain, 2), whole);
  EXPECT_NE(inputs_seen(set, one, 3), whole);  // another epoch, other draws
  // Two ranks with batch 3: rank r's batch k is samples [k*6 + 3r, k*6 + 3r + 3) of one rank's.
  LoaderConfig two = one;
  two.batch = 3;
  two.world = 2;
  for (two.rank = 0; two.rank < 2; ++two.rank) {
    const std::vector<float> mine = inputs_seen(set, two, 2);
    ASSERT_EQ(mine.size(), 12u * 25);
    for (size_t k = 0; k < 4; ++k)
      for (size_t i = 0; i < 3 * 25; ++i)
        ASSERT_EQ(mine[k * 75 + i], whole[(k * 6 + static_cast<size_t>(two.rank) * 3) * 25 + i]);
  }
  const std::vector<float> resumed = inputs_seen(set, one, 2, 2 * 6);
  EXPECT_EQ(resumed, std::vector<float>(whole.begin() + 2 * 6 * 25, whole.end()));
}

}  // namespace
}  // namespace ringtrain
