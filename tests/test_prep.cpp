#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <tuple>

#include "ringtrain/data/prep.hpp"
#include "ringtrain/data/shard_set.hpp"
#include "ringtrain/tensor/error.hpp"
#include "prep_util.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

using test::TempDir;
using test::prep_error;

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
  // A header whose sizes multiply past 2 GiB (or wrap around) is refused before any memory is taken for it.
  write_file(in.path("train-labels-idx1-ubyte"), idx_bytes({10}, std::vector<uint8_t>(10)), false);
  write_file(in.path("train-images-idx3-ubyte"), {0, 0, 8, 3, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255},
             false);
  try {
    prep(c);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("declares an array of more than 2 GiB"), std::string::npos) << e.what();
  }
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
  EXPECT_NE(error_for("a,b\n1,2\n3,\n4,5\n", "b").find("CSV line 3, column 'b': missing value (an empty cell)"),
            std::string::npos);
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

// Strict CSV prep (issue 17): a cell that does not fit its column is an error naming line, column and value;
// missing cells are dropped or imputed only under --missing.

// prep --format csv of `text`, written byte for byte (a BOM and CRLF stay) to <in>/d.csv, into `out`.
PrepConfig csv_config(const TempDir& in, const TempDir& out, const std::string& text, const std::string& target,
                      MissingValues missing = MissingValues::error) {
  std::ofstream(in.path("d.csv"), std::ios::binary) << text;
  PrepConfig c;
  c.format = PrepFormat::csv;
  c.input = in.path("d.csv");
  c.out_dir = out.path();
  c.target = target;
  c.missing = missing;
  return c;
}

// "id,<columns>" then n rows "i,<row(i)>": row i is file line i + 2, and the id column (stored as is: the
// standardisation is in attributes) tells the rows apart after the shuffled splits.
std::string numbered_csv(const std::string& columns, int n, const std::function<std::string(int)>& row) {
  std::string text = "id," + columns + "\n";
  for (int i = 0; i < n; ++i) text += std::to_string(i) + "," + row(i) + "\n";
  return text;
}

struct Samples {
  ShardMeta meta;  // the first shard's: names, x_scale, x_shift
  std::vector<std::vector<float>> x;  // features per sample, as stored
};

Samples read_split_features(const std::string& dir, Split split) {
  const ShardSet set = ShardSet::open(ShardSet::split_pattern(dir, split));
  Samples s{set.meta(), {}};
  for (const ShardMeta& m : set.shards()) {
    const ShardData d = read_shard_data(m);
    const auto f = static_cast<size_t>(m.features());
    for (size_t i = 0; i < static_cast<size_t>(m.samples); ++i)
      s.x.emplace_back(d.x_f32.begin() + static_cast<std::ptrdiff_t>(i * f),
                       d.x_f32.begin() + static_cast<std::ptrdiff_t>((i + 1) * f));
  }
  return s;
}

// The samples of train, val and test together.
Samples read_all(const std::string& dir) {
  Samples all = read_split_features(dir, Split::train);
  for (Split split : {Split::val, Split::test})
    for (auto& x : read_split_features(dir, split).x) all.x.push_back(std::move(x));
  return all;
}

// Ages 0..19 with `cell` as the age of row 5, which is file line 7.
std::string ages_with(const std::string& cell) {
  return numbered_csv("age,y", 20, [&](int i) { return (i == 5 ? cell : std::to_string(i)) + ",1"; });
}

bool wrote_shards(const TempDir& out) { return ShardSet::exists(ShardSet::split_pattern(out.path(), Split::train)); }

TEST(PrepCsv, ByteOrderMarkIsNotPartOfTheFirstColumnName) {
  TempDir in, out;
  const std::string rows = numbered_csv("y", 10, [](int i) { return std::to_string(2 * i); });
  const PrepConfig c = csv_config(in, out, "\xEF\xBB\xBF" + rows, "y");
  EXPECT_EQ(prep(c).features, 1);
  EXPECT_EQ(read_split_features(out.path(), Split::train).meta.feature_names, (std::vector<std::string>{"id"}));
  PrepConfig by_first = c;
  by_first.target = "id";
  EXPECT_EQ(prep_error(by_first), "");
}

