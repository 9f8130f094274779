#include <gtest/gtest.h>
#include <zlib.h>

#include <fstream>

#include "ringtrain/data/prep.hpp"
#include "ringtrain/data/shard_set.hpp"
#include "ringtrain/tensor/error.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

using test::TempDir;

std::vector<uint8_t> idx_bytes(const std::vector<int64_t>& dims, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> b = {0, 0, 0x08, static_cast<uint8_t>(dims.size())};
  for (int64_t d : dims)
    for (int shift : {24, 16, 8, 0}) b.push_back(static_cast<uint8_t>((d >> shift) & 0xFF));
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

void write_file(const std::string& path, const std::vector<uint8_t>& bytes, bool gz) {
  if (gz) {
    gzFile f = gzopen(path.c_str(), "wb");
    gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
  } else {
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                 static_cast<std::streamsize>(bytes.size()));
  }
}

// n images of 3x2 pixels whose first pixel is the index, labels index % 3.
void write_idx_pair(const std::string& dir, const std::string& prefix, int n, bool gz) {
  std::vector<uint8_t> pixels, labels;
  for (int i = 0; i < n; ++i) {
    for (int p = 0; p < 6; ++p) pixels.push_back(static_cast<uint8_t>(p == 0 ? i : 7));
    labels.push_back(static_cast<uint8_t>(i % 3));
  }
  const std::string ext = gz ? ".gz" : "";
  write_file(dir + "/" + prefix + "-images-idx3-ubyte" + ext, idx_bytes({n, 3, 2}, pixels), gz);
  write_file(dir + "/" + prefix + "-labels-idx1-ubyte" + ext, idx_bytes({n}, labels), gz);
}

TEST(PrepIdx, WritesTrainValTestShardsFromGzipAndPlainFiles) {
  TempDir in, out;
  write_idx_pair(in.path(), "train", 40, true);
  write_idx_pair(in.path(), "t10k", 9, false);
  PrepConfig c;
  c.input = in.path();
  c.out_dir = out.path();
  c.shards = 3;
  c.val_fraction = 0.25;
  const PrepReport r = prep(c);
  EXPECT_EQ(r.train, 30);
  EXPECT_EQ(r.val, 10);
  EXPECT_EQ(r.test, 9);
  EXPECT_EQ(r.outputs, 3);
  const ShardSet train = ShardSet::open(ShardSet::split_pattern(out.path(), Split::train));
  EXPECT_EQ(train.shards().size(), 3u);
  EXPECT_EQ(train.meta().sample_shape, (Shape{1, 3, 2}));
  // Pixels are standardised with the training split's statistics: mean 0 after scale and shift.
  double sum = 0;
  int64_t count = 0;
  for (const ShardMeta& m : train.shards())
    for (uint8_t v : read_shard_data(m).x_u8) sum += v * m.x_scale[0] + m.x_shift[0], ++count;
  EXPECT_NEAR(sum / static_cast<double>(count), 0.0, 1e-4);
  // Every training image keeps its label: pixel 0 is the index, label index % 3.
  for (const ShardMeta& m : train.shards()) {
    const ShardData d = read_shard_data(m);
    for (int64_t i = 0; i < m.samples; ++i) EXPECT_EQ(d.labels[static_cast<size_t>(i)], d.x_u8[static_cast<size_t>(i * 6)] % 3);
  }
}

TEST(PrepIdx, BadFilesAreNamed) {
  TempDir in, out;
  PrepConfig c;
  c.input = in.path();
  c.out_dir = out.path();
  EXPECT_THROW(prep(c), Error);
  write_idx_pair(in.path(), "train", 10, false);
  write_file(in.path("train-labels-idx1-ubyte"), idx_bytes({9}, std::vector<uint8_t>(9)), false);
  try {
    prep(c);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("has 10 images but"), std::string::npos) << e.what();
  }
  write_file(in.path("train-labels-idx1-ubyte"), {1, 2, 3, 4, 5, 6, 7, 8}, false);
  EXPECT_THROW(prep(c), Error);
}

