// CSV prep: reads the file (csv_table.hpp), decides each column's kind and the task, makes the CsvTransform
// (feature columns, categories, classes), converts the rows by it, splits them, and takes the numeric
// features' means and standardisation from the training split. Numeric columns become standardised float
// features (stored as x_scale/x_shift), other columns one-hot "column=value" features; the target is a
// class (classification) or a number (regression).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <set>
#include <tuple>

#include "csv_table.hpp"
#include "prep_common.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

namespace {

using namespace csv_detail;

// --task auto takes an integer target with at most this many distinct values (and fewer than half as many as
// rows) for classes: digits 0-9, ratings 1-5, a 0/1 flag. More, or as many as half the rows, are quantities
// that happen to be whole (prices, counts), whose order and distance a regression keeps.
constexpr size_t kMaxAutoClasses = 20;

// A column is numeric when more than half of its non-missing cells are numbers (NaN and infinity count: they
// are reported as not finite), so a few stray text cells are reported rather than turning it into one-hot
// features. A column with no value at all is an error: neither kind fits it.
std::vector<bool> numeric_columns(const CsvFile& csv) {
  const size_t n = csv.header.size();
  std::vector<size_t> present(n, 0), numbers(n, 0);
  for (const auto& row : csv.rows)
    for (size_t j = 0; j < n; ++j) {
      double value;
      const CellKind kind = read_cell(row[j], value);
      present[j] += kind != CellKind::missing;
      numbers[j] += kind == CellKind::number || kind == CellKind::non_finite;
    }
  std::vector<bool> numeric(n);
  for (size_t j = 0; j < n; ++j) {
    if (present[j] == 0) throw Error("CSV column '" + csv.header[j] + "' has no values: every cell is missing");
    numeric[j] = 2 * numbers[j] > present[j];
  }
  return numeric;
}

struct TaskChoice {
  bool classification = false;
  std::string reason;  // one line for the user: "target 'digit': 10 distinct integer values -> classification; ..."
};

// What scikit-learn's type_of_target would call the target, with a bound on the classes: text is classes;
// numbers are classes when all are integers and few (kMaxAutoClasses) but more than one; otherwise a
// regression target.
TaskChoice auto_task(const CsvFile& csv, bool numeric, size_t target, const std::vector<size_t>& rows) {
  const std::string name = "target '" + csv.header[target] + "': ";
  if (!numeric) return {true, name + "not numeric -> classification"};
  std::set<double> values;
  bool integers = true;
  for (size_t i : rows) {
    const double v = number_of(csv.rows[i][target]);
    integers = integers && v == std::floor(v);
    values.insert(v);
  }
  const std::string distinct = std::to_string(values.size()) + " distinct" + (integers ? " integer" : "") + " values";
  if (!integers) return {false, name + distinct + ", not all integers -> regression"};
  if (values.size() < 2) return {false, name + "one value, no classes to tell apart -> regression"};
  if (values.size() > kMaxAutoClasses)
    return {false, name + distinct + " (more than " + std::to_string(kMaxAutoClasses) + ") -> regression; "
                   "--task classification overrides"};
  if (2 * values.size() >= rows.size())
    return {false, name + distinct + " in " + std::to_string(rows.size()) + " rows (not fewer than half) -> "
                   "regression; --task classification overrides"};
  return {true, name + distinct + " -> classification; --task regression overrides"};
}

TaskChoice choose_task(const CsvFile& csv, const std::vector<bool>& numeric, size_t target,
                       const std::vector<size_t>& rows, const PrepConfig& c) {
  const TaskChoice choice = c.task == TaskKind::automatic
                                ? auto_task(csv, numeric[target], target, rows)
                                : TaskChoice{c.task == TaskKind::classification,
                                             "target '" + c.target + "': --task " + name_of(c.task)};
  if (!choice.classification && !numeric[target])
    throw Error("regression target '" + c.target + "' has non-numeric values (most of its cells are not numbers)");
  return choice;
}

// The classes in label order: a numeric target's by value, any other's alphabetically.
std::vector<std::string> class_names(const CsvFile& csv, size_t target, bool numeric, const std::vector<size_t>& rows) {
  std::vector<std::string> classes;
  for (size_t i : rows) classes.push_back(csv.rows[i][target]);
  std::sort(classes.begin(), classes.end(), [&](const std::string& a, const std::string& b) {
    return numeric ? number_of(a) < number_of(b) : a < b;
  });
  classes.erase(std::unique(classes.begin(), classes.end()), classes.end());
  return classes;
}

// The feature columns, every column but the target in file order, and where they are. Categories come from the
// converted rows only, so a value seen only in dropped rows is no feature.
CsvTransform make_transform(const CsvFile& csv, const std::vector<bool>& numeric, size_t target, bool classification,
                            const std::vector<size_t>& rows, const PrepConfig& c, ColumnMap& map) {
  CsvTransform t;
  for (size_t j = 0; j < csv.header.size(); ++j) {
    if (j == target) continue;
    CsvColumn column{csv.header[j], {}, 0.0f};
    if (!numeric[j]) {
      std::set<std::string> values;
      for (size_t i : rows) values.insert(category_of(csv.rows[i][j]));
      column.categories.assign(values.begin(), values.end());
    }
    t.columns.push_back(std::move(column));
    map.features.push_back(j);
  }
  if (t.columns.empty()) throw Error("CSV file '" + c.input + "' has no feature columns besides the target");
  map.target = target;
  t.target = c.target;
  t.dropped = c.drop_columns;
  if (classification) {
    t.classes = class_names(csv, target, numeric[target], rows);
    if (t.classes.size() < 2) throw Error("classification target '" + c.target + "' has only one class");
  }
  return t;
}

struct Splits {
  prep_detail::Table train, val, test;
};

// Each numeric column's mean over the training split's values (missing cells, NaN here, left out): what
// --missing mean imputes, in every split (val and test must not see their own statistics), and prep --like
// later. Imputed before standardisation, whose mean is then the same, so an imputed value becomes the centre, 0.
void take_training_means(CsvTransform& t, const prep_detail::Table& train) {
  const size_t features = static_cast<size_t>(train.meta.features());
  const std::vector<size_t> numeric = numeric_features(t);
  size_t n_numeric = 0;
  for (CsvColumn& column : t.columns) {
    if (!column.numeric()) continue;
    const size_t f = numeric[n_numeric++];
    double sum = 0.0;
    int64_t n = 0;
    for (size_t r = 0; r < static_cast<size_t>(train.meta.samples); ++r)
      if (const float v = train.data.x_f32[r * features + f]; !std::isnan(v)) sum += v, ++n;
    if (n == 0)
      throw Error("CSV column '" + column.name + "' has no values in the training split to take "
                  "the mean of (--missing mean); use --missing drop or another --seed");
    column.mean = static_cast<float>(sum / static_cast<double>(n));
  }
}

// (scale, shift) that take `n` values (value(i)) to mean 0 and deviation 1; a constant column keeps scale 1.
// Two passes in double: the one-pass sum of squares loses a small spread on a large offset (1e9 + {0, 64}).
// A spread too small for float32's scale (below about 3e-39) is an error naming the column, not an infinite
// scale in the shards that no run could use.
std::pair<float, float> standardisation(size_t n, const std::function<double(size_t)>& value, const std::string& column) {
  double sum = 0.0, sq = 0.0;
  for (size_t i = 0; i < n; ++i) sum += value(i);
  const double mean = sum / static_cast<double>(n);
  for (size_t i = 0; i < n; ++i) sq += (value(i) - mean) * (value(i) - mean);
  const double sd = std::sqrt(sq / static_cast<double>(n));
  if (sd == 0.0) return {1.0f, static_cast<float>(-mean)};
  const float scale = static_cast<float>(1.0 / sd);
  if (!std::isfinite(scale)) {
    char deviation[32];
    std::snprintf(deviation, sizeof deviation, "%.3g", sd);
    throw Error("CSV column '" + column + "' varies too little to standardise in float32 (deviation " + deviation +
                "): multiply it by a power of ten first");
  }
  return {scale, static_cast<float>(-mean / sd)};
}

// Numeric features get the training split's mean and deviation as scale and shift; one-hot ones stay 0/1.
// A regression target likewise (y_scale/y_shift): prices in the hundreds of thousands would give the
// default model gradients of 1e5 and a non-finite loss within steps; training sees standardised values and
// reports losses in the target's own units.
void standardise(const std::vector<size_t>& numeric, const std::string& target, Splits& s) {
  const prep_detail::Table& train = s.train;
  const size_t features = static_cast<size_t>(train.meta.features());
  const size_t rows = static_cast<size_t>(train.meta.samples);
  std::vector<float> scale(features, 1.0f), shift(features, 0.0f);
  for (size_t f : numeric)
    std::tie(scale[f], shift[f]) = standardisation(
        rows, [&](size_t r) { return train.data.x_f32[r * features + f]; }, train.meta.feature_names[f]);
  float y_scale = 1.0f, y_shift = 0.0f;
  if (!train.meta.classification())
    std::tie(y_scale, y_shift) =
        standardisation(train.data.targets.size(), [&](size_t i) { return train.data.targets[i]; }, target);
  for (prep_detail::Table* t : {&s.train, &s.val, &s.test})
    t->meta.x_scale = scale, t->meta.x_shift = shift, t->meta.y_scale = y_scale, t->meta.y_shift = y_shift;
}

}  // namespace

