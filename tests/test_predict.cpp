// ringtrain predict: the pieces (each rank's share, a source's range, IDX images, the output files, the
// forward pass in the input's order) and the command end to end. N ranks against one rank, and the report
// against scikit-learn, are tests/report_vs_sklearn.py.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include "ringtrain/data/hdf5.hpp"
#include "ringtrain/data/idx.hpp"
#include "ringtrain/data/sample_range.hpp"
#include "ringtrain/data/shard_set.hpp"
#include "ringtrain/tensor/device.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/train/inference.hpp"
#include "ringtrain/train/model_file.hpp"
#include "ringtrain/train/predict.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

using test::run_cli;
using test::TempDir;

using Range = std::pair<int64_t, int64_t>;

TEST(ShareOf, ContiguousWholeBatchesInRankOrder) {
  // 10 samples in batches of 1: 4, 3 and 3 of them.
  EXPECT_EQ(share_of(10, 1, 0, 3), (Range{0, 4}));
  EXPECT_EQ(share_of(10, 1, 1, 3), (Range{4, 7}));
  EXPECT_EQ(share_of(10, 1, 2, 3), (Range{7, 10}));
  // 70 samples in batches of 8: 9 batches, the last of 6 samples, 3 a rank.
  EXPECT_EQ(share_of(70, 8, 0, 3), (Range{0, 24}));
  EXPECT_EQ(share_of(70, 8, 1, 3), (Range{24, 48}));
  EXPECT_EQ(share_of(70, 8, 2, 3), (Range{48, 70}));
  // Fewer batches than ranks: the last ones score none.
  EXPECT_EQ(share_of(20, 8, 2, 4), (Range{16, 20}));
  EXPECT_EQ(share_of(20, 8, 3, 4), (Range{20, 20}));
}

TEST(SampleRange, CutsTheBlocksAndShiftsTheReads) {
  TempDir dir;
  test::write_classification_shard(dir.path("a.h5"), 150, {4}, 3, 1);
  test::write_classification_shard(dir.path("b.h5"), 170, {4}, 3, 2);
  const ShardSet whole = ShardSet::open(dir.path());
  const SampleRange range(whole, 100, 200);
  EXPECT_EQ(range.samples(), 100);
  EXPECT_EQ(range.block_sizes(), (std::vector<int64_t>{50, 50}));
  Targets a, b;
  a.labels.resize(1), b.labels.resize(1);
  float xa[4], xb[4];
  whole.reader(0)->read(160, xa, a, 0);
  range.reader(0)->read(60, xb, b, 0);
  EXPECT_EQ(std::vector<float>(xa, xa + 4), std::vector<float>(xb, xb + 4));
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_THROW(SampleRange(whole, 300, 400), Error);
}

// An IDX file of unsigned bytes, gzip-compressed (as Debian ships Fashion-MNIST): dims, then the bytes.
void write_idx(const std::string& path, const std::vector<uint32_t>& dims, const std::vector<uint8_t>& bytes) {
  std::string data = {0, 0, 8, static_cast<char>(dims.size())};
  for (uint32_t d : dims)
    for (int shift : {24, 16, 8, 0}) data += static_cast<char>((d >> shift) & 0xff);
  data.append(bytes.begin(), bytes.end());
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  gzwrite(f, data.data(), static_cast<unsigned>(data.size()));
  gzclose(f);
}

TEST(IdxImages, SamplesAreStandardisedImagesOfOneChannel) {
  TempDir dir;
  std::vector<uint8_t> pixels(3 * 2 * 2);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(20 * i);
  write_idx(dir.path("images.gz"), {3, 2, 2}, pixels);
  EXPECT_TRUE(looks_like_idx(dir.path("images.gz")));
  const IdxImages images(dir.path("images.gz"), 0.5f, -1.0f);
  EXPECT_EQ(images.samples(), 3);
  EXPECT_EQ(images.meta().sample_shape, (Shape{1, 2, 2}));
  EXPECT_FALSE(images.meta().classification());
  Targets none;
  float x[4];
  images.reader(0)->read(1, x, none, 0);
  for (int f = 0; f < 4; ++f) EXPECT_FLOAT_EQ(x[f], static_cast<float>(20 * (4 + f)) * 0.5f - 1.0f);
  write_idx(dir.path("empty.gz"), {0, 2, 2}, {});
  EXPECT_THROW(IdxImages(dir.path("empty.gz"), 1.0f, 0.0f), Error);
  test::write_classification_shard(dir.path("shard.h5"), 4, {4}, 2, 1);
  EXPECT_FALSE(looks_like_idx(dir.path("shard.h5")));
}

