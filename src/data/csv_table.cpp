#include "csv_table.hpp"

#include <algorithm>
#include <cfloat>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string_view>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/text.hpp"

namespace ringtrain::csv_detail {

namespace {

// A UTF-8 byte order mark, which spreadsheet exports put before the first column's name.
constexpr std::string_view kBom = "\xEF\xBB\xBF";
// What a missing cell of a categorical column is under --missing mean: a category of its own.
constexpr std::string_view kMissingCategory = "<missing>";

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

}  // namespace

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
  csv.path = path;
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
  if (csv.rows.empty()) throw Error("CSV file '" + path + "' has no rows below its header");
  return csv;
}

std::string where(const CsvFile& csv, size_t row, size_t col) {
  return "CSV line " + std::to_string(csv.lines[row]) + ", column '" + csv.header[col] + "'";
}

bool is_missing(const std::string& cell) {
  const auto& tokens = kMissingCellTokens;
  return cell.empty() || std::find(tokens.begin(), tokens.end(), cell) != tokens.end();
}

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

double number_of(const std::string& cell) {
  double value = 0.0;
  return read_cell(cell, value) == CellKind::number ? value : std::numeric_limits<double>::quiet_NaN();
}

std::string category_of(const std::string& cell) { return is_missing(cell) ? std::string(kMissingCategory) : cell; }

namespace {

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

}  // namespace

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


void drop_columns(CsvFile& csv, const std::vector<std::string>& names, const std::string& target) {
  for (const std::string& name : names) {
    if (name == target) throw Error("--drop '" + name + "' is the --target column");
    const size_t j = find_column(csv, name);
    if (j == kNoColumn) throw Error("--drop '" + name + "': CSV file '" + csv.path + "' has no such column");
    csv.header.erase(csv.header.begin() + static_cast<std::ptrdiff_t>(j));
    for (std::vector<std::string>& row : csv.rows) row.erase(row.begin() + static_cast<std::ptrdiff_t>(j));
  }
}

size_t find_column(const CsvFile& csv, const std::string& name) {
  const auto it = std::find(csv.header.begin(), csv.header.end(), name);
  return it == csv.header.end() ? kNoColumn : static_cast<size_t>(it - csv.header.begin());
}

namespace {

// "a, b, c" for a message, cut short when long.
std::string listed(const std::vector<std::string>& values) {
  std::string out;
  for (const std::string& v : values) out += (out.empty() ? "" : ", ") + v;
  return excerpt(out, 100);
}

// A category the transform lacks: a value the training data never had, or a missing cell where the training
// data had none (so there is no "<missing>" category for --missing mean to use).
Error unknown_category(const CsvFile& csv, size_t row, size_t col, const CsvColumn& column) {
  const std::string& cell = csv.rows[row][col];
  if (is_missing(cell))
    return Error(where(csv, row, col) + ": missing value (" + (cell.empty() ? "an empty cell" : "'" + cell + "'") +
                 ") in a categorical column that had none in the training data, so --missing mean has no '" +
                 std::string(kMissingCategory) + "' category for it; --missing drop leaves the row out");
  return Error(where(csv, row, col) + ": '" + cell + "' is not a category of the training data, which has " +
               listed(column.categories));
}

// What one sample of the transform's rows is, as a shard says it (without normalisation).
ShardMeta sample_meta(const CsvTransform& t, bool features_only) {
  ShardMeta m;
  m.sample_shape = {t.features()};
  m.x_type = PixelType::f32;
  m.feature_names = t.feature_names();
  m.csv = t;
  m.features_only = features_only;
  if (t.classification()) {
    m.class_names = t.classes;
    m.num_classes = static_cast<int64_t>(t.classes.size());
  } else {
    m.target_dim = 1;
    m.target_names = {t.target};
  }
  return m;
}

template <typename Value>
std::map<std::string, Value> index_of(const std::vector<std::string>& values) {
  std::map<std::string, Value> index;
  for (size_t k = 0; k < values.size(); ++k) index.emplace(values[k], static_cast<Value>(k));
  return index;
}

}  // namespace

