// Issue 20, data preparation: --task auto's choice, prep --like (a second CSV converted as the training data
// was), the CSV transform in shards and model files, and the CSV sample source predict reads raw CSVs with.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "ringtrain/data/csv_source.hpp"
#include "ringtrain/data/hdf5.hpp"
#include "ringtrain/data/loader.hpp"
#include "ringtrain/data/prep.hpp"
#include "ringtrain/data/shard_set.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/train/checkpoint.hpp"
#include "ringtrain/train/model_file.hpp"
#include "ringtrain/train/trainer.hpp"
#include "prep_util.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

using test::TempDir;
using test::error_of;
using test::prep_error;

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

// A header and one line per i in [0, rows).
std::string lines_csv(const std::string& header, int rows, const std::function<std::string(int)>& line) {
  std::string text = header + "\n";
  for (int i = 0; i < rows; ++i) text += line(i) + "\n";
  return text;
}

PrepConfig csv_prep(const std::string& input, const std::string& out, const std::string& target) {
  PrepConfig c;
  c.format = PrepFormat::csv;
  c.input = input;
  c.out_dir = out;
  c.target = target;
  return c;
}

PrepConfig like_prep(const std::string& input, const std::string& out, const std::string& like_dir) {
  PrepConfig c = csv_prep(input, out, "");
  c.like_dir = like_dir;
  return c;
}

// A split's shards as one: the first shard's meta (samples: all of them) and every shard's samples in order.
struct SplitData {
  ShardMeta meta;
  ShardData data;
};

SplitData read_whole_split(const std::string& dir, Split split, TargetsNeeded targets = TargetsNeeded::yes) {
  const ShardSet set = ShardSet::open(ShardSet::split_pattern(dir, split), targets);
  SplitData out{set.meta(), {}};
  out.meta.samples = set.samples();
  for (const ShardMeta& m : set.shards()) {
    const ShardData d = read_shard_data(m);
    out.data.x_f32.insert(out.data.x_f32.end(), d.x_f32.begin(), d.x_f32.end());
    out.data.labels.insert(out.data.labels.end(), d.labels.begin(), d.labels.end());
    out.data.targets.insert(out.data.targets.end(), d.targets.begin(), d.targets.end());
  }
  return out;
}

// A shard of two samples of three float features in two classes.
ShardMeta two_samples_meta() {
  ShardMeta meta;
  meta.samples = 2;
  meta.sample_shape = {3};
  meta.x_type = PixelType::f32;
  meta.num_classes = 2;
  return meta;
}
ShardData two_samples() { return {{}, std::vector<float>(6, 0.5f), {0, 1}, {}}; }

// Bit for bit: the stored features, labels, targets and everything a model or predict takes from the meta.
void expect_same_split(const SplitData& a, const SplitData& b) {
  ASSERT_EQ(a.meta.samples, b.meta.samples);
  ASSERT_EQ(a.data.x_f32.size(), b.data.x_f32.size());
  EXPECT_EQ(std::memcmp(a.data.x_f32.data(), b.data.x_f32.data(), a.data.x_f32.size() * sizeof(float)), 0);
  EXPECT_EQ(a.data.labels, b.data.labels);
  EXPECT_EQ(a.data.targets, b.data.targets);
  EXPECT_EQ(a.meta.x_scale, b.meta.x_scale);
  EXPECT_EQ(a.meta.x_shift, b.meta.x_shift);
  EXPECT_EQ(a.meta.target_space(), b.meta.target_space());
  EXPECT_EQ(a.meta.feature_names, b.meta.feature_names);
  EXPECT_EQ(a.meta.class_names, b.meta.class_names);
  EXPECT_EQ(a.meta.target_names, b.meta.target_names);
  EXPECT_TRUE(a.meta.csv && a.meta.csv == b.meta.csv);
}

