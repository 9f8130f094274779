// CSV with a header row. Numeric columns become standardised float features (statistics from the training
// rows only, stored as x_scale/x_shift); other columns are one-hot encoded as "column=value" features.
// The target column is a class (classification) or a number (regression).
//
// Strict by design: one cell that silently changed a column's meaning (an "NA" turning a numeric column into
// one-hot features, a "nan" target turning regression into classification) would train a wrong model without
// a word. So a cell that does not fit its column is an error naming line, column and value, and missing
// values are dropped or imputed only when --missing says so.
#include <algorithm>
#include <charconv>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <tuple>
#include <filesystem>
#include <functional>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <string_view>

#include "prep_common.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

namespace {

// A UTF-8 byte order mark, which spreadsheet exports put before the first column's name.
constexpr std::string_view kBom = "\xEF\xBB\xBF";
// What a missing cell of a categorical column is under --missing mean: a category of its own.
constexpr std::string_view kMissingCategory = "<missing>";

struct CsvFile {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<int64_t> lines;  // each row's line in the file (the header is line 1), for messages
};

// "CSV line 7, column 'age'": where a cell is, as a person finds it in an editor.
std::string where(const CsvFile& csv, size_t row, size_t col) {
  return "CSV line " + std::to_string(csv.lines[row]) + ", column '" + csv.header[col] + "'";
}

std::string trimmed(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// Fields of one line: commas split them, except inside double quotes ("" is a quote); a CR (CRLF files) is
// dropped. A field cannot span lines, so a quote still open at the end of the line is an error.
std::vector<std::string> split_csv_line(const std::string& line, int64_t line_no) {
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
  if (quoted)
    throw Error("CSV line " + std::to_string(line_no) + ": a quoted field is not closed (fields cannot span lines)");
  fields.push_back(cur);
  for (auto& f : fields) f = trimmed(f);
  return fields;
}

// Columns are found by name (--target, feature names in the shards), so each needs one of its own.
void check_header(const std::vector<std::string>& header) {
  std::map<std::string, size_t> seen;
  for (size_t j = 0; j < header.size(); ++j) {
    if (header[j].empty()) throw Error("CSV header: column " + std::to_string(j + 1) + " has no name");
    const auto [first, fresh] = seen.emplace(header[j], j);
    if (!fresh)
      throw Error("CSV header: column '" + header[j] + "' appears twice (columns " + std::to_string(first->second + 1) +
                  " and " + std::to_string(j + 1) + ")");
  }
}

bool blank(const std::string& line) { return line.find_first_not_of(" \t\r") == std::string::npos; }

CsvFile read_csv(const std::string& path) {
  std::error_code ec;  // a FIFO would block the open until a writer comes; a directory reads as empty
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec))
    throw Error("CSV file '" + path + "' is not a regular file");
  std::ifstream in(path);
  if (!in) throw Error("cannot open CSV file '" + path + "'");
  std::string line;
  if (std::getline(in, line) && line.starts_with(kBom)) line.erase(0, kBom.size());
  if (!in || blank(line)) throw Error("CSV file '" + path + "' is empty (needs a header row)");
  CsvFile csv;
  csv.header = split_csv_line(line, 1);
  check_header(csv.header);
  for (int64_t line_no = 2; std::getline(in, line); ++line_no) {
    // A NUL would cut messages short and make look-alike categories ("p" and "p\0x"): a binary file.
    if (line.find('\0') != std::string::npos)
      throw Error("CSV line " + std::to_string(line_no) + " holds a NUL byte: '" + path + "' is not a text file");
    if (blank(line)) continue;
    csv.rows.push_back(split_csv_line(line, line_no));
    csv.lines.push_back(line_no);
    if (csv.rows.back().size() != csv.header.size())
      throw Error("CSV line " + std::to_string(line_no) + " has " + std::to_string(csv.rows.back().size()) +
                  " fields but the header has " + std::to_string(csv.header.size()));
  }
  if (csv.rows.size() < 3)
    throw Error("CSV file '" + path + "' has " + std::to_string(csv.rows.size()) + " rows; need at least 3");
  return csv;
}

