#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <fstream>
#include <set>
#include <tuple>

#include "ringtrain/data/hdf5.hpp"
#include "ringtrain/data/loader.hpp"
#include "ringtrain/data/shard_set.hpp"
#include "ringtrain/tensor/error.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

using test::TempDir;
using test::error_of;

// The batches of an unshuffled epoch, as the loader assembles them (normalised x and y).
std::vector<Batch> batches_of(const ShardSet& set, int64_t size) {
  LoaderConfig c;
  c.batch = size;
  c.shuffle = false;
  BatchLoader loader(set, c);
  loader.start_epoch(0);
  std::vector<Batch> batches(1);
  while (loader.next(batches.back())) batches.emplace_back();
  batches.pop_back();
  return batches;
}

// Writes a shard with raw datasets, bypassing write_shard's checks, for the bad-input cases.
void write_raw(const std::string& path, const std::function<void(hid_t)>& fill) {
  auto lock = h5::lock_library();
  h5::H5Id f = h5::create_file(path);
  fill(f.get());
}

// Data a model cannot use is refused where it is read, naming the shard and the sample: samples without
// features, NaN or infinity in x or in regression targets, and a shard rewritten while the run uses it.
TEST(Shard, UnusableOrChangedDataIsRefusedNamingTheSample) {
  TempDir dir;
  write_raw(dir.path("nofeatures.h5"), [](hid_t f) {
    std::vector<float> x;
    std::vector<int64_t> y(2);
    h5::write_dataset(f, "x", {2, 0}, x.data());
    h5::write_dataset(f, "y", {2}, y.data());
    h5::write_attr(f, "num_classes", int64_t{2});
  });
  EXPECT_NE(error_of([&] { read_shard_meta(dir.path("nofeatures.h5")); }).find("x of shape [2, 0] has no features"),
            std::string::npos);

  const float inf = std::numeric_limits<float>::infinity();
  write_raw(dir.path("nan.h5"), [&](hid_t f) {
    std::vector<float> x = {0, 1, 2, 3, 4, std::nanf(""), 6, 7}, y = {0.5f, 1.5f};
    h5::write_dataset(f, "x", {2, 4}, x.data());
    h5::write_dataset(f, "y", {2}, y.data());
  });
  const ShardMeta nan = read_shard_meta(dir.path("nan.h5"));
  EXPECT_NE(error_of([&] { read_shard_data(nan); }).find("non-finite value (NaN or infinity) in x of sample 1 in shard"),
            std::string::npos);
  write_raw(dir.path("inf.h5"), [&](hid_t f) {
    std::vector<float> x(8), y = {0.5f, 1.5f, 2.5f, inf};
    h5::write_dataset(f, "x", {2, 4}, x.data());
    h5::write_dataset(f, "y", {2, 2}, y.data());
  });
  const ShardMeta target = read_shard_meta(dir.path("inf.h5"));
  EXPECT_NE(error_of([&] { read_shard_data(target); }).find("non-finite value (NaN or infinity) in y of sample 1"),
            std::string::npos);

  test::write_classification_shard(dir.path("moving.h5"), 8, {4}, 2, 1);
  const ShardMeta before = read_shard_meta(dir.path("moving.h5"));
  EXPECT_NO_THROW(read_shard_data(before));
  test::write_classification_shard(dir.path("moving.h5"), 9, {4}, 2, 2);  // another job rewrites it
  EXPECT_NE(error_of([&] { read_shard_data(before); }).find("changed on disk since the run checked it"),
            std::string::npos);
}

TEST(Shard, RoundTripKeepsSamplesAndAttributes) {
  TempDir dir;
  ShardMeta meta;
  meta.samples = 3;
  meta.sample_shape = {1, 2, 2};
  meta.x_type = PixelType::u8;
  meta.num_classes = 4;
  meta.x_scale = {0.5f};
  meta.x_shift = {-1.0f};
  meta.class_names = {"a", "b", "c", "d"};
  ShardData data;
  for (uint8_t i = 0; i < 12; ++i) data.x_u8.push_back(i);
  data.labels = {3, 0, 2};
  write_shard(dir.path("s.h5"), meta, data);
  const ShardMeta back = read_shard_meta(dir.path("s.h5"));
  EXPECT_EQ(back.samples, 3);
  EXPECT_EQ(back.sample_shape, meta.sample_shape);
  EXPECT_EQ(back.num_classes, 4);
  EXPECT_EQ(back.x_scale, meta.x_scale);
  EXPECT_EQ(back.class_names, meta.class_names);
  const ShardData d = read_shard_data(back);
  EXPECT_EQ(d.x_u8, data.x_u8);
  EXPECT_EQ(d.labels, data.labels);
}