// --task auto decides as scikit-learn's type_of_target does, with a bound: text is classes; integers are
// classes when few (at most 20 distinct, fewer than half the rows, more than one); any other number is a
// regression target. Today's digit label 0-9 used to become regression.
TEST(PrepCsvTask, AutoTakesFewIntegerValuesForClassesAndKeepsPricesRegression) {
  TempDir in, out;
  auto decide = [&](const std::string& text, const std::string& target, TaskKind task = TaskKind::automatic) {
    write_text(in.path("t.csv"), text);
    PrepConfig c = csv_prep(in.path("t.csv"), out.path(), target);
    c.task = task;
    return prep(c);
  };
  const std::string digits = lines_csv("pixel,digit", 200, [](int i) {
    return std::to_string(i * 0.5) + "," + std::to_string(i % 10);
  });
  PrepReport r = decide(digits, "digit");
  EXPECT_TRUE(r.classification);
  EXPECT_EQ(r.outputs, 10);
  EXPECT_EQ(r.task_reason, "target 'digit': 10 distinct integer values -> classification; --task regression overrides");
  EXPECT_EQ(read_whole_split(out.path(), Split::train).meta.class_names,
            (std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}));
  r = decide(digits, "digit", TaskKind::regression);
  EXPECT_FALSE(r.classification);
  EXPECT_EQ(r.task_reason, "target 'digit': --task regression");

  // Whole-euro prices: integers, but hundreds of them.
  r = decide(lines_csv("area,price", 100, [](int i) {
    return std::to_string(40 + i) + "," + std::to_string(100000 + 1234 * i);
  }), "price");
  EXPECT_FALSE(r.classification);
  EXPECT_EQ(r.task_reason, "target 'price': 100 distinct integer values (more than 20) -> regression; --task "
                           "classification overrides");
  // Few integers, but as many as half the rows: counts, not classes.
  r = decide(lines_csv("a,n", 12, [](int i) { return std::to_string(i) + "," + std::to_string(i % 8); }), "n");
  EXPECT_FALSE(r.classification);
  EXPECT_EQ(r.task_reason, "target 'n': 8 distinct integer values in 12 rows (not fewer than half) -> regression; "
                           "--task classification overrides");
  r = decide(lines_csv("a,y", 30, [](int i) { return std::to_string(i) + "," + std::to_string(i % 3) + ".5"; }), "y");
  EXPECT_FALSE(r.classification);
  EXPECT_EQ(r.task_reason, "target 'y': 3 distinct values, not all integers -> regression");
  r = decide(lines_csv("a,flag", 30, [](int i) { return std::to_string(i) + "," + std::to_string(i % 2); }), "flag");
  EXPECT_TRUE(r.classification);
  EXPECT_EQ(r.outputs, 2);
  r = decide(lines_csv("a,y", 30, [](int i) { return std::to_string(i) + ",7"; }), "y");
  EXPECT_FALSE(r.classification);
  EXPECT_EQ(r.task_reason, "target 'y': one value, no classes to tell apart -> regression");
  r = decide(lines_csv("a,kind", 30, [](int i) { return std::to_string(i) + "," + (i % 2 ? "cat" : "dog"); }), "kind");
  EXPECT_TRUE(r.classification);
  EXPECT_EQ(r.task_reason, "target 'kind': not numeric -> classification");

  // The command says which it chose and why, in one line before what it wrote.
  write_text(in.path("digits.csv"), digits);
  std::string printed, err;
  ASSERT_EQ(test::run_cli("prep --format csv --input " + in.path("digits.csv") + " --target digit --out " +
                              out.path("cli"), &printed, &err), 0) << err;
  EXPECT_EQ(printed.rfind("target 'digit': 10 distinct integer values -> classification; --task regression "
                          "overrides\nwrote ", 0), 0u) << printed;
}

// Animals: an identifier, a numeric column with a missing cell now and then, a categorical column, a class and
// a price. Row i is line i + 2 of the file.
std::string animal_line(int i) {
  static const char* colours[] = {"red", "green", "blue"};
  static const char* kinds[] = {"cat", "dog", "owl"};
  std::ostringstream line;
  line << i << "," << (i % 13 == 5 ? std::string("NA") : std::to_string((i * 37) % 50) + ".25") << ","
       << colours[i % 3] << "," << kinds[(i / 2) % 3] << "," << 1000 + 17.5 * i + (i % 7) * 3.25;
  return line.str();
}
constexpr const char* kAnimalHeader = "id,size,colour,kind,price";

std::string animal_csv(const std::vector<int>& rows) {
  std::string text = std::string(kAnimalHeader) + "\n";
  for (int i : rows) text += animal_line(i) + "\n";
  return text;
}

