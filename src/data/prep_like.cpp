// prep --like DIR: converts another CSV (a separate test file, or data to predict without the target column)
// into the features the training data in DIR has: its column order, categories, classes, normalisation and
// --missing mean values, all read from DIR's training shards (their CSV transform). The rows all go to the
// test split, <out>/test-00000.h5; without the target column it is a shard of features only, for predict.
#include <filesystem>

#include "csv_table.hpp"
#include "prep_common.hpp"
#include "ringtrain/data/shard_set.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

namespace {

// DIR's training shards, which carry the transform and the normalisation.
ShardMeta training_meta(const std::string& dir) {
  ShardMeta meta;
  try {
    meta = ShardSet::open(ShardSet::split_pattern(dir, Split::train)).meta();
  } catch (const Error& e) {
    throw Error("--like '" + dir + "': " + e.what());
  }
  if (!meta.csv)
    throw Error("--like '" + dir + "': its shards hold no CSV transform (they were made from IDX files, or by a "
                "prep from before --like): prep the training CSV again");
  return meta;
}

// Publishing replaces the shards in --out: there, they would be the training data's.
void check_out_dir(const PrepConfig& c) {
  std::error_code ec;
  if (std::filesystem::equivalent(c.out_dir, c.like_dir, ec))
    throw Error("--out '" + c.out_dir + "' is the --like directory: its training shards would be replaced");
}

}  // namespace

PrepReport prep_csv_like(const PrepConfig& c) {
  prep_detail::check_config(c);
  check_out_dir(c);
  const ShardMeta trained = training_meta(c.like_dir);
  const CsvTransform& transform = *trained.csv;
  if (!c.target.empty() && c.target != transform.target)
    throw Error("--target '" + c.target + "' is not the target of the training data in '" + c.like_dir + "' ('" +
                transform.target + "')");
  PrepReport r;
  prep_detail::Table test =
      csv_detail::convert_with_transform(c.input, transform, c.missing, c.drop_columns, r.dropped);
  test.meta.x_scale = trained.x_scale;
  test.meta.x_shift = trained.x_shift;
  test.meta.y_scale = trained.y_scale;
  test.meta.y_shift = trained.y_shift;

  prep_detail::publish_splits(c.out_dir, prep_detail::Table{}, prep_detail::Table{}, test, 1, r);
  r.features = test.meta.features();
  r.outputs = test.meta.outputs();
  r.classification = test.meta.classification();
  r.features_only = test.meta.features_only;
  r.task_reason = r.features_only ? "no column '" + transform.target + "' (the target in '" + c.like_dir +
                                        "'): features only, for predict"
                                  : "target '" + transform.target + "' as in '" + c.like_dir + "'";
  return r;
}

}  // namespace ringtrain