TEST(Shard, RegressionTargetsRoundTrip) {
  TempDir dir;
  ShardMeta meta;
  meta.samples = 2;
  meta.sample_shape = {3};
  meta.x_type = PixelType::f32;
  meta.target_dim = 2;
  meta.feature_names = {"a", "b", "c"};
  ShardData data;
  data.x_f32 = {1, 2, 3, 4, 5, 6};
  data.targets = {0.5f, 1.5f, 2.5f, 3.5f};
  write_shard(dir.path("r.h5"), meta, data);
  const ShardMeta back = read_shard_meta(dir.path("r.h5"));
  EXPECT_FALSE(back.classification());
  EXPECT_EQ(back.target_dim, 2);
  EXPECT_EQ(back.feature_names, meta.feature_names);
  EXPECT_EQ(read_shard_data(back).targets, data.targets);
  EXPECT_EQ(back.y_scale, 1.0f);
  EXPECT_EQ(back.y_shift, 0.0f);

  meta.y_scale = 0.25f, meta.y_shift = -2.0f;
  write_shard(dir.path("s.h5"), meta, data);
  const ShardMeta standardised = read_shard_meta(dir.path("s.h5"));
  EXPECT_EQ(standardised.y_scale, 0.25f);
  EXPECT_EQ(standardised.y_shift, -2.0f);
  EXPECT_NE(error_of([&] { check_compatible(back, standardised); }).find("target standardisation"), std::string::npos);
  // The loader hands the model standardised targets.
  const Batch batch = std::move(batches_of(ShardSet::open(dir.path("s.h5")), 2).at(0));
  EXPECT_FLOAT_EQ(batch.y.values[0], 0.5f * 0.25f - 2.0f);
  EXPECT_FLOAT_EQ(batch.y.values[3], 3.5f * 0.25f - 2.0f);

  // A scale that overflows the targets it standardises is refused where the data is read, naming the sample.
  meta.y_scale = 3e38f;
  write_shard(dir.path("o.h5"), meta, data);
  const std::string overflow = error_of([&] { read_shard_data(read_shard_meta(dir.path("o.h5"))); });
  EXPECT_NE(overflow.find("the target of sample 0 overflows when standardised"), std::string::npos) << overflow;

  for (const auto& bad : {std::pair{"y_scale", std::vector<float>{0.0f}}, std::pair{"y_scale", std::vector<float>{1.0f, 2.0f}},
                          std::pair{"y_shift", std::vector<float>{NAN}}}) {
    const std::string attr = bad.first;  // named, not bound: clang 14's lambdas cannot capture a binding
    const std::vector<float>& value = bad.second;
    write_raw(dir.path("bad.h5"), [&](hid_t f) {
      std::vector<float> x(6), y(2);
      h5::write_dataset(f, "x", {2, 3}, x.data());
      h5::write_dataset(f, "y", {2}, y.data());
      h5::write_attr(f, attr, value);
    });
    EXPECT_NE(error_of([&] { read_shard_meta(dir.path("bad.h5")); }).find(std::string("attribute ") + attr + " must be one finite"),
              std::string::npos)
        << attr;
  }
}