PrepReport prep_csv(const PrepConfig& c) {
  prep_detail::check_config(c);
  if (c.target.empty()) throw Error("prep --format csv needs --target COLUMN");
  CsvFile csv = read_csv(c.input);
  if (csv.rows.size() < 3)
    throw Error("CSV file '" + c.input + "' has " + std::to_string(csv.rows.size()) + " rows; need at least 3");
  drop_columns(csv, c.drop_columns, c.target);
  const size_t target = find_column(csv, c.target);
  if (target == kNoColumn) throw Error("CSV file '" + c.input + "' has no column '" + c.target + "'");
  const std::vector<bool> numeric = numeric_columns(csv);
  const std::vector<size_t> rows = checked_rows(csv, numeric, target, c.missing);
  const int64_t dropped = static_cast<int64_t>(csv.rows.size() - rows.size());
  if (rows.size() < 3)
    throw Error("CSV file '" + c.input + "' has " + std::to_string(rows.size()) + " rows left after --missing drop "
                "dropped " + std::to_string(dropped) + "; need at least 3");
  const TaskChoice task = choose_task(csv, numeric, target, rows, c);
  ColumnMap map;
  CsvTransform transform = make_transform(csv, numeric, target, task.classification, rows, c, map);
  const prep_detail::Table all = encode(csv, transform, map, rows);

  Splits s;
  prep_detail::Table rest;
  prep_detail::split_off(all, c.test_fraction, c.seed + 1, rest, s.test);
  prep_detail::split_off(rest, c.val_fraction, c.seed, s.train, s.val);
  take_training_means(transform, s.train);
  for (prep_detail::Table* t : {&s.train, &s.val, &s.test}) {
    impute_means(transform, *t);
    t->meta.csv = transform;
  }
  standardise(numeric_features(transform), c.target, s);

  // Only now that the whole file converted: an error above leaves an earlier run's shards as they were.
  PrepReport r;
  prep_detail::publish_splits(c.out_dir, s.train, s.val, s.test, c.shards, r);
  r.features = all.meta.features();
  r.outputs = all.meta.outputs();
  r.classification = all.meta.classification();
  r.dropped = dropped;
  r.task_reason = task.reason;
  return r;
}

}  // namespace ringtrain