TEST(PrepCsv, DuplicateOrEmptyColumnNamesAreErrors) {
  TempDir in, out;
  EXPECT_EQ(prep_error(csv_config(in, out, "x, x ,y\n1,2,3\n4,5,6\n7,8,9\n", "y")),
            "CSV header: column 'x' appears twice (columns 1 and 2)");
  EXPECT_EQ(prep_error(csv_config(in, out, "x,,y\n1,2,3\n4,5,6\n7,8,9\n", "y")), "CSV header: column 2 has no name");
  EXPECT_FALSE(wrote_shards(out));
}

// A NUL would cut the error message short, or make "p" and "p\0evil" two classes that print alike.
TEST(PrepCsv, ANulByteIsABinaryFile) {
  TempDir in, out;
  for (const std::string& row : {std::string("1,3\0,p\n", 7), std::string("1,3,p\0evil\n", 11)}) {
    const std::string error = prep_error(csv_config(in, out, "a,b,label\n1,2,p\n1,2,q\n" + row + "1,2,q\n", "label"));
    EXPECT_EQ(error.rfind("CSV line 4 holds a NUL byte: '", 0), 0u) << error;
  }
  EXPECT_FALSE(wrote_shards(out));
}

TEST(PrepCsv, MissingCellInANumericColumnIsAnErrorNamingLineColumnAndValue) {
  TempDir in, out;
  auto with_cell = [&](const std::string& cell) { return csv_config(in, out, ages_with(cell), "y"); };
  EXPECT_EQ(prep_error(with_cell("NA")), "CSV line 7, column 'age': missing value ('NA'); --missing drop or "
                                         "--missing mean says what to do with missing values");
  EXPECT_NE(prep_error(with_cell("")).find("CSV line 7, column 'age': missing value (an empty cell)"),
            std::string::npos);
  for (const char* marker : {"N/A", "NaN", "nan", "NAN", "null", "NULL", "None", "?"})
    EXPECT_NE(prep_error(with_cell(marker)).find("missing value ('" + std::string(marker) + "')"), std::string::npos);
  EXPECT_FALSE(wrote_shards(out));  // nothing is written on error
}

TEST(PrepCsv, TextCellInANumericColumnIsAnErrorButAFewNumbersDoNotMakeTextNumeric) {
  TempDir in, out;
  PrepConfig c = csv_config(in, out, ages_with("abc"), "y", MissingValues::mean);
  EXPECT_EQ(prep_error(c), "CSV line 7, column 'age': 'abc' is not a number (the column is numeric)");
  EXPECT_FALSE(wrote_shards(out));
  // Mostly text: categorical, and the one number is a category of its own.
  const std::string colours =
      numbered_csv("colour,y", 20, [](int i) { return std::string(i == 5 ? "7" : i % 2 ? "red" : "blue") + ",1"; });
  c = csv_config(in, out, colours, "y");
  ASSERT_EQ(prep_error(c), "");
  EXPECT_EQ(read_split_features(out.path(), Split::train).meta.feature_names,
            (std::vector<std::string>{"id", "colour=7", "colour=blue", "colour=red"}));
}

TEST(PrepCsv, InfinityIsAnErrorEvenWithMissingMean) {
  TempDir in, out;
  for (const std::string cell : {"inf", "-inf", "Infinity", "1e999", "1e39"}) {
    const PrepConfig c = csv_config(in, out, ages_with(cell), "y", MissingValues::mean);
    EXPECT_EQ(prep_error(c).rfind("CSV line 7, column 'age': value '" + cell + "' is not a finite number", 0), 0u)
        << prep_error(c);
  }
  EXPECT_FALSE(wrote_shards(out));
}

TEST(PrepCsv, NanRegressionTargetIsAnErrorNotAClass) {
  TempDir in, out;
  const std::string prices = numbered_csv("price", 20, [](int i) { return i == 5 ? "nan" : std::to_string(2 * i); });
  PrepConfig c = csv_config(in, out, prices, "price");
  EXPECT_NE(prep_error(c).find("CSV line 7, column 'price': missing value ('nan')"), std::string::npos);
  c.task = TaskKind::regression;
  c.missing = MissingValues::mean;  // a target is never imputed
  EXPECT_EQ(prep_error(c), "CSV line 7, column 'price': the target is missing ('nan'); --missing mean does not "
                           "impute targets (--missing drop drops such rows)");
  EXPECT_FALSE(wrote_shards(out));
  c.task = TaskKind::automatic;  // still regression: the column is numeric, the nan row goes
  c.missing = MissingValues::drop;
  const PrepReport r = prep(c);
  EXPECT_FALSE(r.classification);
  EXPECT_EQ(r.outputs, 1);
  EXPECT_EQ(r.dropped, 1);
}