enum class CellKind { missing, number, non_finite, text };

bool is_missing(const std::string& cell) {
  const auto& tokens = kMissingCellTokens;
  return cell.empty() || std::find(tokens.begin(), tokens.end(), cell) != tokens.end();
}

// What a cell holds; `value` is set for number and non_finite. The shards store float32, so a number past
// its range would be infinite there: it counts as non-finite.
CellKind read_cell(const std::string& cell, double& value) {
  if (is_missing(cell)) return CellKind::missing;
  // from_chars takes no leading '+', which some exports write before positive numbers.
  const bool plus = cell.size() > 1 && cell[0] == '+' && cell[1] != '+' && cell[1] != '-';
  const char *begin = cell.data() + (plus ? 1 : 0), *end = cell.data() + cell.size();
  const auto [stop, ec] = std::from_chars(begin, end, value);
  if (ec == std::errc::invalid_argument || stop != end) return CellKind::text;
  // Out of range: beyond double ("1e999": infinite) or below its smallest normal ("1e-400": about 0, usable).
  if (ec == std::errc::result_out_of_range) value = std::strtod(std::string(begin, end).c_str(), nullptr);
  return std::isfinite(value) && std::fabs(value) <= FLT_MAX ? CellKind::number : CellKind::non_finite;
}

// The cell's number; NaN for a missing cell (which only --missing mean keeps, to be imputed).
double number_of(const std::string& cell) {
  double value = 0.0;
  return read_cell(cell, value) == CellKind::number ? value : std::numeric_limits<double>::quiet_NaN();
}

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

// A missing cell is an error unless --missing says what to do with it; a target is never imputed.
void check_missing(const CsvFile& csv, size_t row, size_t col, bool target, MissingValues missing) {
  const std::string& cell = csv.rows[row][col];
  const std::string found = cell.empty() ? "an empty cell" : "'" + cell + "'";
  if (missing == MissingValues::error)
    throw Error(where(csv, row, col) + ": missing value (" + found + "); --missing drop or --missing mean says "
                "what to do with missing values");
  if (missing == MissingValues::mean && target)
    throw Error(where(csv, row, col) + ": the target is missing (" + found + "); --missing mean does not impute "
                "targets (--missing drop drops such rows)");
}

// Checks every cell against its column's kind and --missing, in file order, so the error reported is the first
// problem in the file. Returns the rows to convert: under --missing drop those without a missing cell.
std::vector<size_t> checked_rows(const CsvFile& csv, const std::vector<bool>& numeric, size_t target,
                                 MissingValues missing) {
  std::vector<size_t> kept;
  for (size_t i = 0; i < csv.rows.size(); ++i) {
    bool complete = true;
    for (size_t j = 0; j < csv.header.size(); ++j) {
      const std::string& cell = csv.rows[i][j];
      double value;
      const CellKind kind = read_cell(cell, value);
      if (kind == CellKind::missing) {
        check_missing(csv, i, j, j == target, missing);
        complete = false;
      } else if (kind == CellKind::non_finite && numeric[j]) {
        throw Error(where(csv, i, j) + ": value '" + cell + "' is not a finite number" +
                    (std::isfinite(value) ? " in float32, the shards' type (at most 3.4e38)" : ""));
      } else if (kind == CellKind::text && numeric[j]) {
        throw Error(where(csv, i, j) + ": '" + cell + "' is not a number (the column is numeric)");
      }
    }
    if (complete || missing != MissingValues::drop) kept.push_back(i);
  }
  return kept;
}

// A feature column: numeric (one standardised feature) or categorical (one 0/1 feature per category).
struct Column {
  size_t index;
  std::vector<std::string> categories;  // sorted; empty: numeric
};

