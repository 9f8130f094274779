// `ringtrain prep`: converts IDX (MNIST, Fashion-MNIST; .gz or plain), CSV and UTF-8 text files into HDF5
// shards <out>/train-NNNNN.h5, val-NNNNN.h5 and test-NNNNN.h5; with --like DIR, a second CSV into
// <out>/test-00000.h5 as the training data in DIR was converted.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ringtrain/tensor/enum_names.hpp"

namespace ringtrain {

enum class PrepFormat {
  idx,
  csv,
  text,  // UTF-8 text to byte tokens in windows of `context` + 1 (prep_text.cpp)
};
inline constexpr EnumNames<PrepFormat, 3> kPrepFormatNames{
    {{PrepFormat::idx, "idx"}, {PrepFormat::csv, "csv"}, {PrepFormat::text, "text"}}};
constexpr const auto& enum_names(PrepFormat) { return kPrepFormatNames; }

// What a CSV's target column is for.
enum class TaskKind {
  // classification when the target column is not numeric (most of its values are not numbers), or when its
  // values are all integers and few (prep_csv.cpp kMaxAutoClasses, and fewer than half the rows)
  automatic,
  classification,
  regression,
};
inline constexpr EnumNames<TaskKind, 3> kTaskKindNames{{{TaskKind::automatic, "auto"},
                                                        {TaskKind::classification, "classification"},
                                                        {TaskKind::regression, "regression"}}};
constexpr const auto& enum_names(TaskKind) { return kTaskKindNames; }

// The cells CSV prep reads as missing besides an empty one: what R, pandas, databases and spreadsheets write.
inline constexpr std::array<std::string_view, 9> kMissingCellTokens{"NA",   "N/A",  "NaN",  "nan", "NAN",
                                                                    "null", "NULL", "None", "?"};

// What CSV prep does with a missing cell (empty, or one of kMissingCellTokens).
enum class MissingValues {
  error,  // the first missing cell is an error naming its line and column
  drop,   // rows with any missing cell are left out
  mean,   // numeric features: the training split's mean; categorical: a category "<missing>"; target: error
};
inline constexpr EnumNames<MissingValues, 3> kMissingValuesNames{
    {{MissingValues::error, "error"}, {MissingValues::drop, "drop"}, {MissingValues::mean, "mean"}}};
constexpr const auto& enum_names(MissingValues) { return kMissingValuesNames; }

struct PrepConfig {
  PrepFormat format = PrepFormat::idx;
  std::string input;            // idx: directory with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]; csv: file;
                                // text: a file, or a directory whose files are read in name order
  std::string out_dir;
  int64_t shards = 4;           // training shards (val and test get one each)
  double val_fraction = 0.1;    // of the training samples, held out for validation (text: of the bytes before test's)
  double test_fraction = 0.2;   // csv, text, or idx without t10k files: of all samples (text: the last bytes)
  int64_t context = 0;          // text: tokens per window (each sample T tokens and their T next tokens)
  std::string target;           // csv: target column
  std::vector<std::string> drop_columns;  // csv: columns left out (identifiers, leaking columns)
  TaskKind task = TaskKind::automatic;  // csv
  MissingValues missing = MissingValues::error;  // csv
  uint64_t seed = 0;
  // csv: a prep output directory whose training shards' CSV transform converts `input` (every row to the
  // test split); "" = make the transform from `input`
  std::string like_dir;
};

struct PrepReport {
  int64_t train = 0, val = 0, test = 0, features = 0, outputs = 0;
  bool classification = false;
  int64_t dropped = 0;  // csv rows left out by --missing drop
  bool features_only = false;  // --like of a CSV without the target column
  std::string task_reason;     // csv: the task and why, one line ("target 'digit': 10 distinct integer values -> ...")
  int64_t tokens = 0;          // text: tokens per window (the counts above are windows)
};

PrepReport prep_idx(const PrepConfig& config);
PrepReport prep_csv(const PrepConfig& config);
PrepReport prep_csv_like(const PrepConfig& config);  // config.like_dir
PrepReport prep_text(const PrepConfig& config);
PrepReport prep(const PrepConfig& config);  // dispatches on config.format and like_dir

}  // namespace ringtrain