prep_detail::Table encode(const CsvFile& csv, const CsvTransform& t, const ColumnMap& map,
                          const std::vector<size_t>& rows) {
  prep_detail::Table out;
  out.meta = sample_meta(t, map.target == kNoColumn);
  out.meta.samples = static_cast<int64_t>(rows.size());
  const size_t features = static_cast<size_t>(t.features());
  out.data.x_f32.assign(rows.size() * features, 0.0f);
  std::vector<std::map<std::string, size_t>> categories;
  for (const CsvColumn& column : t.columns) categories.push_back(index_of<size_t>(column.categories));
  const std::map<std::string, int64_t> classes = index_of<int64_t>(t.classes);
  for (size_t r = 0; r < rows.size(); ++r) {
    const std::vector<std::string>& row = csv.rows[rows[r]];
    float* x = out.data.x_f32.data() + r * features;
    for (size_t j = 0; j < t.columns.size(); ++j) {
      const std::string& cell = row[map.features[j]];
      if (t.columns[j].numeric()) {
        *x++ = static_cast<float>(number_of(cell));
        continue;
      }
      const auto it = categories[j].find(category_of(cell));
      if (it == categories[j].end()) throw unknown_category(csv, rows[r], map.features[j], t.columns[j]);
      x[it->second] = 1.0f;
      x += t.columns[j].categories.size();
    }
    if (map.target == kNoColumn) continue;
    const std::string& cell = row[map.target];
    if (!t.classification()) {
      out.data.targets.push_back(static_cast<float>(number_of(cell)));
      continue;
    }
    const auto label = classes.find(cell);
    if (label == classes.end())
      throw Error(where(csv, rows[r], map.target) + ": class '" + cell + "' is not one of the training data's " +
                  counted(static_cast<int64_t>(t.classes.size()), "class") + " (" + listed(t.classes) + ")");
    out.data.labels.push_back(label->second);
  }
  return out;
}

std::vector<size_t> numeric_features(const CsvTransform& t) {
  std::vector<size_t> out;
  size_t f = 0;
  for (const CsvColumn& column : t.columns) {
    if (column.numeric()) out.push_back(f);
    f += column.numeric() ? 1 : column.categories.size();
  }
  return out;
}

void impute_means(const CsvTransform& t, prep_detail::Table& table) {
  const size_t features = static_cast<size_t>(t.features());
  const std::vector<size_t> numeric = numeric_features(t);
  size_t n = 0;
  for (const CsvColumn& column : t.columns) {
    if (!column.numeric()) continue;
    const size_t f = numeric[n++];
    for (size_t r = 0; r < static_cast<size_t>(table.meta.samples); ++r)
      if (float& v = table.data.x_f32[r * features + f]; std::isnan(v)) v = column.mean;
  }
}

namespace {

// Where the transform's columns are in `csv`, after the training data's --drop columns left it: each feature
// column must be there, the target may be, and no other column may.
ColumnMap map_columns(CsvFile& csv, const CsvTransform& t) {
  for (const std::string& name : t.dropped)
    if (find_column(csv, name) != kNoColumn) drop_columns(csv, {name}, t.target);
  ColumnMap map;
  std::vector<bool> used(csv.header.size(), false);
  for (const CsvColumn& column : t.columns) {
    const size_t j = find_column(csv, column.name);
    if (j == kNoColumn)
      throw Error("CSV file '" + csv.path + "' has no column '" + column.name + "', a feature of the training data");
    map.features.push_back(j);
    used[j] = true;
  }
  map.target = find_column(csv, t.target);
  if (map.target != kNoColumn) used[map.target] = true;
  for (size_t j = 0; j < csv.header.size(); ++j)
    if (!used[j])
      throw Error("CSV file '" + csv.path + "' has column '" + csv.header[j] + "', which the training data has no "
                  "feature for (remove it from the file, or leave it out with prep --like --drop " + csv.header[j] +
                  "; predict takes the file's columns as they are)");
  return map;
}

}  // namespace

prep_detail::Table convert_with_transform(const std::string& path, const CsvTransform& t, MissingValues missing,
                                          const std::vector<std::string>& drop, int64_t& rows_dropped) {
  CsvFile csv = read_csv(path);
  drop_columns(csv, drop, t.target);
  const ColumnMap map = map_columns(csv, t);
  // Each column's kind is the training data's, whatever this file's cells look like.
  std::vector<bool> numeric(csv.header.size(), false);
  for (size_t j = 0; j < t.columns.size(); ++j) numeric[map.features[j]] = t.columns[j].numeric();
  if (map.target != kNoColumn) numeric[map.target] = !t.classification();
  const std::vector<size_t> rows = checked_rows(csv, numeric, map.target, missing);
  rows_dropped = static_cast<int64_t>(csv.rows.size() - rows.size());
  if (rows.empty())
    throw Error("CSV file '" + path + "' has no rows left after --missing drop dropped " +
                counted(rows_dropped, "row") + " with a missing value");
  prep_detail::Table table = encode(csv, t, map, rows);
  impute_means(t, table);
  return table;
}

}  // namespace ringtrain::csv_detail