// A small classifier's predictions for the shard in `dir`, one rank.
struct Classifier {
  TempDir dir;
  std::unique_ptr<ShardSet> data;
  std::unique_ptr<Model> model = std::make_unique<Model>("flatten,linear(3)", Shape{1, 4, 4}, 3, 7);
  Classifier() {
    test::write_classification_shard(dir.path("test-00000.h5"), 70, {1, 4, 4}, 3, 5);
    data = std::make_unique<ShardSet>(ShardSet::open(dir.path()));
  }
};

TEST(PredictShare, ProbabilitiesAndClassesOfEverySampleInOrder) {
  Classifier c;
  const Predictions p = predict_share(*c.model, TargetSpace{true}, *c.data, {16, 2}, 0, 1);
  ASSERT_EQ(p.rows(), 70);
  ASSERT_EQ(p.labels.size(), 70u);
  // The whole shard in one forward pass, against which each batch of 16 must agree.
  Batch all;
  BatchLoader loader(*c.data, {.batch = 70, .shuffle = false, .drop_last = false});
  loader.start_epoch(0);
  ASSERT_TRUE(loader.next(all));
  const Tensor logits = c.model->forward(all.x, Mode::eval);
  for (int64_t i = 0; i < 70; ++i) {
    double sum = 0.0, exp_sum = 0.0;
    int best = 0;
    for (int k = 0; k < 3; ++k) {
      exp_sum += std::exp(static_cast<double>(logits[i * 3 + k]));
      if (logits[i * 3 + k] > logits[i * 3 + best]) best = k;
    }
    for (int k = 0; k < 3; ++k) {
      const float prob = p.values[static_cast<size_t>(i * 3 + k)];
      EXPECT_NEAR(prob, std::exp(static_cast<double>(logits[i * 3 + k])) / exp_sum, 1e-6) << i;
      sum += prob;
    }
    EXPECT_NEAR(sum, 1.0, 1e-6);
    EXPECT_EQ(p.predicted[static_cast<size_t>(i)], best) << i;
    EXPECT_EQ(p.labels[static_cast<size_t>(i)], all.y.labels[static_cast<size_t>(i)]) << i;
  }
}

// Bit for bit: each sample is in the same batch on any number of ranks.
TEST(PredictShare, EachRankScoresItsShareAndTheSharesMakeTheWhole) {
  Classifier c;
  const Predictions whole = predict_share(*c.model, TargetSpace{true}, *c.data, {8, 2}, 0, 1);
  std::vector<float> joined;
  for (int r = 0; r < 4; ++r) {
    const Predictions part = predict_share(*c.model, TargetSpace{true}, *c.data, {8, 2}, r, 4);
    EXPECT_EQ(part.first, share_of(70, 8, r, 4).first);
    joined.insert(joined.end(), part.values.begin(), part.values.end());
  }
  EXPECT_EQ(joined, whole.values);
}

TEST(PredictShare, RegressionValuesAreInTheTargetsUnits) {
  Classifier c;
  Model model("flatten,linear(2)", Shape{1, 4, 4}, 2, 3);
  const TargetSpace task{false, 4.0f, -2.0f};  // stored = raw * 4 - 2
  const Predictions p = predict_share(model, task, *c.data, {32, 1}, 0, 1);
  ASSERT_EQ(p.rows(), 70);
  EXPECT_TRUE(p.predicted.empty());
  Batch all;
  BatchLoader loader(*c.data, {.batch = 70, .shuffle = false, .drop_last = false});
  loader.start_epoch(0);
  ASSERT_TRUE(loader.next(all));
  const Tensor out = model.forward(all.x, Mode::eval);
  for (int64_t i = 0; i < out.numel(); ++i)
    EXPECT_FLOAT_EQ(p.values[static_cast<size_t>(i)], static_cast<float>((out[i] + 2.0) / 4.0)) << i;
}