// What the rows become: the feature columns, how the target is read, and one sample's description.
struct Layout {
  std::vector<Column> columns;
  size_t target = 0;
  std::map<std::string, int64_t> class_index;  // classification: target cell -> label
  ShardMeta meta;
};

// The category of a categorical cell: missing cells (kept only under --missing mean) share one.
std::string category_of(const std::string& cell) { return is_missing(cell) ? std::string(kMissingCategory) : cell; }

// Categories come from the converted rows only, so a value seen only in dropped rows is no feature.
std::vector<Column> feature_columns(const CsvFile& csv, const std::vector<bool>& numeric, size_t target,
                                    const std::vector<size_t>& rows, std::vector<std::string>& names) {
  std::vector<Column> columns;
  for (size_t j = 0; j < csv.header.size(); ++j) {
    if (j == target) continue;
    Column col{j, {}};
    if (numeric[j]) {
      names.push_back(csv.header[j]);
    } else {
      std::set<std::string> values;
      for (size_t i : rows) values.insert(category_of(csv.rows[i][j]));
      col.categories.assign(values.begin(), values.end());
      for (const auto& v : col.categories) names.push_back(csv.header[j] + "=" + v);
    }
    columns.push_back(std::move(col));
  }
  return columns;
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

Layout make_layout(const CsvFile& csv, const std::vector<bool>& numeric, size_t target, const PrepConfig& c,
                   const std::vector<size_t>& rows) {
  Layout l;
  l.target = target;
  const bool classification =
      c.task == TaskKind::classification || (c.task == TaskKind::automatic && !numeric[target]);
  if (!classification && !numeric[target])
    throw Error("regression target '" + c.target + "' has non-numeric values (most of its cells are not numbers)");
  l.columns = feature_columns(csv, numeric, target, rows, l.meta.feature_names);
  const int64_t features = static_cast<int64_t>(l.meta.feature_names.size());
  if (features == 0) throw Error("CSV file '" + c.input + "' has no feature columns besides the target");
  l.meta.sample_shape = {features};
  l.meta.x_type = PixelType::f32;
  if (classification) {
    const std::vector<std::string> classes = class_names(csv, target, numeric[target], rows);
    if (classes.size() < 2) throw Error("classification target '" + c.target + "' has only one class");
    for (size_t k = 0; k < classes.size(); ++k) l.class_index[classes[k]] = static_cast<int64_t>(k);
    l.meta.class_names = classes;
    l.meta.num_classes = static_cast<int64_t>(classes.size());
  } else {
    l.meta.target_dim = 1;
    l.meta.target_names = {c.target};
  }
  return l;
}

// The converted rows: features in column order, then the label or target. Missing numeric cells (kept only
// under --missing mean) are NaN here until impute_missing fills them from the training split.
prep_detail::Table encode(const CsvFile& csv, const Layout& layout, const std::vector<size_t>& rows) {
  prep_detail::Table t;
  t.meta = layout.meta;
  t.meta.samples = static_cast<int64_t>(rows.size());
  for (size_t i : rows) {
    const std::vector<std::string>& row = csv.rows[i];
    for (const Column& col : layout.columns) {
      if (col.categories.empty()) {
        t.data.x_f32.push_back(static_cast<float>(number_of(row[col.index])));
        continue;
      }
      const std::string category = category_of(row[col.index]);
      for (const auto& value : col.categories) t.data.x_f32.push_back(category == value ? 1.0f : 0.0f);
    }
    if (t.meta.classification()) t.data.labels.push_back(layout.class_index.at(row[layout.target]));
    else t.data.targets.push_back(static_cast<float>(number_of(row[layout.target])));
  }
  return t;
}

// The feature index of each numeric column (one feature each; a categorical column spans its categories).
std::vector<size_t> numeric_features(const std::vector<Column>& columns) {
  std::vector<size_t> out;
  size_t f = 0;
  for (const Column& col : columns) {
    if (col.categories.empty()) out.push_back(f);
    f += std::max<size_t>(1, col.categories.size());
  }
  return out;
}

struct Splits {
  prep_detail::Table train, val, test;
};

// --missing mean: a numeric feature's missing values (NaN) become the mean of its training values, in every
// split (val and test must not see their own statistics). Done before standardisation, whose mean is then
// the same, so an imputed value becomes exactly the centre, 0.
void impute_missing(const std::vector<size_t>& numeric, Splits& s) {
  const size_t features = static_cast<size_t>(s.train.meta.features());
  for (size_t f : numeric) {
    double sum = 0.0;
    int64_t n = 0;
    for (size_t r = 0; r < static_cast<size_t>(s.train.meta.samples); ++r)
      if (const float v = s.train.data.x_f32[r * features + f]; !std::isnan(v)) sum += v, ++n;
    if (n == 0)
      throw Error("CSV column '" + s.train.meta.feature_names[f] + "' has no values in the training split to take "
                  "the mean of (--missing mean); use --missing drop or another --seed");
    const float mean = static_cast<float>(sum / static_cast<double>(n));
    for (prep_detail::Table* t : {&s.train, &s.val, &s.test})
      for (size_t r = 0; r < static_cast<size_t>(t->meta.samples); ++r)
        if (float& v = t->data.x_f32[r * features + f]; std::isnan(v)) v = mean;
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

// --drop: columns that are no features (identifiers, columns that leak the target) leave the file before
// anything reads them, so their cells are neither checked nor encoded.
void drop_columns(CsvFile& csv, const PrepConfig& c) {
  for (const std::string& name : c.drop_columns) {
    if (name == c.target) throw Error("--drop '" + name + "' is the --target column");
    const auto it = std::find(csv.header.begin(), csv.header.end(), name);
    if (it == csv.header.end())
      throw Error("--drop '" + name + "': CSV file '" + c.input + "' has no such column");
    const auto j = it - csv.header.begin();
    csv.header.erase(it);
    for (std::vector<std::string>& row : csv.rows) row.erase(row.begin() + j);
  }
}

size_t column_index(const CsvFile& csv, const PrepConfig& c) {
  const auto it = std::find(csv.header.begin(), csv.header.end(), c.target);
  if (it == csv.header.end()) throw Error("CSV file '" + c.input + "' has no column '" + c.target + "'");
  return static_cast<size_t>(it - csv.header.begin());
}

}  // namespace

PrepReport prep_csv(const PrepConfig& c) {
  prep_detail::check_config(c);
  if (c.target.empty()) throw Error("prep --format csv needs --target COLUMN");
  CsvFile csv = read_csv(c.input);
  drop_columns(csv, c);
  const size_t target = column_index(csv, c);
  const std::vector<bool> numeric = numeric_columns(csv);
  const std::vector<size_t> rows = checked_rows(csv, numeric, target, c.missing);
  const int64_t dropped = static_cast<int64_t>(csv.rows.size() - rows.size());
  if (rows.size() < 3)
    throw Error("CSV file '" + c.input + "' has " + std::to_string(rows.size()) + " rows left after --missing drop "
                "dropped " + std::to_string(dropped) + "; need at least 3");
  const Layout layout = make_layout(csv, numeric, target, c, rows);
  const prep_detail::Table all = encode(csv, layout, rows);

  Splits s;
  prep_detail::Table rest;
  prep_detail::split_off(all, c.test_fraction, c.seed + 1, rest, s.test);
  prep_detail::split_off(rest, c.val_fraction, c.seed, s.train, s.val);
  const std::vector<size_t> numeric_f = numeric_features(layout.columns);
  impute_missing(numeric_f, s);
  standardise(numeric_f, c.target, s);

  // Only now that the whole file converted: an error above leaves an earlier run's shards as they were.
  PrepReport r;
  prep_detail::publish_splits(c.out_dir, s.train, s.val, s.test, c.shards, r);
  r.features = all.meta.features();
  r.outputs = all.meta.outputs();
  r.classification = all.meta.classification();
  r.dropped = dropped;
  return r;
}

}  // namespace ringtrain
