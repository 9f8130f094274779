// Synthetic data (data/synthetic.hpp): each sample a function of the seed, the split and its index, the same
// whatever the ranks; the loader's slices of it; training, checkpoints and eval on it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "ringtrain/data/loader.hpp"
#include "ringtrain/data/synthetic.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/train/eval.hpp"
#include "ringtrain/train/trainer.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

using test::TempDir;

std::vector<float> values_of(const SyntheticSource& source, int64_t index) {
  std::vector<float> x(static_cast<size_t>(source.meta().features()));
  source.values(index, x.data());
  return x;
}

TEST(Synthetic, ASampleIsAFunctionOfTheSeedTheSplitAndItsIndex) {
  const SyntheticData data{{3, 5, 7}, 10, 100};
  const SyntheticSource one_rank(data, 7, Split::train, 1), four_ranks(data, 7, Split::train, 4);
  for (int64_t i : {0, 1, 57, 99}) {
    EXPECT_EQ(values_of(one_rank, i), values_of(four_ranks, i)) << i;
    EXPECT_EQ(one_rank.label(i), four_ranks.label(i)) << i;
  }
  EXPECT_NE(values_of(one_rank, 3), values_of(one_rank, 4));
  const SyntheticSource other_seed(data, 8, Split::train, 1), other_split(data, 7, Split::test, 1);
  EXPECT_NE(values_of(one_rank, 3), values_of(other_seed, 3));
  EXPECT_NE(values_of(one_rank, 3), values_of(other_split, 3));
  int same_labels = 0;
  for (int64_t i = 0; i < 100; ++i) same_labels += one_rank.label(i) == other_seed.label(i);
  EXPECT_LT(same_labels, 30) << "another seed draws other labels (10 classes: about 10 agree by chance)";
}

TEST(Synthetic, ValuesAreStandardisedNoiseAndLabelsCoverTheClasses) {
  const SyntheticSource source({{999}, 7, 2100}, 0, Split::train, 1);  // an odd count: the last value of a pair
  double sum = 0, squares = 0, n = 0;
  for (int64_t i = 0; i < 100; ++i)
    for (float v : values_of(source, i)) {
      ASSERT_TRUE(std::isfinite(v));
      ASSERT_LE(std::fabs(v), std::sqrt(3.0f));
      sum += v, squares += double(v) * v, ++n;
    }
  EXPECT_NEAR(sum / n, 0.0, 0.02);
  EXPECT_NEAR(squares / n, 1.0, 0.02);
  std::vector<int> per_class(7);
  for (int64_t i = 0; i < 2100; ++i) {
    const int32_t label = source.label(i);
    ASSERT_GE(label, 0);
    ASSERT_LT(label, 7);
    ++per_class[static_cast<size_t>(label)];
  }
  for (int count : per_class) EXPECT_NEAR(count, 300, 75);
}

TEST(Synthetic, AnEpochIs1280SamplesPerReplicaUnlessGiven) {
  EXPECT_EQ(SyntheticSource({{4}, 2}, 0, Split::train, 1).samples(), 1280);
  EXPECT_EQ(SyntheticSource({{4}, 2}, 0, Split::train, 3).samples(), 3840);
  const SyntheticSource given({{2, 3}, 5, 50}, 0, Split::train, 3);
  EXPECT_EQ(given.samples(), 50);
  EXPECT_EQ(given.block_sizes(), std::vector<int64_t>{50});
  EXPECT_TRUE(given.paths().empty());
  EXPECT_EQ(given.meta().sample_shape, (Shape{2, 3}));
  EXPECT_EQ(given.meta().num_classes, 5);
  EXPECT_EQ(given.meta().x_type, PixelType::f32);
  EXPECT_EQ(synthetic_spec({{3, 224, 224}, 1000}), "synthetic:3x224x224:1000");
  EXPECT_EQ(given.meta().path, "synthetic:2x3:5:50");
  EXPECT_EQ(given.origin(), "made in memory (synthetic:2x3:5:50, 5 classes)");
}