TEST(PredictShare, AnOutputThatIsNotFiniteNamesTheSample) {
  Classifier c;
  c.model->named_params()[0].param->value[5] = std::numeric_limits<float>::quiet_NaN();
  try {
    predict_share(*c.model, TargetSpace{true}, *c.data, {16, 2}, 0, 1);
    FAIL() << "NaN outputs were written";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the model's output for sample 0 is not finite"), std::string::npos) << e.what();
  }
}

TEST(PredictionFile, CsvAndHdf5HoldTheSameRows) {
  TempDir dir;
  Predictions p;
  p.width = 2;
  p.values = {0.25f, 0.75f, 0.1f, 0.9f, 1.0f / 3.0f, 2.0f / 3.0f};
  p.predicted = {1, 1, 1};
  write_predictions(dir.path("p.csv"), PredictionFormat::csv, p);
  EXPECT_EQ(test::read_text(dir.path("p.csv")),
            "index,predicted,p_0,p_1\n0,1,0.25,0.75\n1,1,0.1,0.9\n2,1,0.33333334,0.6666667\n");
  write_predictions(dir.path("p.h5"), PredictionFormat::hdf5, p);
  auto lock = h5::lock_library();
  const h5::H5Id file = h5::open_sealed_file(dir.path("p.h5"));
  std::vector<int64_t> index, predicted;
  std::vector<float> probabilities;
  h5::read_i64(file.get(), "index", index);
  h5::read_i64(file.get(), "predicted", predicted);
  h5::read_f32(file.get(), "probabilities", probabilities);
  EXPECT_EQ(index, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(predicted, (std::vector<int64_t>{1, 1, 1}));
  EXPECT_EQ(probabilities, p.values);
  EXPECT_EQ(h5::dataset_info(file.get(), dir.path("p.h5"), "probabilities").dims, (Shape{3, 2}));
}

TEST(PredictionFile, RegressionColumnsAreValues) {
  TempDir dir;
  Predictions p;
  p.classification = false;
  p.width = 1;
  p.values = {1.5f, -2.0f};
  write_predictions(dir.path("p.csv"), PredictionFormat::csv, p);
  EXPECT_EQ(test::read_text(dir.path("p.csv")), "index,value\n0,1.5\n1,-2\n");
}

// The command through the binary: a model trained once on the suite's shards.
class PredictCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_ = new TempDir;
    for (const char* split : {"train", "test"})
      test::write_classification_shard(data_->path(std::string(split) + "-00000.h5"), 64, {1, 4, 4}, 3, split[1]);
    std::string err;
    trained_ = run_cli("train --data " + data_->path() + " --model \"flatten,linear(8),relu,linear(out)\" --epochs 2 "
                       "--batch 8 --checkpoint-dir " + data_->path("ckpt") + " --save " + data_->path("m.h5"),
                       nullptr, &err) == 0;
    if (!trained_) std::fprintf(stderr, "%s", err.c_str());
  }
  static void TearDownTestSuite() { delete data_; }
  void SetUp() override { ASSERT_TRUE(trained_) << "the suite's model could not be trained"; }

  int cli(const std::string& args) { return run_cli(args, &out_, &err_); }
  std::string predict(const std::string& args) { return "predict --model-file " + data_->path("m.h5") + " " + args; }

  static inline TempDir* data_ = nullptr;
  static inline bool trained_ = false;
  const TempDir& shards_ = *data_;  // the model, its checkpoints and the shards: read only
  TempDir dir_;                      // each test's outputs
  std::string out_, err_;
};