TEST(Shard, BadInputsAreOneLineErrorsNamingTheProblem) {
  TempDir dir;
  EXPECT_NE(error_of([&] { read_shard_meta(dir.path("missing.h5")); }).find("no such file"), std::string::npos);
  std::ofstream(dir.path("text.h5")) << "not hdf5 at all\n";
  EXPECT_NE(error_of([&] { read_shard_meta(dir.path("text.h5")); }).find("is not an HDF5 file"), std::string::npos);

  write_raw(dir.path("noy.h5"), [](hid_t f) {
    std::vector<uint8_t> x(8);
    h5::write_dataset(f, "x", {2, 4}, x.data());
  });
  EXPECT_NE(error_of([&] { read_shard_meta(dir.path("noy.h5")); }).find("has no dataset 'y'"), std::string::npos);

  // A header that declares two billion samples in a file of a few kilobytes: refused before any allocation.
  write_raw(dir.path("huge.h5"), [](hid_t f) {
    for (const auto& [name, dims, type] : {std::tuple{"x", std::vector<hsize_t>{2000000000, 4}, H5T_NATIVE_FLOAT},
                                           std::tuple{"y", std::vector<hsize_t>{2000000000}, H5T_NATIVE_INT64}}) {
      const hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
      H5Dclose(H5Dcreate2(f, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));  // no data written
      H5Sclose(space);
    }
    h5::write_attr(f, "num_classes", int64_t{2});
  });
  EXPECT_NE(error_of([&] { read_shard_meta(dir.path("huge.h5")); })
                .find("dataset 'x' of shape [2000000000, 4] declares 32000000000 bytes but the file holds 0 of them"),
            std::string::npos)
      << error_of([&] { read_shard_meta(dir.path("huge.h5")); });

  write_raw(dir.path("len.h5"), [](hid_t f) {
    std::vector<uint8_t> x(8);
    std::vector<int64_t> y(3);
    h5::write_dataset(f, "x", {2, 4}, x.data());
    h5::write_dataset(f, "y", {3}, y.data());
    h5::write_attr(f, "num_classes", int64_t{2});
  });
  EXPECT_NE(error_of([&] { read_shard_meta(dir.path("len.h5")); }).find("x has 2 samples but y has 3"),
            std::string::npos);

  write_raw(dir.path("dtype.h5"), [](hid_t f) {
    std::vector<int64_t> x(8), y(2);
    h5::write_dataset(f, "x", {2, 4}, x.data());
    h5::write_dataset(f, "y", {2}, y.data());
  });
  EXPECT_NE(error_of([&] { read_shard_meta(dir.path("dtype.h5")); }).find("'x' has type int64"), std::string::npos);

  write_raw(dir.path("label.h5"), [](hid_t f) {
    std::vector<float> x(8);
    std::vector<int64_t> y = {1, 7};
    h5::write_dataset(f, "x", {2, 4}, x.data());
    h5::write_dataset(f, "y", {2}, y.data());
    h5::write_attr(f, "num_classes", int64_t{5});
  });
  EXPECT_NE(error_of([&] { read_shard_meta(dir.path("label.h5")); }).find("label 7 at sample 1 is out of range"),
            std::string::npos);

  write_raw(dir.path("empty.h5"), [](hid_t f) {
    h5::write_dataset(f, "x", {0, 4}, static_cast<const float*>(nullptr));
    h5::write_dataset(f, "y", {0}, static_cast<const int64_t*>(nullptr));
  });
  EXPECT_NE(error_of([&] { read_shard_meta(dir.path("empty.h5")); }).find("is empty"), std::string::npos);
}

// Token data: x [N, T] ids, y [N, T] next-token labels; the loader hands T labels a sample, row-major.
ShardMeta token_meta(int64_t samples, int64_t tokens) {
  ShardMeta meta;
  meta.samples = samples;
  meta.sample_shape = {tokens};
  meta.x_type = PixelType::u8;
  meta.num_classes = 256;
  meta.tokens = tokens;
  meta.tokenizer = "bytes";
  return meta;
}

TEST(Shard, TokenShardsRoundTripAndBatchAPerPositionLabel) {
  TempDir dir;
  const ShardMeta meta = token_meta(4, 4);
  ShardData data;
  for (uint8_t i = 0; i < 16; ++i) data.x_u8.push_back(static_cast<uint8_t>(100 + i));
  for (int64_t i = 0; i < 16; ++i) data.labels.push_back(101 + i);
  write_shard(dir.path("t.h5"), meta, data);
  const ShardMeta back = read_shard_meta(dir.path("t.h5"));
  EXPECT_EQ(back.tokens, 4);
  EXPECT_EQ(back.tokenizer, "bytes");
  EXPECT_EQ(back.labels_per_sample(), 4);
  EXPECT_EQ(read_shard_data(back).labels, data.labels);

  const std::vector<Batch> batches = batches_of(ShardSet::open(dir.path("t.h5")), 2);
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(batches[0].x.shape(), (Shape{2, 4}));
  EXPECT_EQ(batches[0].y.labels, (std::vector<int32_t>{101, 102, 103, 104, 105, 106, 107, 108}));
  EXPECT_EQ(batches[0].x[5], 105.0f);
  EXPECT_EQ(batches[1].y.labels, (std::vector<int32_t>{109, 110, 111, 112, 113, 114, 115, 116}));

  // One label per sample and one per position are different tasks; so are two tokenizers.
  test::write_classification_shard(dir.path("c.h5"), 3, {4}, 256, 1);
  EXPECT_NE(error_of([&] { check_same_task(back, read_shard_meta(dir.path("c.h5"))); })
                .find("different labels per sample"),
            std::string::npos);
  ShardMeta other = back;
  other.tokenizer = "gpt2";
  EXPECT_NE(error_of([&] { check_compatible(back, other); }).find("different tokenizer ('gpt2' vs 'bytes')"),
            std::string::npos);
}