std::vector<int> first_rows(int n) {
  std::vector<int> rows;
  for (int i = 0; i < n; ++i) rows.push_back(i);
  return rows;
}

// The ids (feature 0, stored raw) of a split's samples.
std::vector<int> ids_of(const SplitData& split) {
  std::vector<int> ids;
  const size_t features = static_cast<size_t>(split.meta.features());
  for (size_t r = 0; r < static_cast<size_t>(split.meta.samples); ++r)
    ids.push_back(static_cast<int>(split.data.x_f32[r * features]));
  return ids;
}

// A CSV split in two files: prep of the first and prep --like of the second give exactly what prep of the whole
// file gives for those rows, when the first holds the whole file's training rows. The whole file's prep
// imputes and standardises its test rows by its training split's statistics; --like by those of the training
// data it is like.
void expect_like_round_trip(const std::string& target) {
  SCOPED_TRACE("target " + target);
  TempDir in, out;
  write_text(in.path("whole.csv"), animal_csv(first_rows(80)));
  PrepConfig whole = csv_prep(in.path("whole.csv"), out.path("whole"), target);
  whole.missing = MissingValues::mean;
  whole.val_fraction = 0.0;
  whole.test_fraction = 0.25;
  whole.seed = 5;
  prep(whole);
  const SplitData whole_train = read_whole_split(whole.out_dir, Split::train);
  const SplitData whole_test = read_whole_split(whole.out_dir, Split::test);
  const std::vector<int> train_ids = ids_of(whole_train), test_ids = ids_of(whole_test);
  ASSERT_TRUE(std::any_of(test_ids.begin(), test_ids.end(), [](int i) { return i % 13 == 5; }))
      << "a test row with a missing size, which --like imputes with the training mean";
  write_text(in.path("train.csv"), animal_csv(train_ids));
  write_text(in.path("test.csv"), animal_csv(test_ids));

  PrepConfig first = csv_prep(in.path("train.csv"), out.path("train"), target);
  first.missing = MissingValues::mean;
  first.val_fraction = first.test_fraction = 0.0;
  prep(first);
  expect_same_split(read_whole_split(first.out_dir, Split::train), whole_train);  // the premise: the same training rows

  PrepConfig like = like_prep(in.path("test.csv"), out.path("like"), first.out_dir);
  like.missing = MissingValues::mean;
  const PrepReport r = prep(like);
  EXPECT_EQ(r.train + r.val, 0);
  EXPECT_EQ(r.test, static_cast<int64_t>(test_ids.size()));
  EXPECT_FALSE(r.features_only);
  EXPECT_EQ(r.task_reason, "target '" + target + "' as in '" + first.out_dir + "'");
  expect_same_split(read_whole_split(like.out_dir, Split::test), whole_test);
}

TEST(PrepLike, ASecondFileGetsTheFeaturesPrepOfTheWholeFileGivesItsRows) {
  expect_like_round_trip("kind");   // classes, and a numeric feature
  expect_like_round_trip("price");  // a standardised regression target, and a categorical feature
}

// Training data for --like: the first 60 animals, kind the target, prep'd into <out>/train.
PrepConfig prep_animals(const TempDir& in, const TempDir& out, MissingValues missing) {
  write_text(in.path("train.csv"), animal_csv(first_rows(60)));
  PrepConfig train = csv_prep(in.path("train.csv"), out.path("train"), "kind");
  train.missing = missing;
  prep(train);
  return train;
}