// Every batch of an epoch, its values and labels, as one rank of `world` with `batch` samples gets them.
std::pair<std::vector<float>, std::vector<int32_t>> epoch_of(const SampleSource& source, int64_t batch, int rank,
                                                             int world) {
  LoaderConfig c;
  c.batch = batch;
  c.seed = 11;
  c.rank = rank;
  c.world = world;
  BatchLoader loader(source, c);
  loader.start_epoch(2);
  std::pair<std::vector<float>, std::vector<int32_t>> out;
  for (Batch b; loader.next(b);) {
    out.first.insert(out.first.end(), b.x.data(), b.x.data() + b.x.numel());
    out.second.insert(out.second.end(), b.y.labels.begin(), b.y.labels.end());
  }
  return out;
}

// Rank r of 3 with batch 2 gets samples [k*6 + 2r, k*6 + 2r + 2) of the one-rank batch k of 6.
TEST(Synthetic, EachRanksSliceIsTheOneRankBatchsSlice) {
  const SyntheticSource source({{2, 3}, 5, 24}, 11, Split::train, 1);
  const auto [x, labels] = epoch_of(source, 6, 0, 1);
  ASSERT_EQ(labels.size(), 24u);
  for (int rank = 0; rank < 3; ++rank) {
    const auto [rx, rlabels] = epoch_of(source, 2, rank, 3);
    ASSERT_EQ(rlabels.size(), 8u);
    for (size_t k = 0; k < 4; ++k)
      for (size_t i = 0; i < 2; ++i) {
        const size_t mine = k * 2 + i, whole = k * 6 + static_cast<size_t>(rank) * 2 + i;
        EXPECT_EQ(rlabels[mine], labels[whole]);
        for (size_t f = 0; f < 6; ++f) EXPECT_EQ(rx[mine * 6 + f], x[whole * 6 + f]);
      }
  }
}

TrainConfig synthetic_run(const SyntheticData& data) {
  TrainConfig c = test::train_config("", {.model = "conv(4,3,pad=1),relu,maxpool(2),flatten,linear(out)", .batch = 8});
  c.data.synthetic = data;
  return c;
}

TEST(Synthetic, TrainsWithoutValidationOrTest) {
  std::ostringstream log;
  const TrainResult r = Trainer(synthetic_run({{3, 8, 8}, 4, 64}), test::world()).run(log);
  EXPECT_EQ(r.steps, 8);
  ASSERT_EQ(r.epochs.size(), 1u);
  EXPECT_EQ(r.epochs[0].train.samples, 64);
  EXPECT_EQ(r.epochs[0].val.samples, 0);
  EXPECT_EQ(r.test.samples, 0);
  EXPECT_NE(log.str().find("64 training samples made in memory (synthetic:3x8x8:4:64, 4 classes), 8 steps per epoch"),
            std::string::npos)
      << log.str();
  EXPECT_EQ(log.str().find("val_"), std::string::npos) << log.str();
}

// --val shards beside synthetic data need only fit its model (their type and normalisation are their own).
TEST(Synthetic, ValidatesOnShardsOfTheSameShape) {
  TempDir dir;
  test::write_classification_shard(dir.path("val.h5"), 16, {6}, 3, 1);
  test::write_classification_shard(dir.path("other.h5"), 16, {5}, 3, 1);
  TrainConfig c = synthetic_run({{6}, 3, 32});
  c.model = "flatten,linear(out)";
  c.data.val = dir.path("val.h5");
  std::ostringstream log;
  EXPECT_EQ(Trainer(c, test::world()).run(log).epochs.at(0).val.samples, 16);
  c.data.val = dir.path("other.h5");
  try {
    Trainer(c, test::world());
    ADD_FAILURE() << "a validation split of another shape was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not match 'synthetic:6:3:32': different sample shape [5] vs [6]"),
              std::string::npos)
        << e.what();
  }
}

bool same_weights(Trainer& a, Trainer& b) {
  const auto &pa = a.model().params(), &pb = b.model().params();
  for (size_t i = 0; i < pa.size(); ++i)
    if (std::memcmp(pa[i]->value.data(), pb[i]->value.data(), sizeof(float) * static_cast<size_t>(pa[i]->value.numel())))
      return false;
  return pa.size() == pb.size();
}

