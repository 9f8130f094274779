// Images of 3 channels from shards ([N, 3, H, W], uint8 or float32, as docs/data-format.md describes them),
// end to end: the loader's batches keep the channel layout, and a small conv net trains on them.
#include <gtest/gtest.h>

#include <sstream>

#include "ringtrain/data/loader.hpp"
#include "ringtrain/data/shard_set.hpp"
#include "ringtrain/train/trainer.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

using test::TempDir;

constexpr int64_t kSide = 8, kPixels = 3 * kSide * kSide;

// 3 classes; the class's channel is brighter than the other two, so a conv net can learn it. The raw value of
// sample i, pixel p is kept apart from its label so that the batch test can recompute it.
uint8_t raw_pixel(int64_t i, int64_t p, int64_t label) {
  const int64_t channel = p / (kSide * kSide);
  return static_cast<uint8_t>((i * 31 + p * 7) % 100 + (channel == label ? 120 : 0));
}

void write_rgb_shard(const std::string& path, int64_t samples, PixelType type) {
  ShardMeta meta;
  meta.samples = samples;
  meta.sample_shape = {3, kSide, kSide};
  meta.x_type = type;
  meta.num_classes = 3;
  // uint8 as prep stores images (standardised by attributes); float32 already scaled.
  meta.x_scale = {type == PixelType::u8 ? 1.0f / 128.0f : 1.0f};
  meta.x_shift = {type == PixelType::u8 ? -1.0f : 0.0f};
  ShardData data;
  for (int64_t i = 0; i < samples; ++i) {
    const int64_t label = i % 3;
    data.labels.push_back(label);
    for (int64_t p = 0; p < kPixels; ++p) {
      const uint8_t raw = raw_pixel(i, p, label);
      if (type == PixelType::u8) data.x_u8.push_back(raw);
      else data.x_f32.push_back(static_cast<float>(raw) / 128.0f - 1.0f);
    }
  }
  write_shard(path, meta, data);
}

class RgbShards : public ::testing::TestWithParam<PixelType> {};

TEST_P(RgbShards, BatchesKeepTheChannelLayout) {
  TempDir dir;
  write_rgb_shard(dir.path("train-00000.h5"), 6, GetParam());
  const ShardSet set = ShardSet::open(dir.path());
  EXPECT_EQ(set.meta().sample_shape, (Shape{3, kSide, kSide}));
  LoaderConfig c;
  c.batch = 6;
  c.shuffle = false;
  BatchLoader loader(set, c);
  loader.start_epoch(0);
  Batch b;
  ASSERT_TRUE(loader.next(b));
  EXPECT_EQ(b.x.shape(), (Shape{6, 3, kSide, kSide}));
  for (int64_t i = 0; i < 6; ++i) {
    EXPECT_EQ(b.y.labels[static_cast<size_t>(i)], i % 3);
    for (int64_t p : {int64_t{0}, kSide * kSide + 5, kPixels - 1})
      EXPECT_FLOAT_EQ(b.x[i * kPixels + p], static_cast<float>(raw_pixel(i, p, i % 3)) / 128.0f - 1.0f) << i << " " << p;
  }
}

TEST_P(RgbShards, AConvNetTrainsOnThem) {
  TempDir dir;
  write_rgb_shard(dir.path("train-00000.h5"), 96, GetParam());
  write_rgb_shard(dir.path("test-00000.h5"), 30, GetParam());
  TrainConfig c = test::train_config(
      dir.path(), {.model = "conv(8,3,pad=1),relu,maxpool(2),flatten,linear(out)", .batch = 16, .epochs = 3, .lr = 0.02f});
  std::ostringstream log;
  const TrainResult r = Trainer(c, test::world()).run(log);
  EXPECT_NE(log.str().find("input [3, 8, 8]"), std::string::npos) << log.str();
  ASSERT_EQ(r.epochs.size(), 3u);
  EXPECT_EQ(r.steps, 18);
  EXPECT_LT(r.epochs.back().train.loss(), r.epochs.front().train.loss());
  EXPECT_EQ(r.test.samples, 30);
  EXPECT_GT(r.test.metric(), 0.9);
}

INSTANTIATE_TEST_SUITE_P(Types, RgbShards, ::testing::Values(PixelType::u8, PixelType::f32),
                         [](const ::testing::TestParamInfo<PixelType>& info) {
                           return std::string(info.param == PixelType::u8 ? "Uint8" : "Float32");
                         });

}  // namespace
}  // namespace ringtrain