// Data to predict has no target column: its rows become a shard of features only, which train and eval refuse
// (they need targets) and predict reads.
TEST(PrepLike, AFileWithoutTheTargetColumnBecomesFeaturesOnly) {
  TempDir in, out;
  const PrepConfig train = prep_animals(in, out, MissingValues::mean);
  std::string with_target = animal_csv({60, 61, 62, 70}), without = "id,size,colour,price\n";
  for (int i : {60, 61, 62, 70}) {  // the line without its fourth field, the kind
    std::string line = animal_line(i);
    const size_t third = line.find(',', line.find(',', line.find(',') + 1) + 1), fourth = line.find(',', third + 1);
    without += line.erase(third, fourth - third) + "\n";
  }
  write_text(in.path("labelled.csv"), with_target);
  write_text(in.path("new.csv"), without);
  PrepConfig like = like_prep(in.path("labelled.csv"), out.path("labelled"), train.out_dir);
  like.missing = MissingValues::mean;
  prep(like);
  like.input = in.path("new.csv");
  like.out_dir = out.path("new");
  const PrepReport r = prep(like);
  EXPECT_TRUE(r.features_only);
  EXPECT_EQ(r.task_reason, "no column 'kind' (the target in '" + train.out_dir + "'): features only, for predict");

  const std::string pattern = ShardSet::split_pattern(like.out_dir, Split::test);
  EXPECT_EQ(error_of([&] { ShardSet::open(pattern); }),
            "shard '" + ShardSet::files(pattern).at(0) + "' holds features only, no targets (prep --like of a CSV "
            "without the target column): only predict reads it");
  const SplitData features = read_whole_split(like.out_dir, Split::test, TargetsNeeded::no);
  const SplitData labelled = read_whole_split(out.path("labelled"), Split::test);
  EXPECT_TRUE(features.meta.features_only);
  EXPECT_EQ(features.meta.num_classes, 3);  // the task is still the training data's
  EXPECT_EQ(features.data.x_f32, labelled.data.x_f32);
  EXPECT_TRUE(features.data.labels.empty());
  EXPECT_EQ(features.meta.x_scale, labelled.meta.x_scale);
  EXPECT_EQ(features.meta.csv, labelled.meta.csv);
  // The loader reads it (predict's path), leaving the batch's targets alone.
  LoaderConfig lc;
  lc.batch = 4;
  lc.shuffle = false;
  lc.drop_last = false;
  const ShardSet set = ShardSet::open(pattern, TargetsNeeded::no);
  BatchLoader loader(set, lc);
  loader.start_epoch(0);
  Batch batch;
  ASSERT_TRUE(loader.next(batch));
  EXPECT_EQ(batch.size(), 4);
}