TEST(PrepCsv, MissingDropLeavesOutRowsWithAMissingCell) {
  TempDir in, out;
  const PrepConfig c = csv_config(in, out, numbered_csv("a,colour,y", 20, [](int i) {
    return std::string(i == 3 ? "NA" : std::to_string(i)) + "," + (i == 8 ? "" : i % 2 ? "red" : "blue") + "," +
           (i == 12 ? "null" : std::to_string(i % 4));
  }), "y", MissingValues::drop);
  const PrepReport r = prep(c);
  EXPECT_EQ(r.dropped, 3);
  EXPECT_EQ(r.train + r.val + r.test, 17);
  const Samples all = read_all(out.path());
  ASSERT_EQ(all.x.size(), 17u);
  for (const auto& x : all.x) EXPECT_TRUE(x[0] != 3 && x[0] != 8 && x[0] != 12) << "row " << x[0] << " was kept";
}

TEST(PrepCsv, MissingMeanImputesTheTrainingMeanWhichStandardisesToZero) {
  TempDir in, out;
  const PrepConfig c = csv_config(in, out, numbered_csv("v,y", 40, [](int i) {
    return (i % 5 == 0 ? std::string("NA") : std::to_string(0.5 * i + i % 3)) + "," + std::to_string(i);
  }), "y", MissingValues::mean);
  const PrepReport r = prep(c);
  EXPECT_EQ(r.train + r.val + r.test, 40);
  double sum = 0.0;
  int n = 0;
  for (const auto& x : read_split_features(out.path(), Split::train).x)
    if (static_cast<int>(x[0]) % 5 != 0) sum += x[1], ++n;
  const Samples all = read_all(out.path());
  int imputed = 0;
  for (const auto& x : all.x) {
    if (static_cast<int>(x[0]) % 5 != 0) continue;
    ++imputed;  // in every split the training mean, which is the centre of the standardisation
    EXPECT_NEAR(x[1], sum / n, 1e-4) << "row " << x[0];
    EXPECT_NEAR(x[1] * all.meta.x_scale[1] + all.meta.x_shift[1], 0.0, 1e-5) << "row " << x[0];
  }
  EXPECT_EQ(imputed, 8);
}

TEST(PrepCsv, MissingMeanGivesACategoricalColumnAMissingCategory) {
  TempDir in, out;
  const PrepConfig c = csv_config(in, out, numbered_csv("colour,y", 21, [](int i) {
    return std::string(i % 7 == 0 ? "" : i % 7 == 1 ? "NA" : i % 2 ? "red" : "blue") + "," + std::to_string(i % 3);
  }), "y", MissingValues::mean);
  ASSERT_EQ(prep_error(c), "");
  const Samples all = read_all(out.path());
  EXPECT_EQ(all.meta.feature_names, (std::vector<std::string>{"id", "colour=<missing>", "colour=blue", "colour=red"}));
  for (const auto& x : all.x) EXPECT_EQ(x[1], static_cast<int>(x[0]) % 7 <= 1 ? 1.0f : 0.0f) << "row " << x[0];
}

TEST(PrepCsv, ColumnWithEveryCellMissingIsAnError) {
  TempDir in, out;
  const std::string text = numbered_csv("z,y", 10, [](int i) { return std::string(i % 2 ? "NA" : "") + ",1"; });
  for (MissingValues missing : {MissingValues::error, MissingValues::drop, MissingValues::mean})
    EXPECT_EQ(prep_error(csv_config(in, out, text, "y", missing)),
              "CSV column 'z' has no values: every cell is missing");
  EXPECT_FALSE(wrote_shards(out));
}

