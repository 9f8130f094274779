#include "ringtrain/data/shard.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <sstream>
#include <tuple>

#include "ringtrain/data/hdf5.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

namespace {

std::string in(const std::string& path) { return " in shard '" + path + "'"; }

std::vector<std::string> optional_strs(hid_t file, const std::string& name) {
  return h5::has_attr(file, name) ? h5::read_attr_strs(file, name) : std::vector<std::string>{};
}

// Before anything is allocated for it: a dataset whose header declares more data than the file holds (a
// truncated file, or a header that claims two billion samples) would otherwise be read until the kernel
// kills the rank. Compressed data is stored in fewer bytes, but not in none.
void check_stored(const h5::DatasetInfo& d, const char* name, const std::string& path) {
  const bool short_of_data = d.filtered ? d.stored_bytes == 0 && d.declared_bytes > 0 : d.stored_bytes < d.declared_bytes;
  if (!short_of_data) return;
  throw Error("dataset '" + std::string(name) + "' of shape " + shape_str(d.dims) + " declares " +
              std::to_string(d.declared_bytes) + " bytes but the file holds " + std::to_string(d.stored_bytes) +
              " of them" + in(path) + ": the file is truncated or its header is wrong");
}

// The file's size and modification time, which change when anything rewrites it.
std::pair<uint64_t, int64_t> file_stamp(const std::string& path) {
  std::error_code ec;
  const uint64_t bytes = std::filesystem::file_size(path, ec);
  const auto modified = std::filesystem::last_write_time(path, ec);
  return {ec ? 0 : bytes,
          ec ? 0 : std::chrono::duration_cast<std::chrono::nanoseconds>(modified.time_since_epoch()).count()};
}

// NaN and infinity in x or in regression targets would reach the loss as NaN at some step, far from the
// sample that caused it: refused at load, naming the sample.
void check_finite(const std::vector<float>& values, int64_t per_sample, const char* name, const std::string& path) {
  for (size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i]))
      throw Error("non-finite value (NaN or infinity) in " + std::string(name) + " of sample " +
                  std::to_string(static_cast<int64_t>(i) / std::max<int64_t>(per_sample, 1)) + in(path));
}

// A shard of features only says so (attribute features_only = 1), so that a shard that lost its `y` is still
// an error naming the dataset.
bool is_features_only(hid_t file, const std::string& path) {
  if (!h5::has_attr(file, "features_only") || h5::read_attr_i64(file, "features_only") != 1) return false;
  if (h5::has_dataset(file, "y")) throw Error("attribute features_only is 1 but dataset 'y' is there" + in(path));
  return true;
}

// y's type and shape, which say the task with num_classes, and the labels' range.
void read_targets_meta(hid_t file, const std::string& path, ShardMeta& m) {
  const h5::DatasetInfo y = h5::dataset_info(file, path, "y");
  check_stored(y, "y", path);
  if (y.dims.empty() || y.dims[0] != m.samples)
    throw Error("x has " + std::to_string(m.samples) + " samples but y has " +
                (y.dims.empty() ? std::string("none") : std::to_string(y.dims[0])) + in(path));
  if (m.classification()) {
    // [N, T] beside x [N, T]: token data, a label per position.
    const bool per_position = y.dims.size() == 2 && m.sample_shape == Shape{y.dims[1]};
    if (y.type != h5::ElemType::i64 || (y.dims.size() != 1 && !per_position)) {
      Shape xdims = {m.samples};
      xdims.insert(xdims.end(), m.sample_shape.begin(), m.sample_shape.end());
      throw Error("dataset 'y' is " + y.type_name + " " + shape_str(y.dims) + " beside x " + shape_str(xdims) +
                  in(path) + "; classification shards need int64 labels [samples], token shards int64 labels "
                  "[samples, T] beside x [samples, T]");
    }
    if (per_position) m.tokens = y.dims[1];
    std::vector<int64_t> labels;
    h5::read_i64(file, "y", labels);
    const size_t per_sample = static_cast<size_t>(m.labels_per_sample());
    for (size_t i = 0; i < labels.size(); ++i)
      if (labels[i] < 0 || labels[i] >= m.num_classes)
        throw Error("label " + std::to_string(labels[i]) + " at sample " + std::to_string(i / per_sample) +
                    (m.tokens ? " position " + std::to_string(i % per_sample) : std::string()) +
                    " is out of range [0, " + std::to_string(m.num_classes) + ")" + in(path));
  } else {
    if (y.type != h5::ElemType::f32 || y.dims.size() > 2)
      throw Error("dataset 'y' is " + y.type_name + " " + shape_str(y.dims) + in(path) +
                  "; regression shards need float32 targets [samples] or [samples, targets] (or set num_classes)");
    m.target_dim = y.dims.size() == 2 ? y.dims[1] : 1;
  }
}