TEST(Shard, TokenIdsAndLabelsOutsideTheVocabularyAreRefusedNamingThePosition) {
  TempDir dir;
  auto write_tokens = [&](const std::string& name, const std::vector<float>& x, int64_t classes, float scale = 1.0f) {
    write_raw(dir.path(name), [&](hid_t f) {
      std::vector<int64_t> y(x.size(), 1);
      h5::write_dataset(f, "x", {2, 3}, x.data());
      h5::write_dataset(f, "y", {2, 3}, y.data());
      h5::write_attr(f, "num_classes", classes);
      h5::write_attr(f, "x_scale", std::vector<float>{scale});
    });
    return error_of([&] { read_shard_meta(dir.path(name)); });
  };
  EXPECT_EQ(write_tokens("ok.h5", {0, 1, 2, 3, 4, 9}, 10), "");
  EXPECT_NE(write_tokens("half.h5", {0, 1, 2, 3, 4, 3.5f}, 10)
                .find("token id 3.5 at sample 1 position 2 in shard '" + dir.path("half.h5") +
                      "' is not in the vocabulary of 10 (an integer in [0, 10))"),
            std::string::npos);
  EXPECT_NE(write_tokens("big.h5", {0, 10, 2, 3, 4, 5}, 10).find("token id 10 at sample 0 position 1"),
            std::string::npos);
  EXPECT_NE(write_tokens("scaled.h5", {0, 1, 2, 3, 4, 5}, 10, 0.5f).find("x_scale/x_shift normalise them"),
            std::string::npos);

  write_raw(dir.path("bytes.h5"), [](hid_t f) {
    std::vector<uint8_t> x = {1, 2, 3, 4, 200, 6};
    std::vector<int64_t> y = {1, 2, 3, 4, 5, 6};
    h5::write_dataset(f, "x", {2, 3}, x.data());
    h5::write_dataset(f, "y", {2, 3}, y.data());
    h5::write_attr(f, "num_classes", int64_t{100});
  });
  EXPECT_NE(error_of([&] { read_shard_meta(dir.path("bytes.h5")); }).find("token id 200 at sample 1 position 1"),
            std::string::npos);
  write_raw(dir.path("label.h5"), [](hid_t f) {
    std::vector<uint8_t> x(6);
    std::vector<int64_t> y = {1, 2, 3, 4, 5, 300};
    h5::write_dataset(f, "x", {2, 3}, x.data());
    h5::write_dataset(f, "y", {2, 3}, y.data());
    h5::write_attr(f, "num_classes", int64_t{256});
  });
  EXPECT_NE(error_of([&] { read_shard_meta(dir.path("label.h5")); })
                .find("label 300 at sample 1 position 2 is out of range [0, 256)"),
            std::string::npos);
  write_raw(dir.path("shape.h5"), [](hid_t f) {
    std::vector<uint8_t> x(8);
    std::vector<int64_t> y(6);
    h5::write_dataset(f, "x", {2, 4}, x.data());
    h5::write_dataset(f, "y", {2, 3}, y.data());
    h5::write_attr(f, "num_classes", int64_t{256});
  });
  EXPECT_NE(error_of([&] { read_shard_meta(dir.path("shape.h5")); })
                .find("dataset 'y' is int64 [2, 3] beside x [2, 4]"),
            std::string::npos)
      << error_of([&] { read_shard_meta(dir.path("shape.h5")); });
}