TEST(PrepCsv, TextRegressionTargetAndDropLeavingTooFewRowsAreErrors) {
  TempDir in, out;
  PrepConfig c = csv_config(in, out, "a,kind\n1,cat\n2,dog\n3,cat\n", "kind");
  c.task = TaskKind::regression;
  EXPECT_EQ(prep_error(c), "regression target 'kind' has non-numeric values (most of its cells are not numbers)");
  c = csv_config(in, out, "a,y\n1,2\nNA,3\n4,\n5,6\n", "y", MissingValues::drop);
  EXPECT_NE(prep_error(c).find("has 2 rows left after --missing drop dropped 2; need at least 3"), std::string::npos)
      << prep_error(c);
  EXPECT_FALSE(wrote_shards(out));
}

TEST(PrepCsv, CrlfLinesByteOrderMarkAndQuotedFieldsKeepWorking) {
  TempDir in, out;
  std::string text = "\xEF\xBB\xBFid,\"note, quoted\",kind\r\n";
  for (int i = 0; i < 12; ++i)
    text += std::to_string(i) + "," + (i % 2 ? "\"a, b\"" : "\"say \"\"hi\"\"\"") + "," + (i % 3 ? "dog" : "cat") +
            "\r\n";
  const PrepReport r = prep(csv_config(in, out, text, "kind"));
  EXPECT_TRUE(r.classification);
  EXPECT_EQ(r.train + r.val + r.test, 12);
  const Samples all = read_all(out.path());
  EXPECT_EQ(all.meta.feature_names, (std::vector<std::string>{"id", "note, quoted=a, b", "note, quoted=say \"hi\""}));
  EXPECT_EQ(all.meta.class_names, (std::vector<std::string>{"cat", "dog"}));
  // A quote left open would swallow the rest of the line: an error, not a silently merged field.
  EXPECT_EQ(prep_error(csv_config(in, out, "a,b\r\n1,\"2\r\n", "b")),
            "CSV line 2: a quoted field is not closed (fields cannot span lines)");
}

TEST(PrepCsv, CommandLineTakesMissingAndReportsABadCellInOneLine) {
  TempDir in, out;
  std::string err;
  const PrepConfig c = csv_config(in, out, ages_with("abc"), "y");
  const std::string args = "prep --format csv --input " + c.input + " --target y --out " + out.path();
  EXPECT_EQ(test::run_cli(args, nullptr, &err), 1);
  EXPECT_EQ(err, "ringtrain: error: CSV line 7, column 'age': 'abc' is not a number (the column is numeric)\n");
  EXPECT_EQ(test::run_cli(args + " --missing sometimes", nullptr, &err), 2);
  EXPECT_NE(err.find("--missing must be error, drop or mean, got 'sometimes'"), std::string::npos) << err;
  std::string help;
  EXPECT_EQ(test::run_cli("prep --help", &help, nullptr), 0);
  EXPECT_NE(help.find("--missing"), std::string::npos);
  csv_config(in, out, ages_with("NA"), "y");  // rewrites the same file
  EXPECT_EQ(test::run_cli(args + " --missing drop", nullptr, &err), 0) << err;
  EXPECT_EQ(test::run_cli(args + " --missing mean", nullptr, &err), 0) << err;
}

// Issue 18: prices in the hundreds of thousands trained the default mlp into a non-finite loss in 3 steps.
TEST(PrepCsv, RegressionTargetIsStandardisedByTheTrainingSplit) {
  TempDir in, out;
  const std::string text = numbered_csv("area,price", 200, [](int i) {
    return std::to_string(50 + i) + "," + std::to_string(100000 + 2500 * i);
  });
  prep(csv_config(in, out, text, "price"));
  const ShardSet train = ShardSet::open(ShardSet::split_pattern(out.path(), Split::train));
  const ShardMeta& m = train.meta();
  double sum = 0, sq = 0, n = 0;
  for (const ShardMeta& s : train.shards())
    for (const float y : read_shard_data(s).targets) {
      EXPECT_GE(y, 100000.0f) << "the shards keep the targets as they are";
      const double v = y * m.y_scale + m.y_shift;
      sum += v, sq += v * v, ++n;
    }
  EXPECT_NEAR(sum / n, 0.0, 1e-3);
  EXPECT_NEAR(sq / n, 1.0, 1e-3);
  // Every split carries the training split's standardisation (else check_compatible refuses them).
  const ShardSet test = ShardSet::open(ShardSet::split_pattern(out.path(), Split::test));
  EXPECT_EQ(test.meta().y_scale, m.y_scale);
  EXPECT_EQ(test.meta().y_shift, m.y_shift);
}