// Token data's x holds ids that the model's embedding looks up as they are: no normalisation, and every id
// an integer of the vocabulary, refused here naming the first that is not rather than at some step.
void check_token_ids(hid_t file, const ShardMeta& m) {
  if (m.x_scale != std::vector<float>{1.0f} || m.x_shift != std::vector<float>{0.0f})
    throw Error("token shards hold token ids as they are, but x_scale/x_shift normalise them" + in(m.path) +
                " (write x_scale 1 and x_shift 0)");
  const int64_t vocabulary = m.num_classes;
  auto refuse = [&](size_t i, const std::string& id) {
    throw Error("token id " + id + " at sample " + std::to_string(static_cast<int64_t>(i) / m.tokens) + " position " +
                std::to_string(static_cast<int64_t>(i) % m.tokens) + in(m.path) + " is not in the vocabulary of " +
                std::to_string(vocabulary) + " (an integer in [0, " + std::to_string(vocabulary) + "))");
  };
  if (m.x_type == PixelType::u8) {
    if (vocabulary >= 256) return;  // every byte is an id
    std::vector<uint8_t> ids;
    h5::read_u8(file, "x", ids);
    for (size_t i = 0; i < ids.size(); ++i)
      if (ids[i] >= vocabulary) refuse(i, std::to_string(ids[i]));
    return;
  }
  std::vector<float> ids;
  h5::read_f32(file, "x", ids);
  for (size_t i = 0; i < ids.size(); ++i)
    if (!(ids[i] >= 0.0f && ids[i] < static_cast<float>(vocabulary) && ids[i] == std::floor(ids[i]))) {
      std::ostringstream text;
      text << ids[i];
      refuse(i, text.str());
    }
}

}  // namespace

ShardMeta read_shard_meta(const std::string& path) {
  auto lock = h5::lock_library();
  h5::H5Id file = h5::open_file(path);
  ShardMeta m;
  m.path = path;
  const h5::DatasetInfo x = h5::dataset_info(file.get(), path, "x");
  if (x.dims.empty()) throw Error("dataset 'x' is a scalar" + in(path) + "; expected [samples, ...]");
  check_stored(x, "x", path);
  if (x.type == h5::ElemType::u8) m.x_type = PixelType::u8;
  else if (x.type == h5::ElemType::f32) m.x_type = PixelType::f32;
  else throw Error("dataset 'x' has type " + x.type_name + in(path) + "; expected uint8 or float32");
  m.samples = x.dims[0];
  if (m.samples == 0) throw Error("shard '" + path + "' is empty (x has 0 samples)");
  m.sample_shape.assign(x.dims.begin() + 1, x.dims.end());
  if (m.sample_shape.empty()) m.sample_shape = {1};
  if (m.features() == 0) throw Error("x of shape " + shape_str(x.dims) + " has no features per sample" + in(path));

  m.num_classes = h5::has_attr(file.get(), "num_classes") ? h5::read_attr_i64(file.get(), "num_classes") : 0;
  if (m.num_classes < 0 || m.num_classes > (int64_t{1} << 24))
    throw Error("attribute num_classes is " + std::to_string(m.num_classes) + ", outside 0 .. 2^24" + in(path));
  m.features_only = is_features_only(file.get(), path);
  if (!m.features_only) read_targets_meta(file.get(), path, m);

  InputTransform input = read_input_transform(file.get(), m.features(), m.num_classes, in(path));
  m.x_scale = std::move(input.x_scale);
  m.x_shift = std::move(input.x_shift);
  m.csv = std::move(input.csv);
  if (!m.classification()) std::tie(m.y_scale, m.y_shift) = read_target_standardisation(file.get(), in(path));
  if (m.tokens) check_token_ids(file.get(), m);
  if (h5::has_attr(file.get(), "tokenizer")) m.tokenizer = h5::read_attr_str(file.get(), "tokenizer");
  m.feature_names = optional_strs(file.get(), "feature_names");
  m.target_names = optional_strs(file.get(), "target_names");
  m.class_names = optional_strs(file.get(), "class_names");
  // Without y, the names say how many targets a regression model gives.
  if (m.features_only && !m.classification())
    m.target_dim = std::max<int64_t>(1, static_cast<int64_t>(m.target_names.size()));
  std::tie(m.file_bytes, m.modified_ns) = file_stamp(path);
  return m;
}