TEST(PrepCsv, RegressionStandardisesNumericAndOneHotsCategoricalColumns) {
  TempDir in, out;
  std::ofstream csv(in.path("d.csv"));
  csv << "size,colour,price\n";
  for (int i = 0; i < 50; ++i) csv << i << "," << (i % 2 ? "red" : "\"blue\"") << "," << 2 * i + 1 << "\n";
  csv.close();
  PrepConfig c;
  c.format = PrepFormat::csv;
  c.input = in.path("d.csv");
  c.out_dir = out.path();
  c.target = "price";
  c.shards = 2;
  const PrepReport r = prep(c);
  EXPECT_FALSE(r.classification);
  EXPECT_EQ(r.features, 3);
  EXPECT_EQ(r.train + r.val + r.test, 50);
  const ShardSet train = ShardSet::open(ShardSet::split_pattern(out.path(), Split::train));
  const ShardMeta& m = train.meta();
  EXPECT_EQ(m.feature_names, (std::vector<std::string>{"size", "colour=blue", "colour=red"}));
  EXPECT_EQ(m.target_names, (std::vector<std::string>{"price"}));
  EXPECT_FLOAT_EQ(m.x_scale[1], 1.0f);
  EXPECT_LT(m.x_scale[0], 1.0f);
  // Normalised size has mean ~0 over the training rows.
  double sum = 0;
  int64_t n = 0;
  for (const ShardMeta& s : train.shards()) {
    const ShardData d = read_shard_data(s);
    for (int64_t i = 0; i < s.samples; ++i, ++n) sum += d.x_f32[static_cast<size_t>(i * 3)] * m.x_scale[0] + m.x_shift[0];
  }
  EXPECT_NEAR(sum / static_cast<double>(n), 0.0, 1e-4);
}

TEST(PrepCsv, ClassificationMapsClassesAndReportsBadRows) {
  TempDir in, out;
  {
    std::ofstream csv(in.path("c.csv"));
    csv << "a,b,kind\n";
    for (int i = 0; i < 30; ++i) csv << i << "," << i * 0.5 << "," << (i % 3 == 0 ? "cat" : "dog") << "\n";
  }
  PrepConfig c;
  c.format = PrepFormat::csv;
  c.input = in.path("c.csv");
  c.out_dir = out.path();
  c.target = "kind";
  const PrepReport r = prep(c);
  EXPECT_TRUE(r.classification);
  EXPECT_EQ(r.outputs, 2);
  EXPECT_EQ(ShardSet::open(ShardSet::split_pattern(out.path(), Split::train)).meta().class_names,
            (std::vector<std::string>{"cat", "dog"}));

  auto error_for = [&](const std::string& text, const std::string& target) {
    std::ofstream(in.path("bad.csv")) << text;
    PrepConfig b = c;
    b.input = in.path("bad.csv");
    b.target = target;
    try {
      prep(b);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error_for("a,b\n1,2\n3\n4,5\n", "b").find("line 3 has 1 fields"), std::string::npos);
  EXPECT_NE(error_for("a,b\n1,2\n3,\n4,5\n", "b").find("no value in column 'b'"), std::string::npos);
  EXPECT_NE(error_for("a,b\n1,2\n3,4\n4,5\n", "c").find("no column 'c'"), std::string::npos);
  EXPECT_NE(error_for("", "b").find("empty"), std::string::npos);
  c.task = TaskKind::regression;
  c.target = "kind";
  EXPECT_THROW(prep(c), Error);
}

TEST(PrepCsv, FailedConversionKeepsEarlierShards) {
  TempDir in, out;
  {
    std::ofstream csv(in.path("ok.csv"));
    csv << "x,y\n";
    for (int i = 0; i < 20; ++i) csv << i << "," << i << "\n";
  }
  PrepConfig c;
  c.format = PrepFormat::csv;
  c.input = in.path("ok.csv");
  c.out_dir = out.path();
  c.target = "y";
  prep(c);
  c.input = in.path("missing.csv");
  EXPECT_THROW(prep(c), Error);
  EXPECT_TRUE(ShardSet::exists(ShardSet::split_pattern(out.path(), Split::train)));
}

}  // namespace
}  // namespace ringtrain
