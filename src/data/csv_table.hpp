// Reading a CSV and turning its rows into samples by a CsvTransform: shared by prep (which makes the transform
// from the file), prep --like and predict's CSV input (which take it from the training data).
//
// Strict by design: one cell that silently changed a column's meaning (an "NA" turning a numeric column into
// one-hot features, a "nan" target turning regression into classification) would train a wrong model without
// a word. So a cell that does not fit its column is an error naming line, column and value, and missing
// values are dropped or imputed only when --missing says so.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "prep_common.hpp"
#include "ringtrain/data/csv_transform.hpp"
#include "ringtrain/data/prep.hpp"

namespace ringtrain::csv_detail {

inline constexpr size_t kNoColumn = static_cast<size_t>(-1);

struct CsvFile {
  std::string path;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<int64_t> lines;  // each row's line in the file (the header is line 1), for messages
};

// The header and every non-blank row, each with the header's number of fields; no row at all is an error.
CsvFile read_csv(const std::string& path);

// "CSV line 7, column 'age'": where a cell is, as a person finds it in an editor.
std::string where(const CsvFile& csv, size_t row, size_t col);

enum class CellKind { missing, number, non_finite, text };
// What a cell holds; `value` is set for number and non_finite. The shards store float32, so a number past
// its range would be infinite there: it counts as non-finite.
CellKind read_cell(const std::string& cell, double& value);
bool is_missing(const std::string& cell);
// The cell's number; NaN for a missing cell (which only --missing mean keeps, to be imputed).
double number_of(const std::string& cell);
// The category of a categorical cell: missing cells (kept only under --missing mean) share one, "<missing>".
std::string category_of(const std::string& cell);

// Removes the named columns (--drop) before anything reads their cells; a name the file lacks is an error.
// None may be `target`.
void drop_columns(CsvFile& csv, const std::vector<std::string>& names, const std::string& target);
// The column called `name`, or kNoColumn.
size_t find_column(const CsvFile& csv, const std::string& name);

// Checks every cell against its column's kind (numeric[j]) and --missing, in file order, so the error reported
// is the first problem in the file; `target` (or kNoColumn) is never imputed. Returns the rows to convert:
// under --missing drop those without a missing cell.
std::vector<size_t> checked_rows(const CsvFile& csv, const std::vector<bool>& numeric, size_t target,
                                 MissingValues missing);

// Where a transform's columns are in a CSV: features[j] holds transform column j, `target` the target
// (kNoColumn: the file has none, and its samples are features only).
struct ColumnMap {
  std::vector<size_t> features;
  size_t target = kNoColumn;
};

// The rows as samples: features in the transform's order (raw numbers, one-hot 0/1), then the label or
// target. Missing numeric cells (kept only under --missing mean) are NaN until impute_means fills them. A
// categorical cell outside its column's categories, or a target outside the classes, is an error naming
// line, column and value. The table's meta has the shape, task and names; no normalisation.
prep_detail::Table encode(const CsvFile& csv, const CsvTransform& transform, const ColumnMap& map,
                          const std::vector<size_t>& rows);

// The feature index of each numeric column's value (a categorical column spans its categories).
std::vector<size_t> numeric_features(const CsvTransform& transform);
// --missing mean: a numeric feature's missing values (NaN) become its column's mean, from the training split.
void impute_means(const CsvTransform& transform, prep_detail::Table& table);

// A CSV other than the one prep made `transform` from, converted by it: each feature column found by name
// (one missing is an error naming it), the target column if the file has it, the transform's dropped columns
// and `drop` left out, and any other column an error naming it. `rows_dropped` counts rows --missing drop
// left out.
prep_detail::Table convert_with_transform(const std::string& path, const CsvTransform& transform,
                                          MissingValues missing, const std::vector<std::string>& drop,
                                          int64_t& rows_dropped);

}  // namespace ringtrain::csv_detail