// A spread too small for a float32 scale would put an infinite scale in the shards that no run could use.
TEST(PrepCsv, AColumnThatVariesTooLittleForFloat32IsNamed) {
  TempDir in, out;
  const std::string text = numbered_csv("a,y", 20, [](int i) { return std::to_string(i % 3) + "e-41," + std::to_string(i); });
  EXPECT_EQ(prep_error(csv_config(in, out, text, "y")).rfind("CSV column 'a' varies too little to standardise", 0), 0u);
  EXPECT_FALSE(wrote_shards(out));
  // A small spread on a large offset keeps its deviation (two passes, not the sum of squares).
  const std::string offset = numbered_csv("a,y", 40, [](int i) { return std::to_string(i) + "," + std::to_string(1000000000 + 64 * (i % 2)); });
  PrepConfig c = csv_config(in, out, offset, "y");
  c.task = TaskKind::regression;  // two integer values: --task auto would take them for classes
  prep(c);
  const float y_scale = read_split_features(out.path(), Split::train).meta.y_scale;  // 1 / 32 for an even split; was 1
  EXPECT_GT(y_scale, 0.02f);
  EXPECT_LT(y_scale, 0.05f);
}

TEST(PrepCsv, DropLeavesColumnsOutAndNamesOnesThatAreNotThere) {
  TempDir in, out;
  // The id column would be a feature; "leak" would give the target away. Their cells are not even read.
  const std::string text = numbered_csv("leak,size,y", 30, [](int i) {
    return (i == 3 ? std::string("NA") : std::to_string(i)) + "," + std::to_string(i % 7) + "," + std::to_string(i);
  });
  PrepConfig c = csv_config(in, out, text, "y");
  c.drop_columns = {"id", "leak"};
  EXPECT_EQ(prep(c).features, 1);
  EXPECT_EQ(read_split_features(out.path(), Split::train).meta.feature_names, std::vector<std::string>{"size"});
  c.drop_columns = {"size", "weight"};
  EXPECT_EQ(prep_error(c), "--drop 'weight': CSV file '" + c.input + "' has no such column");
  c.drop_columns = {"y"};
  EXPECT_EQ(prep_error(c), "--drop 'y' is the --target column");
  std::string err;
  EXPECT_EQ(test::run_cli("prep --format csv --input " + c.input + " --target y --out " + out.path() +
                              " --drop id,leak --drop size",
                          nullptr, &err),
            1);
  EXPECT_EQ(err, "ringtrain: error: CSV file '" + c.input + "' has no feature columns besides the target\n");
  EXPECT_EQ(test::run_cli("prep --format csv --input " + c.input + " --target y --out " + out.path() + " --drop id,",
                          nullptr, &err),
            2);
  EXPECT_NE(err.find("--drop 'id,' holds an empty column name"), std::string::npos) << err;
}

TEST(Prep, AFailedPrepLeavesNoOutputDirectoryAndACsvInputNamesTheFlag) {
  TempDir in, out;
  PrepConfig c = csv_config(in, out, ages_with("abc"), "y");
  c.out_dir = out.path("new/data");
  EXPECT_NE(prep_error(c), "");
  EXPECT_FALSE(std::filesystem::exists(out.path("new/data")));
  c.format = PrepFormat::idx;  // the default: a directory of IDX files
  EXPECT_EQ(prep_error(c).rfind("--target, --task, --missing and --drop are for --format csv", 0), 0u);
  c.target.clear();
  EXPECT_EQ(prep_error(c).rfind("--input '" + c.input + "' looks like a CSV file: add --format csv", 0), 0u);
  EXPECT_FALSE(std::filesystem::exists(out.path("new/data")));
}

// --format text: 1000 bytes of text, context 8: test is the last 200 bytes, validation 10% of the 800 before
// (80), training the first 720; each split's windows start 8 bytes apart and stay inside it.
std::string sample_text(size_t bytes) {
  std::string text;
  for (size_t i = 0; text.size() < bytes; ++i) text += "line " + std::to_string(i * 7919 % 1000) + " of text\n";
  return text.substr(0, bytes);
}