TEST(ShardSet, OpensDirectoriesAndGlobsAndRejectsMismatchedShards) {
  TempDir dir;
  test::write_classification_shard(dir.path("train-00000.h5"), 5, {3}, 2, 1);
  test::write_classification_shard(dir.path("train-00001.h5"), 4, {3}, 2, 2);
  EXPECT_EQ(ShardSet::open(ShardSet::split_pattern(dir.path(), Split::train)).samples(), 9);
  EXPECT_EQ(ShardSet::open(dir.path()).shards().size(), 2u);
  EXPECT_NE(error_of([&] { ShardSet::open(dir.path("val-*.h5")); }).find("no shards match"), std::string::npos);
  test::write_classification_shard(dir.path("train-00002.h5"), 4, {4}, 2, 3);
  EXPECT_NE(error_of([&] { ShardSet::open(dir.path()); }).find("different sample shape"), std::string::npos);
}

TEST(EpochOrder, IsAPermutationThatChangesPerEpochAndRespectsWindows) {
  const std::vector<int64_t> sizes = {5, 7, 3, 6};
  const auto a = epoch_order(sizes, true, 1, 0, 0), b = epoch_order(sizes, true, 1, 1, 0);
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 21; ++i) EXPECT_EQ(sorted[static_cast<size_t>(i)], i);
  EXPECT_NE(a, b);
  EXPECT_EQ(a, epoch_order(sizes, true, 1, 0, 0));
  // With a window of one shard, each shard's samples stay together.
  const auto w = epoch_order(sizes, true, 1, 0, 1);
  auto shard_of = [](int64_t g) { return g < 5 ? 0 : g < 12 ? 1 : g < 15 ? 2 : 3; };
  int changes = 0;
  for (size_t i = 1; i < w.size(); ++i) changes += shard_of(w[i]) != shard_of(w[i - 1]);
  EXPECT_EQ(changes, 3);
  EXPECT_EQ(epoch_order(sizes, false, 1, 0, 0), sorted);
}

std::vector<int32_t> labels_seen(const ShardSet& set, LoaderConfig c, int64_t epoch) {
  BatchLoader loader(set, c);
  loader.start_epoch(epoch);
  Batch b;
  std::vector<int32_t> out;
  while (loader.next(b)) out.insert(out.end(), b.y.labels.begin(), b.y.labels.end());
  return out;
}

// Two shards of 13 and 11 samples whose labels are the global sample index, so batches compare by label.
ShardSet index_labelled_shards(const TempDir& dir) {
  test::write_classification_shard(dir.path("a.h5"), 13, {2}, 1000, 1, 0);
  test::write_classification_shard(dir.path("b.h5"), 11, {2}, 1000, 2, 13);
  return ShardSet::open(dir.path());
}

TEST(BatchLoader, RanksSplitEachGlobalBatchExactlyAsOneRankSeesIt) {
  TempDir dir;
  const ShardSet set = index_labelled_shards(dir);
  LoaderConfig one;
  one.batch = 6;
  one.seed = 9;
  one.prefetch = 2;
  const auto whole = labels_seen(set, one, 3);
  ASSERT_EQ(whole.size(), 24u);  // 4 global batches of 6
  LoaderConfig r = one;
  r.batch = 2;
  r.world = 3;
  std::vector<std::vector<int32_t>> per_rank;
  for (r.rank = 0; r.rank < 3; ++r.rank) per_rank.push_back(labels_seen(set, r, 3));
  for (size_t k = 0; k < 4; ++k)
    for (size_t rank = 0; rank < 3; ++rank)
      for (size_t i = 0; i < 2; ++i) EXPECT_EQ(per_rank[rank][k * 2 + i], whole[k * 6 + rank * 2 + i]);
}