// A second file must have the training data's columns: one missing, one extra, a category or class it never
// had, a missing value (by --missing) are errors naming them; nothing is written.
TEST(PrepLike, ColumnsCategoriesAndMissingValuesThatDoNotFitAreNamed) {
  TempDir in, out;
  const PrepConfig train = prep_animals(in, out, MissingValues::drop);
  int calls = 0;
  auto like_error = [&](const std::string& text, const std::function<void(PrepConfig&)>& change = {}) {
    write_text(in.path("new.csv"), text);
    PrepConfig c = like_prep(in.path("new.csv"), out.path("new" + std::to_string(++calls)), train.out_dir);
    if (change) change(c);
    const std::string error = prep_error(c);
    if (!error.empty() && c.out_dir != train.out_dir) EXPECT_FALSE(std::filesystem::exists(c.out_dir)) << error;
    return error;
  };
  const std::string file = in.path("new.csv");
  EXPECT_EQ(like_error("id,colour,kind,price\n1,red,cat,3\n"),
            "CSV file '" + file + "' has no column 'size', a feature of the training data");
  EXPECT_EQ(like_error("id,size,colour,note,kind,price\n1,2,red,hi,cat,3\n"),
            "CSV file '" + file + "' has column 'note', which the training data has no feature for (remove it "
            "from the file, or leave it out with prep --like --drop note; predict takes the file's columns as they are)");
  EXPECT_EQ(like_error("id,size,colour,note,kind,price\n1,2,red,hi,cat,3\n",
                       [](PrepConfig& c) { c.drop_columns = {"note"}; }), "");
  EXPECT_EQ(like_error("id,size,colour,kind,price\n1,2,red,cat,3\n2,2,purple,cat,3\n"),
            "CSV line 3, column 'colour': 'purple' is not a category of the training data, which has blue, green, "
            "red");
  EXPECT_EQ(like_error("id,size,colour,kind,price\n1,2,red,emu,3\n"),
            "CSV line 2, column 'kind': class 'emu' is not one of the training data's 3 classes (cat, dog, owl)");
  EXPECT_EQ(like_error("id,size,colour,kind,price\n1,big,red,cat,3\n"),
            "CSV line 2, column 'size': 'big' is not a number (the column is numeric)");
  EXPECT_EQ(like_error("id,size,colour,kind,price\n1,NA,red,cat,3\n"),
            "CSV line 2, column 'size': missing value ('NA'); --missing drop or --missing mean says what to do with "
            "missing values");
  EXPECT_EQ(like_error("id,size,colour,kind,price\n1,2,,cat,3\n", [](PrepConfig& c) { c.missing = MissingValues::mean; }),
            "CSV line 2, column 'colour': missing value (an empty cell) in a categorical column that had none in "
            "the training data, so --missing mean has no '<missing>' category for it; --missing drop leaves the "
            "row out");
  EXPECT_EQ(like_error("id,size,colour,kind,price\n1,NA,red,cat,3\n", [](PrepConfig& c) { c.missing = MissingValues::drop; }),
            "CSV file '" + file + "' has no rows left after --missing drop dropped 1 row with a missing value");
  EXPECT_EQ(like_error("id,size,colour,kind,price\n", {}), "CSV file '" + file + "' has no rows below its header");
  EXPECT_EQ(like_error("id,size,colour,kind,price\n1,2,red,cat,3\n", [](PrepConfig& c) { c.target = "price"; }),
            "--target 'price' is not the target of the training data in '" + train.out_dir + "' ('kind')");
  EXPECT_EQ(like_error("id,size,colour,kind,price\n1,2,red,cat,3\n", [&](PrepConfig& c) { c.out_dir = train.out_dir; }),
            "--out '" + train.out_dir + "' is the --like directory: its training shards would be replaced");
  EXPECT_EQ(read_whole_split(train.out_dir, Split::train).meta.csv->target, "kind");
  EXPECT_EQ(like_error("id,size,colour,kind,price\n1,2,red,cat,3\n", [&](PrepConfig& c) { c.like_dir = in.path("no"); }),
            "--like '" + in.path("no") + "': no shards match '" + ShardSet::split_pattern(in.path("no"), Split::train) +
                "'");
  EXPECT_EQ(like_error("id,size,colour,kind,price\n1,2,red,cat,3\n", [](PrepConfig& c) { c.format = PrepFormat::idx; }),
            "--like converts a CSV file (--format csv), not IDX files");

  // Shards made from IDX files (or by a prep from before --like) hold no transform.
  write_shard(out.path("train-00000.h5"), two_samples_meta(), two_samples());
  EXPECT_EQ(like_error("id,size,colour,kind,price\n1,2,red,cat,3\n", [&](PrepConfig& c) { c.like_dir = out.path(); }),
            "--like '" + out.path() + "': its shards hold no CSV transform (they were made from IDX files, or by a "
            "prep from before --like): prep the training CSV again");

  // The command line: flags --like decides are refused, and --format defaults to csv.
  write_text(file, "id,size,colour,kind,price\n1,2,red,cat,3\n");
  const std::string args = "prep --input " + file + " --like " + train.out_dir + " --out " + out.path("cli");
  std::string printed, err;
  EXPECT_EQ(test::run_cli(args + " --val-fraction 0.2", nullptr, &err), 2);
  EXPECT_NE(err.find("--val-fraction has no effect with --like (the training data decides the task; every row goes "
                     "to the test split)"), std::string::npos) << err;
  ASSERT_EQ(test::run_cli(args, &printed, &err), 0) << err;
  EXPECT_NE(printed.find("wrote " + out.path("cli") + ": 0 train, 0 val, 1 test samples"), std::string::npos) << printed;
}