PrepConfig text_config(const TempDir& in, const TempDir& out, const std::string& text, int64_t context) {
  std::ofstream(in.path("book.txt"), std::ios::binary) << text;
  PrepConfig c;
  c.format = PrepFormat::text;
  c.input = in.path("book.txt");
  c.out_dir = out.path();
  c.context = context;
  c.shards = 2;
  return c;
}

TEST(PrepText, CutsContiguousSplitsIntoWindowsOfTheNextTokens) {
  TempDir in, out;
  const std::string text = sample_text(1000);
  const PrepReport r = prep(text_config(in, out, text, 8));
  EXPECT_EQ(r.train, 89);  // (720 - 1) / 8
  EXPECT_EQ(r.val, 9);     // (80 - 1) / 8
  EXPECT_EQ(r.test, 24);   // (200 - 1) / 8
  EXPECT_EQ(r.tokens, 8);
  EXPECT_EQ(r.outputs, 256);
  for (const auto& [split, first_byte, windows] : {std::tuple{Split::train, 0, 89}, std::tuple{Split::val, 720, 9},
                                                   std::tuple{Split::test, 800, 24}}) {
    const ShardSet set = ShardSet::open(ShardSet::split_pattern(out.path(), split));
    ASSERT_EQ(set.samples(), windows);
    const ShardMeta& meta = set.meta();
    EXPECT_EQ(meta.tokens, 8);
    EXPECT_EQ(meta.tokenizer, "bytes");
    EXPECT_EQ(meta.num_classes, 256);
    EXPECT_EQ(meta.x_type, PixelType::u8);
    auto reader = set.reader(0);
    Targets y;
    y.labels.resize(8);
    std::vector<float> x(8);
    for (int64_t w : {int64_t{0}, int64_t{windows - 1}}) {
      reader->read(w, x.data(), y, 0);
      for (size_t j = 0; j < 8; ++j) {
        const size_t at = static_cast<size_t>(first_byte + w * 8) + j;
        ASSERT_EQ(x[j], static_cast<float>(static_cast<unsigned char>(text[at])));
        ASSERT_EQ(y.labels[j], static_cast<unsigned char>(text[at + 1]));
      }
    }
  }
  EXPECT_TRUE(std::filesystem::exists(out.path("train-00001.h5")));
}

// A directory is its files in name order, without fortune's index files (NAME.dat, NAME.u8) or hidden files.
TEST(PrepText, ReadsADirectoryInNameOrderWithoutFortuneIndexFiles) {
  TempDir in, out;
  const std::string first = "héllo wörld, ", second = "then more text.";
  std::ofstream(in.path("b")) << second;
  std::ofstream(in.path("a")) << first;
  std::ofstream(in.path("a.dat")) << std::string("\xff\x00\x01", 3);  // not UTF-8: read, it would be refused
  std::filesystem::create_symlink(in.path("a"), in.path("a.u8"));
  std::ofstream(in.path(".hidden")) << "\xff";
  PrepConfig c = text_config(in, out, "", 4);
  std::filesystem::remove(in.path("book.txt"));
  c.input = in.path();
  c.val_fraction = c.test_fraction = 0.0;
  const PrepReport r = prep(c);
  const std::string text = first + second;
  EXPECT_EQ(r.train, static_cast<int64_t>((text.size() - 1) / 4));
  EXPECT_EQ(r.val + r.test, 0);
  EXPECT_FALSE(std::filesystem::exists(out.path("val-00000.h5")));
  const ShardSet set = ShardSet::open(ShardSet::split_pattern(out.path(), Split::train));
  auto reader = set.reader(0);
  Targets y;
  y.labels.resize(4);
  std::vector<float> x(4);
  reader->read(r.train - 1, x.data(), y, 0);  // the last window: second's text
  const size_t at = static_cast<size_t>((r.train - 1) * 4);
  EXPECT_EQ(x[0], static_cast<float>(static_cast<unsigned char>(text[at])));
  EXPECT_EQ(y.labels[3], static_cast<unsigned char>(text[at + 4]));
}