// A run cut by a checkpoint and resumed ends bitwise like the whole run; another spec is another run's data.
TEST(Synthetic, ResumesFromACheckpointAndRefusesOtherSyntheticData) {
  TempDir dir;
  TrainConfig cut = synthetic_run({{1, 6, 6}, 3, 32});
  cut.epochs = 2;
  std::ostringstream log;
  Trainer whole(cut, test::world());
  whole.run(log);

  cut.checkpoint_dir = dir.path("ckpt");
  cut.max_steps = 6;  // inside epoch 2
  Trainer(cut, test::world()).run(log);
  TrainConfig rest = cut;
  rest.max_steps = 0;
  rest.resume = {ResumeFrom::newest, ""};
  {
    Trainer resumed(rest, test::world());  // holds the checkpoint directory's lock while it lives
    EXPECT_EQ(resumed.run(log).steps, 8);
    EXPECT_TRUE(same_weights(whole, resumed));
  }
  rest.data.synthetic = SyntheticData{{1, 6, 6}, 3, 40};
  try {
    Trainer(rest, test::world()).run(log);
    ADD_FAILURE() << "resumed on other synthetic data";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot resume: "), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("training data is '32 samples of [1, 6, 6] made in memory "
                                         "(synthetic:1x6x6:3:32, 3 classes)' in the checkpoint but '40 samples"),
              std::string::npos)
        << e.what();
  }
}

TEST(Synthetic, EvalScoresSyntheticSamples) {
  TempDir dir;
  TrainConfig c = synthetic_run({{3, 8, 8}, 4, 32});
  c.save_model = dir.path("m.h5");
  std::ostringstream log;
  Trainer(c, test::world()).run(log);
  EvalConfig e;
  e.model_file = c.save_model;
  e.data.synthetic = SyntheticData{{3, 8, 8}, 4, 100};
  EXPECT_EQ(evaluate_saved_model(e, test::world(), log).samples, 100);
  e.data.synthetic = SyntheticData{{3, 8, 8}, 5, 100};
  EXPECT_THROW(evaluate_saved_model(e, test::world(), log), Error);
}

// Synthetic tokens: windows of T + 1 ids in [0, V), x the first T and the labels the last T, a pure function
// of (seed, split, index) as other synthetic samples are; the loader puts T labels a sample in the batch.
TEST(Synthetic, TokenWindowsAreNextTokenTasks) {
  const SyntheticData data{{16}, 50, 40, true};
  EXPECT_EQ(synthetic_spec(data), "synthetic-tokens:16:50:40");
  const SyntheticSource source(data, 3, Split::train, 1), again(data, 3, Split::train, 2), other(data, 3, Split::val, 1);
  EXPECT_EQ(source.meta().tokens, 16);
  EXPECT_EQ(source.meta().num_classes, 50);
  EXPECT_EQ(source.meta().sample_shape, Shape{16});
  EXPECT_EQ(source.origin(), "made in memory (synthetic-tokens:16:50:40, windows of 16 tokens, vocabulary 50)");
  std::vector<int> seen(50);
  for (int64_t i : {0, 7, 39}) {
    std::vector<float> x(16), x2(16), x3(16);
    std::vector<int32_t> y(16), y2(16), y3(16);
    source.window(i, x.data(), y.data());
    again.window(i, x2.data(), y2.data());
    other.window(i, x3.data(), y3.data());
    EXPECT_EQ(x, x2);
    EXPECT_EQ(y, y2);
    EXPECT_NE(x, x3);
    for (size_t j = 0; j < 16; ++j) {
      ASSERT_EQ(x[j], std::floor(x[j]));
      ASSERT_GE(x[j], 0.0f);
      ASSERT_LT(x[j], 50.0f);
      ASSERT_GE(y[j], 0);
      ASSERT_LT(y[j], 50);
      if (j + 1 < 16) {
        EXPECT_EQ(static_cast<float>(y[j]), x[j + 1]) << "label j is token j + 1";
      }
      ++seen[static_cast<size_t>(y[j])];
    }
  }
  EXPECT_GT(std::count_if(seen.begin(), seen.end(), [](int n) { return n > 0; }), 25) << "ids spread over V";

  const auto [x, labels] = epoch_of(source, 8, 0, 1);  // shuffled: each sample's labels follow its ids
  ASSERT_EQ(labels.size(), 40u * 16u);
  ASSERT_EQ(x.size(), 40u * 16u);
  for (size_t k = 0; k < 40; ++k) {
    for (size_t j = 0; j + 1 < 16; ++j) {
      ASSERT_EQ(static_cast<float>(labels[k * 16 + j]), x[k * 16 + j + 1]);
    }
  }
}

}  // namespace
}  // namespace ringtrain