InputTransform read_input_transform(hid_t file, int64_t features, int64_t num_classes, const std::string& where) {
  InputTransform t;
  for (auto* attr : {&t.x_scale, &t.x_shift}) {
    const char* name = attr == &t.x_scale ? "x_scale" : "x_shift";
    if (h5::has_attr(file, name)) *attr = h5::read_attr_f32(file, name);
    if (attr->size() != 1 && static_cast<int64_t>(attr->size()) != features)
      throw Error(std::string("attribute ") + name + " has " + std::to_string(attr->size()) +
                  " entries but samples have " + std::to_string(features) + " features" + where);
  }
  t.csv = read_csv_transform(file, where);
  if (!t.csv) return t;
  if (t.csv->features() != features)
    throw Error("the CSV transform (csv_*) makes " + std::to_string(t.csv->features()) + " features but samples have " +
                std::to_string(features) + where);
  if (static_cast<int64_t>(t.csv->classes.size()) != num_classes)
    throw Error("the CSV transform (csv_classes) has " + std::to_string(t.csv->classes.size()) + " classes but the " +
                "task has " + std::to_string(num_classes) + where);
  return t;
}

void write_input_transform(hid_t file, const InputTransform& t) {
  h5::write_attr(file, "x_scale", t.x_scale);
  h5::write_attr(file, "x_shift", t.x_shift);
  if (t.csv) write_csv_transform(file, *t.csv);
}

namespace {

// x = raw * scale + shift, with one (scale, shift) for all features or one per feature.
template <typename Raw>
void normalise(const Raw* __restrict raw, const ShardMeta& meta, float* __restrict x) {
  const int64_t features = meta.features();
  if (meta.x_scale.size() == 1 && meta.x_shift.size() == 1) {
    const float scale = meta.x_scale[0], shift = meta.x_shift[0];
    for (int64_t f = 0; f < features; ++f) x[f] = static_cast<float>(raw[f]) * scale + shift;
    return;
  }
  const bool per_scale = meta.x_scale.size() > 1, per_shift = meta.x_shift.size() > 1;
  for (int64_t f = 0; f < features; ++f)
    x[f] = static_cast<float>(raw[f]) * meta.x_scale[per_scale ? static_cast<size_t>(f) : 0] +
           meta.x_shift[per_shift ? static_cast<size_t>(f) : 0];
}

}  // namespace

void sample_into_batch(const ShardMeta& meta, const ShardData& data, int64_t i, float* x, Targets& y, int64_t row) {
  const size_t first = static_cast<size_t>(i * meta.features());
  if (meta.x_type == PixelType::u8) normalise(data.x_u8.data() + first, meta, x);
  else normalise(data.x_f32.data() + first, meta, x);
  if (meta.features_only) return;  // the batch's targets stay as the loader made them: predict reads none
  if (meta.classification()) {
    const int64_t per_sample = meta.labels_per_sample();
    for (int64_t t = 0; t < per_sample; ++t)
      y.labels[static_cast<size_t>(row * per_sample + t)] =
          static_cast<int32_t>(data.labels[static_cast<size_t>(i * per_sample + t)]);
    return;
  }
  for (int64_t t = 0; t < meta.target_dim; ++t)
    y.values[row * meta.target_dim + t] =
        data.targets[static_cast<size_t>(i * meta.target_dim + t)] * meta.y_scale + meta.y_shift;
}

// y_scale/y_shift: one finite value each, the scale not zero (a target divided by it is reported).
std::pair<float, float> read_target_standardisation(hid_t file, const std::string& where) {
  float values[2] = {1.0f, 0.0f};
  const char* names[2] = {"y_scale", "y_shift"};
  for (int k = 0; k < 2; ++k) {
    if (!h5::has_attr(file, names[k])) continue;
    std::vector<float> v;
    try {
      v = h5::read_attr_f32(file, names[k]);
    } catch (const Error& e) {
      throw Error(e.what() + where);  // a string attribute: name the file
    }
    if (v.size() != 1 || !std::isfinite(v[0]) || (k == 0 && v[0] == 0.0f))
      throw Error(std::string("attribute ") + names[k] + " must be one finite" + (k == 0 ? ", non-zero" : "") +
                  " number (every target shares it)" + where);
    values[k] = v[0];
  }
  return {values[0], values[1]};
}

void write_target_standardisation(hid_t file, float scale, float shift) {
  h5::write_attr(file, "y_scale", std::vector<float>{scale});
  h5::write_attr(file, "y_shift", std::vector<float>{shift});
}