TEST(PrepText, BadTextAndContextsAreOneLineErrors) {
  TempDir in, out;
  EXPECT_EQ(prep_error(text_config(in, out, "", 8)), "--input '" + in.path("book.txt") + "' holds no text (1 file, all empty)");
  EXPECT_EQ(prep_error(text_config(in, out, "short", 8)),
            "--input '" + in.path("book.txt") + "' has 5 bytes of text, shorter than one window of 9 bytes "
            "(--context 8 + 1)");
  EXPECT_EQ(prep_error(text_config(in, out, sample_text(60), 8)),
            "the validation split has 5 bytes of text but one window needs 9 (--context 8 + 1): give more text, a "
            "shorter --context, or --val-fraction 0");
  PrepConfig c = text_config(in, out, sample_text(12), 8);
  c.test_fraction = 0.5;
  EXPECT_EQ(prep_error(c), "the training split has 5 bytes of text but one window needs 9 (--context 8 + 1): give "
                           "more text, a shorter --context");
  c = text_config(in, out, sample_text(40), 8);
  c.val_fraction = 0.0;
  c.test_fraction = 0.1;
  EXPECT_EQ(prep_error(c), "the test split has 4 bytes of text but one window needs 9 (--context 8 + 1): give more "
                           "text, a shorter --context, or --test-fraction 0");
  EXPECT_EQ(prep_error(text_config(in, out, "caf\xc3\xa9 ok \xe9t\xc3\xa9", 4)),
            "'" + in.path("book.txt") + "' is not UTF-8 text: the bytes at byte offset 9 (0xE9...) are not a valid "
            "character");
  EXPECT_EQ(prep_error(text_config(in, out, "ends inside \xe2\x82", 4)),
            "'" + in.path("book.txt") + "' is not UTF-8 text: it ends inside the character at byte offset 12");
  // Too short for its lead's sequence, but with a byte that no sequence has there: bad, not cut short.
  EXPECT_EQ(prep_error(text_config(in, out, "ends badly \xe2" "A", 4)),
            "'" + in.path("book.txt") + "' is not UTF-8 text: the bytes at byte offset 11 (0xE2...) are not a valid "
            "character");
  for (const char* bad : {"overlong \xc0\xaf", "surrogate \xed\xa0\x80", "beyond \xf4\x90\x80\x80"})
    EXPECT_NE(prep_error(text_config(in, out, bad, 4)).find("is not UTF-8 text"), std::string::npos) << bad;
  EXPECT_EQ(prep_error(text_config(in, out, sample_text(100), 0)), "prep --format text needs --context T (tokens per window)");
  EXPECT_EQ(prep_error(text_config(in, out, sample_text(100), -3)), "--context must be at least 1 token, got -3");
  EXPECT_EQ(prep_error(text_config(in, out, sample_text(100), int64_t{1} << 40)),
            "--context may be at most 1048576 tokens, got 1099511627776");
  c = text_config(in, out, sample_text(100), 8);
  c.input = in.path("missing.txt");
  EXPECT_EQ(prep_error(c), "--input '" + in.path("missing.txt") + "' does not exist");
  c.input = out.path();
  EXPECT_EQ(prep_error(c), "--input '" + out.path() + "' holds no text files (it is read as a directory of them)");
  c.input = in.path("book.txt");
  c.format = PrepFormat::csv;
  EXPECT_EQ(prep_error(c).rfind("--context is for --format text", 0), 0u);
  EXPECT_FALSE(std::filesystem::exists(out.path("train-00000.h5")));
  c = text_config(in, out, "four \xf0\x9f\x98\x80 bytes", 4);  // a 4-byte character is valid
  c.val_fraction = c.test_fraction = 0.0;
  EXPECT_EQ(prep_error(c), "");
}

TEST(PrepText, CommandLineSaysWhatItWrote) {
  TempDir in, out;
  const PrepConfig c = text_config(in, out, sample_text(1000), 8);
  std::string log, err;
  const std::string args = "prep --format text --input " + c.input + " --context 8 --shards 2 --out " + out.path();
  ASSERT_EQ(test::run_cli(args, &log, &err), 0) << err;
  EXPECT_NE(log.find("text: 1000 bytes of UTF-8 from 1 file as byte tokens (vocabulary 256): 720 training, 80 "
                     "validation, 200 test bytes\nwrote " + out.path() + ": 89 train, 9 val, 24 test windows of 8 "
                     "tokens; vocabulary 256"),
            std::string::npos)
      << log;
  EXPECT_EQ(test::run_cli(args + " --seed 3", nullptr, &err), 2);
  EXPECT_NE(err.find("--seed has no effect with --format text"), std::string::npos) << err;
}

}  // namespace
}  // namespace ringtrain