TEST_F(PredictCli, WritesCsvAndHdf5OfTheTestSplitInOrder) {
  ASSERT_EQ(cli(predict("--input " + shards_.path() + " --out " + dir_.path("p.csv") + " --batch 10")), 0) << err_;
  EXPECT_NE(out_.find("predicting 64 samples in 1 shard on 1 rank"), std::string::npos) << out_;
  EXPECT_NE(out_.find("wrote 64 rows to " + dir_.path("p.csv") + " ("), std::string::npos) << out_;
  EXPECT_NE(out_.find(" samples/s)"), std::string::npos) << out_;
  ASSERT_EQ(cli(predict("--input " + shards_.path("test-00000.h5") + " --out " + dir_.path("p.h5"))), 0) << err_;
  // The CSV's rows are the HDF5 file's, float for float, in the input's order.
  std::istringstream csv(test::read_text(dir_.path("p.csv")));
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line, "index,predicted,p_0,p_1,p_2");
  auto lock = h5::lock_library();
  const h5::H5Id file = h5::open_sealed_file(dir_.path("p.h5"));
  std::vector<int64_t> predicted;
  std::vector<float> probabilities;
  h5::read_i64(file.get(), "predicted", predicted);
  h5::read_f32(file.get(), "probabilities", probabilities);
  for (size_t i = 0; std::getline(csv, line); ++i) {
    std::istringstream row(line);
    std::string cell;
    std::vector<std::string> cells;
    while (std::getline(row, cell, ',')) cells.push_back(cell);
    ASSERT_EQ(cells.size(), 5u);
    EXPECT_EQ(cells[0], std::to_string(i));
    EXPECT_EQ(std::stoll(cells[1]), predicted[i]);
    for (size_t k = 0; k < 3; ++k) EXPECT_EQ(std::stof(cells[2 + k]), probabilities[i * 3 + k]) << i;
  }
  EXPECT_EQ(predicted.size(), 64u);
}

TEST_F(PredictCli, ACheckpointPredictsAsTheSavedModel) {
  ASSERT_EQ(cli(predict("--input " + shards_.path() + " --out " + dir_.path("model.csv"))), 0) << err_;
  ASSERT_EQ(cli("predict --model-file " + shards_.path("ckpt/step-000000000016.h5") + " --input " + shards_.path() +
                " --out " + dir_.path("ckpt.csv")),
            0)
      << err_;
  EXPECT_EQ(test::read_text(dir_.path("model.csv")), test::read_text(dir_.path("ckpt.csv")));
}

// The CUDA engine's predictions: the CPU's, to float rounding (its GEMMs sum in another order). Skipped,
// saying why, where no GPU is usable.
TEST_F(PredictCli, OnTheGpuAsOnTheCpu) {
  const CudaProbe probe = probe_cuda();
  if (probe.device_count == 0) GTEST_SKIP() << "no GPU: " << probe.reason;
  ASSERT_EQ(cli(predict("--input " + shards_.path() + " --out " + dir_.path("cpu.h5"))), 0) << err_;
  ASSERT_EQ(cli(predict("--input " + shards_.path() + " --out " + dir_.path("gpu.h5") + " --device cuda")), 0) << err_;
  auto lock = h5::lock_library();
  std::vector<float> cpu, gpu;
  h5::read_f32(h5::open_sealed_file(dir_.path("cpu.h5")).get(), "probabilities", cpu);
  h5::read_f32(h5::open_sealed_file(dir_.path("gpu.h5")).get(), "probabilities", gpu);
  ASSERT_EQ(cpu.size(), gpu.size());
  for (size_t i = 0; i < cpu.size(); ++i) EXPECT_NEAR(cpu[i], gpu[i], 1e-5) << i;
}