// A resumed pass starts at a position of the job's order that another global batch left (a checkpoint of
// another number of ranks): the ranks read on from there, global batch after global batch, until fewer than
// one are left; no sample is read twice or passed over.
TEST(BatchLoader, APassStartedAtAnyPositionReadsOnInTheSameOrder) {
  TempDir dir;
  const ShardSet set = index_labelled_shards(dir);
  LoaderConfig one;
  one.batch = 6;
  one.seed = 9;
  const auto whole = labels_seen(set, one, 3);
  ASSERT_EQ(whole.size(), 24u);
  // 3 ranks of batch 3 from position 6 (one rank's second batch): 2 global batches of 9, samples 6..23.
  LoaderConfig r = one;
  r.batch = 3;
  r.world = 3;
  for (r.rank = 0; r.rank < 3; ++r.rank) {
    BatchLoader loader(set, r);
    EXPECT_EQ(loader.global_batch(), 9);
    EXPECT_EQ(loader.batches_per_epoch(), 2);
    EXPECT_EQ(loader.batches_from(6), 2);
    EXPECT_EQ(loader.batches_from(16), 0);  // 8 left: less than a global batch
    loader.start_epoch(3, 6);
    Batch b;
    for (size_t k = 0; k < 2; ++k) {
      ASSERT_TRUE(loader.next(b));
      for (size_t i = 0; i < 3; ++i) EXPECT_EQ(b.y.labels[i], whole[6 + k * 9 + static_cast<size_t>(r.rank) * 3 + i]);
    }
    EXPECT_FALSE(loader.next(b));
  }
}

// --prefetch 0: no batch read ahead, each read when it is asked for; the same batches as with read-ahead.
TEST(BatchLoader, WithoutPrefetchEachBatchIsReadWhenAskedFor) {
  TempDir dir;
  test::write_classification_shard(dir.path("a.h5"), 24, {2}, 1000, 1, 0);
  const ShardSet set = ShardSet::open(dir.path());
  LoaderConfig c;
  c.batch = 4;
  c.seed = 3;
  const auto ahead = labels_seen(set, c, 1);
  c.prefetch = 0;
  EXPECT_EQ(labels_seen(set, c, 1), ahead);
  EXPECT_EQ(ahead.size(), 24u);
}

TEST(BatchLoader, DropLastAndEvaluationCoverage) {
  TempDir dir;
  test::write_classification_shard(dir.path("a.h5"), 10, {2}, 100, 1, 0);
  const ShardSet set = ShardSet::open(dir.path());
  LoaderConfig c;
  c.batch = 4;
  EXPECT_EQ(BatchLoader(set, c).batches_per_epoch(), 2);
  c.drop_last = false;
  c.shuffle = false;
  EXPECT_EQ(labels_seen(set, c, 0).size(), 10u);
  // Two ranks without drop_last: every sample exactly once over both.
  c.world = 2;
  std::multiset<int32_t> seen;
  for (c.rank = 0; c.rank < 2; ++c.rank)
    for (int32_t l : labels_seen(set, c, 0)) seen.insert(l);
  EXPECT_EQ(seen.size(), 10u);
  EXPECT_EQ(std::set<int32_t>(seen.begin(), seen.end()).size(), 10u);
}

TEST(BatchLoader, NormalisesAndShufflesWindowByWindow) {
  TempDir dir;
  ShardMeta meta;
  meta.samples = 4;
  meta.sample_shape = {2};
  meta.x_type = PixelType::u8;
  meta.num_classes = 4;
  meta.x_scale = {0.5f, 2.0f};
  meta.x_shift = {1.0f};
  ShardData data;
  data.x_u8 = {0, 1, 2, 3, 4, 5, 6, 7};
  data.labels = {0, 1, 2, 3};
  write_shard(dir.path("a.h5"), meta, data);
  const ShardSet set = ShardSet::open(dir.path());
  const std::vector<Batch> batches = batches_of(set, 4);
  ASSERT_EQ(batches.size(), 1u);
  const Batch& b = batches[0];
  EXPECT_EQ(b.x.shape(), (Shape{4, 2}));
  EXPECT_FLOAT_EQ(b.x[2], 2 * 0.5f + 1.0f);
  EXPECT_FLOAT_EQ(b.x[3], 3 * 2.0f + 1.0f);
}

TEST(BatchLoader, ReaderErrorsReachTheTrainingThread) {
  TempDir dir;
  test::write_classification_shard(dir.path("a.h5"), 8, {2}, 2, 1);
  const ShardSet set = ShardSet::open(dir.path());
  std::filesystem::remove(dir.path("a.h5"));  // vanishes after it was checked
  LoaderConfig c;
  c.batch = 4;
  BatchLoader loader(set, c);
  loader.start_epoch(0);
  Batch b;
  EXPECT_THROW(loader.next(b), Error);
}

}  // namespace
}  // namespace ringtrain
