// CSV with a header row. Numeric columns become standardised float features (statistics from the training
// rows only, stored as x_scale/x_shift); other columns are one-hot encoded as "column=value" features.
// The target column is a class (classification) or a number (regression).
#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <set>

#include "prep_common.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

namespace {

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> fields;
  std::string cur;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char ch = line[i];
    if (quoted) {
      if (ch == '"' && i + 1 < line.size() && line[i + 1] == '"') cur += '"', ++i;
      else if (ch == '"') quoted = false;
      else cur += ch;
    } else if (ch == '"') {
      quoted = true;
    } else if (ch == ',') {
      fields.push_back(cur), cur.clear();
    } else if (ch != '\r') {
      cur += ch;
    }
  }
  fields.push_back(cur);
  for (auto& f : fields) {
    const size_t b = f.find_first_not_of(" \t"), e = f.find_last_not_of(" \t");
    f = b == std::string::npos ? "" : f.substr(b, e - b + 1);
  }
  return fields;
}

bool parse_number(const std::string& s, double& out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size() && std::isfinite(out);
}

}  // namespace

PrepReport prep_csv(const PrepConfig& c) {
  prep_detail::check_config(c);
  if (c.target.empty()) throw Error("prep --format csv needs --target COLUMN");
  std::ifstream in(c.input);
  if (!in) throw Error("cannot open CSV file '" + c.input + "'");
  std::string line;
  if (!std::getline(in, line) || line.empty()) throw Error("CSV file '" + c.input + "' is empty (needs a header row)");
  const std::vector<std::string> header = split_csv_line(line);
  const auto target_it = std::find(header.begin(), header.end(), c.target);
  if (target_it == header.end()) throw Error("CSV file '" + c.input + "' has no column '" + c.target + "'");
  const size_t target_col = static_cast<size_t>(target_it - header.begin());

  std::vector<std::vector<std::string>> rows;
  for (int64_t line_no = 2; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    rows.push_back(split_csv_line(line));
    if (rows.back().size() != header.size())
      throw Error("CSV line " + std::to_string(line_no) + " has " + std::to_string(rows.back().size()) +
                  " fields but the header has " + std::to_string(header.size()));
    for (size_t j = 0; j < header.size(); ++j)
      if (rows.back()[j].empty())
        throw Error("CSV line " + std::to_string(line_no) + " has no value in column '" + header[j] + "'");
  }
  if (rows.size() < 3) throw Error("CSV file '" + c.input + "' has " + std::to_string(rows.size()) + " rows; need at least 3");

  // A column is numeric when every value parses as a finite number.
  std::vector<bool> numeric(header.size(), true);
  for (const auto& row : rows)
    for (size_t j = 0; j < header.size(); ++j) {
      double v;
      if (numeric[j] && !parse_number(row[j], v)) numeric[j] = false;
    }
  const bool classification =
      c.task == TaskKind::classification || (c.task == TaskKind::automatic && !numeric[target_col]);
  if (!classification && !numeric[target_col])
    throw Error("regression target '" + c.target + "' has non-numeric values");

  // Feature layout: numeric columns as one feature each, categorical ones as one feature per value.
  struct Column {
    size_t index;
    std::vector<std::string> categories;  // empty: numeric
  };
  std::vector<Column> columns;
  prep_detail::Table all;
  for (size_t j = 0; j < header.size(); ++j) {
    if (j == target_col) continue;
    Column col{j, {}};
    if (!numeric[j]) {
      std::set<std::string> values;
      for (const auto& row : rows) values.insert(row[j]);
      col.categories.assign(values.begin(), values.end());
      for (const auto& v : col.categories) all.meta.feature_names.push_back(header[j] + "=" + v);
    } else {
      all.meta.feature_names.push_back(header[j]);
    }
    columns.push_back(std::move(col));
  }
  const int64_t features = static_cast<int64_t>(all.meta.feature_names.size());
  if (features == 0) throw Error("CSV file '" + c.input + "' has no feature columns besides the target");

  std::map<std::string, int64_t> class_index;
  if (classification) {
    std::vector<std::string> classes;
    for (const auto& row : rows) classes.push_back(row[target_col]);
    std::sort(classes.begin(), classes.end(), [&](const std::string& a, const std::string& b) {
      double x, y;
      if (numeric[target_col] && parse_number(a, x) && parse_number(b, y)) return x < y;
      return a < b;
    });
    classes.erase(std::unique(classes.begin(), classes.end()), classes.end());
    if (classes.size() < 2) throw Error("classification target '" + c.target + "' has only one class");
    for (size_t k = 0; k < classes.size(); ++k) class_index[classes[k]] = static_cast<int64_t>(k);
    all.meta.class_names = classes;
    all.meta.num_classes = static_cast<int64_t>(classes.size());
  } else {
    all.meta.target_dim = 1;
    all.meta.target_names = {c.target};
  }

  all.meta.samples = static_cast<int64_t>(rows.size());
  all.meta.sample_shape = {features};
  all.meta.x_type = PixelType::f32;
  for (const auto& row : rows) {
    for (const Column& col : columns) {
      if (col.categories.empty()) {
        double v;
        parse_number(row[col.index], v);
        all.data.x_f32.push_back(static_cast<float>(v));
      } else {
        for (const auto& value : col.categories) all.data.x_f32.push_back(row[col.index] == value ? 1.0f : 0.0f);
      }
    }
    if (classification) {
      all.data.labels.push_back(class_index.at(row[target_col]));
    } else {
      double v;
      parse_number(row[target_col], v);
      all.data.targets.push_back(static_cast<float>(v));
    }
  }

  prep_detail::Table rest, train, val, test;
  prep_detail::split_off(all, c.test_fraction, c.seed + 1, rest, test);
  prep_detail::split_off(rest, c.val_fraction, c.seed, train, val);

  // Standardise numeric features with training statistics; one-hot features stay 0/1.
  std::vector<float> scale(static_cast<size_t>(features), 1.0f), shift(static_cast<size_t>(features), 0.0f);
  size_t f = 0;
  for (const Column& col : columns) {
    if (!col.categories.empty()) {
      f += col.categories.size();
      continue;
    }
    double sum = 0.0, sq = 0.0;
    const double n = static_cast<double>(train.meta.samples);
    for (int64_t r = 0; r < train.meta.samples; ++r) {
      const double v = train.data.x_f32[static_cast<size_t>(r * features) + f];
      sum += v, sq += v * v;
    }
    const double mean = sum / n, sd = std::sqrt(std::max(0.0, sq / n - mean * mean));
    scale[f] = sd > 0.0 ? static_cast<float>(1.0 / sd) : 1.0f;
    shift[f] = static_cast<float>(-mean) * scale[f];
    ++f;
  }
  for (prep_detail::Table* t : {&train, &val, &test}) t->meta.x_scale = scale, t->meta.x_shift = shift;

  prep_detail::clear_old_shards(c.out_dir);
  PrepReport r;
  r.train = prep_detail::write_split(c.out_dir, "train", train, c.shards);
  r.val = prep_detail::write_split(c.out_dir, "val", val, 1);
  r.test = prep_detail::write_split(c.out_dir, "test", test, 1);
  r.features = features;
  r.outputs = all.meta.outputs();
  r.classification = classification;
  return r;
}

}  // namespace ringtrain