TEST_F(PredictCli, OutputsThatMustNotBeWritten) {
  EXPECT_EQ(cli(predict("--input " + shards_.path() + " --out " + dir_.path("p.txt"))), 2);
  EXPECT_NE(err_.find("--out '" + dir_.path("p.txt") + "' must end in .csv or .h5 (.hdf5)"), std::string::npos) << err_;
  EXPECT_EQ(cli(predict("--input " + shards_.path() + " --out " + shards_.path("m.h5"))), 1);
  EXPECT_NE(err_.find("it is one of this run's inputs"), std::string::npos) << err_;
  EXPECT_EQ(cli(predict("--input " + shards_.path() + " --out " + shards_.path("test-00000.h5"))), 1);
  EXPECT_NE(err_.find("it is one of this run's inputs"), std::string::npos) << err_;
  EXPECT_EQ(cli(predict("--input " + shards_.path() + " --out " + dir_.path("none/p.csv"))), 1);
  EXPECT_NE(err_.find("directory '" + dir_.path("none") + "' does not exist"), std::string::npos) << err_;
  EXPECT_FALSE(std::filesystem::exists(dir_.path("p.txt")));
}

TEST_F(PredictCli, InputsThatDoNotFit) {
  write_idx(dir_.path("five.gz"), {2, 5, 5}, std::vector<uint8_t>(50, 3));
  EXPECT_EQ(cli(predict("--input " + dir_.path("five.gz") + " --out " + dir_.path("p.csv"))), 1);
  EXPECT_NE(err_.find("the data's samples are [1, 5, 5] but the model expects [1, 4, 4]"), std::string::npos) << err_;
  EXPECT_EQ(cli(predict("--input " + shards_.path() + " --split val --out " + dir_.path("p.csv"))), 1);
  EXPECT_NE(err_.find("no val shards (val-*.h5) in '" + shards_.path() + "', a prep directory"), std::string::npos) << err_;
  EXPECT_EQ(cli(predict("--input '" + dir_.path("nothing-*.h5") + "' --out " + dir_.path("p.csv"))), 1);
  EXPECT_NE(err_.find("no shards match"), std::string::npos) << err_;
  EXPECT_EQ(cli("predict --model-file " + shards_.path("test-00000.h5") + " --input " + shards_.path() + " --out " +
                dir_.path("p.csv")),
            1);
  EXPECT_NE(err_.find("is not a ringtrain model file"), std::string::npos) << err_;
}

// IDX files read directly are standardised as prep standardised them: the same predictions as on the
// shards prep made of them.
TEST(PredictIdx, ImagesPredictAsTheirPreparedShards) {
  TempDir dir;
  const std::string idx = dir.path("idx");
  std::filesystem::create_directories(idx);
  Rng rng(3);
  for (const auto& [prefix, n] : {std::pair{"train", 60u}, std::pair{"t10k", 20u}}) {
    std::vector<uint8_t> pixels(n * 36), labels(n);
    for (auto& p : pixels) p = static_cast<uint8_t>(rng.below(256));
    for (uint32_t i = 0; i < n; ++i) labels[i] = static_cast<uint8_t>(i % 3);
    write_idx(idx + "/" + prefix + "-images-idx3-ubyte.gz", {n, 6, 6}, pixels);
    write_idx(idx + "/" + prefix + "-labels-idx1-ubyte.gz", {n}, labels);
  }
  std::string out, err;
  ASSERT_EQ(run_cli("prep --input " + idx + " --out " + dir.path("data") + " --shards 1", &out, &err), 0) << err;
  ASSERT_EQ(run_cli("train --data " + dir.path("data") + " --model \"flatten,linear(out)\" --epochs 1 --batch 8 "
                    "--save " + dir.path("m.h5"), &out, &err),
            0)
      << err;
  const std::string predict = "predict --model-file " + dir.path("m.h5");
  ASSERT_EQ(run_cli(predict + " --input " + dir.path("data") + " --out " + dir.path("shards.csv"), &out, &err), 0) << err;
  ASSERT_EQ(run_cli(predict + " --input " + idx + "/t10k-images-idx3-ubyte.gz --out " + dir.path("idx.csv"), &out, &err), 0)
      << err;
  EXPECT_NE(out.find("predicting 20 samples in IDX file"), std::string::npos) << out;
  EXPECT_EQ(test::read_text(dir.path("idx.csv")), test::read_text(dir.path("shards.csv")));
}

}  // namespace
}  // namespace ringtrain
