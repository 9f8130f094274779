// The HDF5 shard format (docs/data-format.md): datasets `x` [N, ...] (uint8 or float32) and `y` ([N] int64
// class labels, or [N] / [N, T] float32 targets), or for token data `x` [N, T] token ids and `y` [N, T] int64
// next-token labels (a label per position, num_classes the vocabulary), with root attributes `format`, `num_classes` (0 for
// regression), `x_scale`/`x_shift` (value = raw * scale + shift, one entry or one per feature), for regression
// `y_scale`/`y_shift` (one entry each, likewise for the targets), and optional `feature_names`, `target_names`,
// `class_names` and, for data prep converted from a CSV, the CSV transform (csv_transform.hpp). A shard of
// features only (`prep --like` of a CSV without the target column) has no `y` and says so: `features_only`.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ringtrain/data/csv_transform.hpp"
#include "ringtrain/tensor/targets.hpp"
#include "ringtrain/tensor/tensor.hpp"

namespace ringtrain {

inline constexpr const char* kShardFormat = "ringtrain-shard-1";

enum class PixelType { u8, f32 };

// How a model's input values were made from raw data, as the training shards record it and model files copy
// it: value = raw * x_scale + x_shift (one entry, or one per feature), and for data prep converted from a
// CSV, how a row of the CSV becomes the raw values.
struct InputTransform {
  std::vector<float> x_scale{1.0f}, x_shift{0.0f};
  std::optional<CsvTransform> csv;
  bool operator==(const InputTransform&) const = default;
};

// What a reader needs to know about a shard without holding its samples; every field is checked.
struct ShardMeta {
  std::string path;
  int64_t samples = 0;
  Shape sample_shape;        // x's shape without N
  PixelType x_type = PixelType::u8;
  int64_t num_classes = 0;   // > 0: classification with int64 labels in [0, num_classes)
  int64_t target_dim = 0;    // regression: values per sample
  // Token data: x is [N, tokens] token ids in [0, num_classes) and y [N, tokens] labels, one per position
  // (0: one label per sample).
  int64_t tokens = 0;
  std::string tokenizer;     // token data: how text became the ids ("bytes": UTF-8 bytes); "" when not said
  std::vector<float> x_scale, x_shift;
  // Regression targets are standardised like x (one scale for every target, so that a loss converts back
  // into the targets' units exactly).
  float y_scale = 1.0f, y_shift = 0.0f;
  std::vector<std::string> feature_names, target_names, class_names;
  std::optional<CsvTransform> csv;  // data prep converted from a CSV
  // No targets (no `y`): features to predict on (prep --like of a CSV without the target column). The task
  // (classes or target count) is still the training data's.
  bool features_only = false;
  // The file as it was checked: read_shard_data refuses one that has changed since (another job rewrote it).
  uint64_t file_bytes = 0;
  int64_t modified_ns = 0;

  bool classification() const { return num_classes > 0; }
  int64_t features() const { return shape_numel(sample_shape); }
  int64_t outputs() const { return classification() ? num_classes : target_dim; }
  // Labels in Targets.labels per sample: tokens for token data, else 1 (classification).
  int64_t labels_per_sample() const { return tokens > 0 ? tokens : 1; }
  TargetSpace target_space() const { return {classification(), y_scale, y_shift}; }
  InputTransform input_transform() const { return {x_scale, x_shift, csv}; }
};

// A shard's samples, as stored (normalisation is applied when batches are assembled).
struct ShardData {
  std::vector<uint8_t> x_u8;  // x_type u8
  std::vector<float> x_f32;   // x_type f32
  std::vector<int64_t> labels;
  std::vector<float> targets;
};

// Opens the shard and checks format, dtypes, shapes and label range (token data: every token id too); throws
// Error naming file and problem.
ShardMeta read_shard_meta(const std::string& path);
ShardData read_shard_data(const ShardMeta& meta);

// The attributes y_scale and y_shift of an open shard or model file (1 and 0 where absent), checked;
// `where` ends the error message (" in shard 'a.h5'").
std::pair<float, float> read_target_standardisation(hid_t file, const std::string& where);
// Writes them, as shards and model files of regression data hold them.
void write_target_standardisation(hid_t file, float scale, float shift);

// The attributes x_scale/x_shift (1 and 0 where absent) and csv_* of an open shard or model file, checked
// against a sample of `features` values and `num_classes` classes (0: regression); `where` ends the message.
InputTransform read_input_transform(hid_t file, int64_t features, int64_t num_classes, const std::string& where);
void write_input_transform(hid_t file, const InputTransform& transform);

// Sample `i` of `data` as the model sees it: its meta.features() values normalised (raw * x_scale + x_shift)
// to `x`, its label or standardised targets to row `row` of `y` (nothing for a shard of features only); token
// data's meta.tokens labels to y.labels[row * tokens, (row + 1) * tokens).
void sample_into_batch(const ShardMeta& meta, const ShardData& data, int64_t i, float* x, Targets& y, int64_t row);

// Writes a shard (prep and tests). x_u8 or x_f32 must hold meta.samples * meta.features() values.
void write_shard(const std::string& path, const ShardMeta& meta, const ShardData& data);

// Throws unless two shards of one dataset agree on everything but their sample count.
void check_compatible(const ShardMeta& first, const ShardMeta& other);
// Throws unless `other`'s samples fit the model that `first`'s train: sample shape, classes or target count,
// labels per sample, and target standardisation (a split beside synthetic data, which shares no storage type or normalisation).
void check_same_task(const ShardMeta& first, const ShardMeta& other);

}  // namespace ringtrain