// A model trained on prep'd CSV data carries the transform, and the CSV sample source reads the raw file
// through it into exactly the inputs the shards gave the model.
TEST(CsvSource, AModelFileCarriesTheTransformAndReproducesTheShardFeatures) {
  TempDir in, out;
  const std::string csv = in.path("animals.csv");
  write_text(csv, animal_csv(first_rows(48)));
  PrepConfig p = csv_prep(csv, out.path("data"), "kind");
  p.missing = MissingValues::mean;
  p.val_fraction = p.test_fraction = 0.0;  // every row in training, in file order
  p.shards = 3;
  prep(p);
  TrainConfig c = test::train_config(p.out_dir, {.model = "linear(out)", .batch = 8, .epochs = 1});
  c.save_model = out.path("model.h5");
  c.checkpoint_dir = out.path("checkpoints");
  std::ostringstream log;
  Trainer(c, test::world()).run(log);

  const ShardSet shards = ShardSet::open(ShardSet::split_pattern(p.out_dir, Split::train));
  const LoadedModel loaded = load_model(c.save_model);
  ASSERT_TRUE(loaded.inputs.csv);
  EXPECT_EQ(loaded.inputs, shards.meta().input_transform());
  EXPECT_EQ(loaded.inputs.csv->feature_names(), shards.meta().feature_names);
  EXPECT_EQ(loaded.inputs.csv->classes, (std::vector<std::string>{"cat", "dog", "owl"}));
  for (const std::string& checkpoint : CheckpointDir(c.checkpoint_dir, 3).list())
    EXPECT_EQ(load_model(checkpoint).inputs, loaded.inputs) << checkpoint;
  {
    auto lock = h5::lock_library();
    const h5::H5Id file = h5::open_file(c.save_model);
    for (const char* attr : {"x_scale", "x_shift", "csv_target", "csv_columns", "csv_category_counts", "csv_means",
                             "csv_categories", "csv_classes"})
      EXPECT_TRUE(h5::has_attr(file.get(), attr)) << attr;
  }

  LoaderConfig lc;
  lc.batch = 48;
  lc.shuffle = false;
  lc.drop_last = false;
  auto one_batch = [&](const SampleSource& source) {
    BatchLoader loader(source, lc);
    loader.start_epoch(0);
    Batch batch;
    EXPECT_TRUE(loader.next(batch));
    return batch;
  };
  const std::unique_ptr<SampleSource> raw = open_csv_with_transform(csv, loaded.inputs, loaded.targets, MissingValues::mean);
  EXPECT_EQ(raw->samples(), 48);
  EXPECT_EQ(raw->paths(), std::vector<std::string>{csv});
  const Batch from_shards = one_batch(shards), from_csv = one_batch(*raw);
  ASSERT_EQ(from_csv.x.numel(), from_shards.x.numel());
  EXPECT_EQ(std::memcmp(from_csv.x.data(), from_shards.x.data(), sizeof(float) * from_csv.x.numel()), 0);
  EXPECT_EQ(from_csv.y.labels, from_shards.y.labels);

  // What the source refuses: a missing value under the default, --missing drop (a row without a prediction),
  // and a model trained on data that did not come from a CSV.
  auto source_error = [&](const InputTransform& inputs, MissingValues missing, TargetSpace targets = {}) {
    return error_of([&] { open_csv_with_transform(csv, inputs, targets, missing); });
  };
  EXPECT_EQ(source_error(loaded.inputs, MissingValues::error).rfind("CSV line 7, column 'size': missing value", 0), 0u);
  EXPECT_EQ(source_error(loaded.inputs, MissingValues::drop),
            "--missing drop would leave rows of '" + csv + "' without a prediction: use error or mean");
  EXPECT_EQ(source_error(InputTransform{}, MissingValues::mean),
            "the model was not trained on data prep made from a CSV (its file holds no CSV transform): it cannot "
            "read CSV file '" + csv + "'");
  EXPECT_EQ(source_error(loaded.inputs, MissingValues::mean, TargetSpace{false}),
            "the model's CSV transform is for classification, its outputs for regression");
}

