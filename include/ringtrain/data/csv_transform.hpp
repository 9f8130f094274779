// How `ringtrain prep` turns the rows of a CSV into samples, recorded so that another CSV can be turned into
// the same features: by `prep --like` (a separate test file, data to predict) and by predict's CSV input,
// which reads it from the model file (docs/data-format.md, "CSV transform"). The values' normalisation is
// not part of it: it is the x_scale/x_shift that shards and model files hold beside it.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ringtrain {

// A feature column of the CSV: numeric (one feature) or categorical (one 0/1 feature per category).
struct CsvColumn {
  std::string name;
  std::vector<std::string> categories;  // in feature order; empty: numeric
  // Numeric: the mean of the column's values in the training split, what --missing mean puts in a missing cell.
  float mean = 0.0f;

  bool numeric() const { return categories.empty(); }
  bool operator==(const CsvColumn&) const = default;
};

struct CsvTransform {
  std::vector<CsvColumn> columns;    // the feature columns, in feature order
  std::string target;                // the target column
  std::vector<std::string> classes;  // classification: the target's values in label order; empty: regression
  std::vector<std::string> dropped;  // --drop: columns a CSV may have that are no features

  bool classification() const { return !classes.empty(); }
  int64_t features() const;
  // "area", "district=north", ...: what prep writes as the shards' feature_names.
  std::vector<std::string> feature_names() const;
  bool operator==(const CsvTransform&) const = default;
};

// The attributes csv_* of a shard or model file (the same names in both). Reading checks them against each
// other; `where` ends an error message (" in shard 'a.h5'"). No csv_target attribute: no transform.
void write_csv_transform(hid_t file, const CsvTransform& transform);
std::optional<CsvTransform> read_csv_transform(hid_t file, const std::string& where);

}  // namespace ringtrain