ShardData read_shard_data(const ShardMeta& meta) {
  if (file_stamp(meta.path) != std::pair{meta.file_bytes, meta.modified_ns})
    throw Error("shard '" + meta.path + "' changed on disk since the run checked it (its size or modification "
                "time): another job may be rewriting the data; give each run data that stays put");
  auto lock = h5::lock_library();
  h5::H5Id file = h5::open_file(meta.path);
  ShardData d;
  if (meta.x_type == PixelType::u8) h5::read_u8(file.get(), "x", d.x_u8);
  else h5::read_f32(file.get(), "x", d.x_f32);
  if (meta.features_only) {
  } else if (meta.classification()) {
    h5::read_i64(file.get(), "y", d.labels);
  } else {
    h5::read_f32(file.get(), "y", d.targets);
  }
  check_finite(d.x_f32, meta.features(), "x", meta.path);
  check_finite(d.targets, meta.target_dim, "y", meta.path);
  // What the loader hands the model must be finite too: a y_scale of 3e38 overflows any target above 1.
  for (size_t i = 0; i < d.targets.size(); ++i)
    if (!std::isfinite(d.targets[i] * meta.y_scale + meta.y_shift))
      throw Error("the target of sample " + std::to_string(static_cast<int64_t>(i) / std::max<int64_t>(meta.target_dim, 1)) +
                  " overflows when standardised (y * y_scale + y_shift)" + in(meta.path));
  return d;
}

namespace {

void write_shard_into(hid_t f, const ShardMeta& meta, const ShardData& data) {
  Shape xdims = {meta.samples};
  xdims.insert(xdims.end(), meta.sample_shape.begin(), meta.sample_shape.end());
  if (meta.x_type == PixelType::u8) h5::write_dataset(f, "x", xdims, data.x_u8.data());
  else h5::write_dataset(f, "x", xdims, data.x_f32.data());
  if (meta.features_only) {
    h5::write_attr(f, "features_only", int64_t{1});
  } else if (meta.classification()) {
    const Shape ydims = meta.tokens ? Shape{meta.samples, meta.tokens} : Shape{meta.samples};
    h5::write_dataset(f, "y", ydims, data.labels.data());
  } else {
    Shape ydims = meta.target_dim == 1 ? Shape{meta.samples} : Shape{meta.samples, meta.target_dim};
    h5::write_dataset(f, "y", ydims, data.targets.data());
  }
  h5::write_attr(f, "format", std::string(kShardFormat));
  h5::write_attr(f, "num_classes", meta.num_classes);
  InputTransform input = meta.input_transform();
  if (input.x_scale.empty()) input.x_scale = {1.0f};
  if (input.x_shift.empty()) input.x_shift = {0.0f};
  write_input_transform(f, input);
  if (!meta.classification()) write_target_standardisation(f, meta.y_scale, meta.y_shift);
  if (!meta.feature_names.empty()) h5::write_attr(f, "feature_names", meta.feature_names);
  if (!meta.target_names.empty()) h5::write_attr(f, "target_names", meta.target_names);
  if (!meta.class_names.empty()) h5::write_attr(f, "class_names", meta.class_names);
  if (!meta.tokenizer.empty()) h5::write_attr(f, "tokenizer", meta.tokenizer);
}

}  // namespace

// Built in memory and written by us: a full disk is an error naming the file (hdf5.hpp file_image).
void write_shard(const std::string& path, const ShardMeta& meta, const ShardData& data) {
  std::vector<char> image;
  {
    auto lock = h5::lock_library();
    image = h5::file_image([&](hid_t file) { write_shard_into(file, meta, data); }, false);
  }
  h5::write_image(path, image, path);
}

namespace {

[[noreturn]] void mismatch(const ShardMeta& a, const ShardMeta& b, const std::string& what) {
  throw Error("shard '" + b.path + "' does not match '" + a.path + "': different " + what);
}

}  // namespace

void check_same_task(const ShardMeta& a, const ShardMeta& b) {
  if (a.sample_shape != b.sample_shape)
    mismatch(a, b, "sample shape " + shape_str(b.sample_shape) + " vs " + shape_str(a.sample_shape));
  if (a.num_classes != b.num_classes) mismatch(a, b, "num_classes");
  if (a.target_dim != b.target_dim) mismatch(a, b, "target count");
  if (a.tokens != b.tokens) mismatch(a, b, "labels per sample (token data: one per position)");
  if (a.target_space() != b.target_space()) mismatch(a, b, "target standardisation (y_scale/y_shift)");
}

void check_compatible(const ShardMeta& a, const ShardMeta& b) {
  check_same_task(a, b);
  if (a.x_type != b.x_type) mismatch(a, b, "x dtype");
  if (a.x_scale != b.x_scale || a.x_shift != b.x_shift) mismatch(a, b, "normalisation (x_scale/x_shift)");
  if (a.csv != b.csv) mismatch(a, b, "CSV transform (csv_*)");
  if (a.tokenizer != b.tokenizer) mismatch(a, b, "tokenizer ('" + b.tokenizer + "' vs '" + a.tokenizer + "')");
  if (a.features_only != b.features_only) mismatch(a, b, "content: one has targets (y), the other features only");
}

}  // namespace ringtrain