// The attributes are checked when read: a shard or model file whose transform does not add up is named.
TEST(CsvSource, ATransformThatDoesNotAddUpIsNamed) {
  TempDir dir;
  ShardMeta meta = two_samples_meta();
  meta.csv = CsvTransform{{{"a", {}, 1.5f}, {"b", {"x", "y"}, 0.0f}}, "t", {"no", "yes"}, {"id"}};
  const ShardData data = two_samples();
  write_shard(dir.path("ok.h5"), meta, data);
  EXPECT_EQ(read_shard_meta(dir.path("ok.h5")).csv, meta.csv);
  auto error_with = [&](const std::function<void(ShardMeta&)>& change) {
    ShardMeta bad = meta;
    change(bad);
    write_shard(dir.path("bad.h5"), bad, data);
    return error_of([&] { read_shard_meta(dir.path("bad.h5")); });
  };
  const std::string in = " in shard '" + dir.path("bad.h5") + "'";
  EXPECT_EQ(error_with([](ShardMeta& m) { m.csv->columns[1].categories.push_back("z"); }),
            "the CSV transform (csv_*) makes 4 features but samples have 3" + in);
  EXPECT_EQ(error_with([](ShardMeta& m) { m.csv->classes.push_back("maybe"); }),
            "the CSV transform (csv_classes) has 3 classes but the task has 2" + in);
  EXPECT_EQ(error_with([](ShardMeta& m) { m.csv->columns[0].name = "t"; }),
            "the CSV transform names column 't' twice" + in);
  EXPECT_EQ(error_with([](ShardMeta& m) { m.features_only = true; }), "");

  // Attributes written by another tool: each inconsistency is named.
  auto raw_error = [&](const std::function<void(hid_t)>& change) {
    {
      auto lock = h5::lock_library();
      h5::H5Id file = h5::create_file(dir.path("raw.h5"));
      const std::vector<float> x(6, 1.0f);
      const std::vector<int64_t> y{0, 1};
      h5::write_dataset(file.get(), "x", {2, 3}, x.data());
      h5::write_dataset(file.get(), "y", {2}, y.data());
      h5::write_attr(file.get(), "num_classes", int64_t{2});
      write_csv_transform(file.get(), *meta.csv);
      change(file.get());
    }
    return error_of([&] { read_shard_meta(dir.path("raw.h5")); });
  };
  const std::string raw = " in shard '" + dir.path("raw.h5") + "'";
  EXPECT_EQ(raw_error([](hid_t) {}), "");
  EXPECT_EQ(raw_error([](hid_t f) { h5::write_attr(f, "features_only", int64_t{1}); }),
            "attribute features_only is 1 but dataset 'y' is there" + raw);
  EXPECT_EQ(raw_error([](hid_t f) { h5::write_attr(f, "csv_target", std::string()); }),
            "attribute csv_target is empty" + raw);
  EXPECT_EQ(raw_error([](hid_t f) { h5::write_attr(f, "csv_columns", std::vector<std::string>{"a", ""}); }),
            "the CSV transform names column '' without a name" + raw);
  EXPECT_EQ(raw_error([](hid_t f) { h5::write_attr(f, "csv_means", std::vector<float>{1.0f}); }),
            "attributes csv_category_counts and csv_means need one entry per csv_columns entry (2), not 2 and 1" + raw);
  EXPECT_EQ(raw_error([](hid_t f) { h5::write_attr(f, "csv_category_counts", std::vector<int64_t>{0, -1}); }),
            "attribute csv_category_counts holds -1, outside 0 .. 2 (csv_categories' length)" + raw);
  EXPECT_EQ(raw_error([](hid_t f) { h5::write_attr(f, "csv_category_counts", std::vector<int64_t>{1, 2}); }),
            "attribute csv_category_counts adds up to 3 but csv_categories holds 2" + raw);
  EXPECT_EQ(raw_error([](hid_t f) { h5::write_attr(f, "csv_means", std::vector<float>{NAN, 0.0f}); }),
            "attribute csv_means holds a value that is not finite" + raw);
  EXPECT_EQ(raw_error([](hid_t f) { h5::write_attr(f, "csv_classes", std::vector<std::string>{"only"}); }),
            "attribute csv_classes holds one class" + raw);
  EXPECT_EQ(raw_error([](hid_t f) { H5Adelete(f, "csv_columns"); }), "missing attribute 'csv_columns'" + raw);
  EXPECT_EQ(raw_error([](hid_t f) { h5::write_attr(f, "csv_means", std::string("x")); }).rfind("attribute 'csv_means'", 0),
            0u);

  // One split's shards agree on the transform and on holding targets.
  ShardMeta other = meta;
  other.csv->columns[0].mean = 2.5f;
  std::filesystem::create_directory(dir.path("split"));
  write_shard(dir.path("split/a.h5"), meta, data);
  write_shard(dir.path("split/b.h5"), other, data);
  EXPECT_NE(error_of([&] { ShardSet::open(dir.path("split")); }).find("different CSV transform (csv_*)"), std::string::npos);
  other = meta;
  other.features_only = true;
  write_shard(dir.path("split/b.h5"), other, data);
  EXPECT_NE(error_of([&] { ShardSet::open(dir.path("split"), TargetsNeeded::no); })
                .find("different content: one has targets (y), the other features only"),
            std::string::npos);
}

}  // namespace
}  // namespace ringtrain
