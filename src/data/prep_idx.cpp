// `ringtrain prep` of IDX files (data/idx.hpp): a directory of MNIST-style training and test images and labels.
#include <algorithm>
#include <cmath>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <string>

#include "prep_common.hpp"
#include "ringtrain/data/idx.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

namespace {

std::string find_idx(const std::string& dir, const std::string& stem) {
  for (const std::string& name : {stem, stem + ".gz"}) {
    const auto p = std::filesystem::path(dir) / name;
    if (std::filesystem::exists(p)) return p.string();
  }
  return "";
}

prep_detail::Table load_pair(const std::string& images_path, const std::string& labels_path) {
  const IdxArray images = read_idx(images_path), labels = read_idx(labels_path);
  if (images.dims.size() < 2) throw Error("'" + images_path + "' holds no images (needs [N, rows, cols])");
  if (labels.dims.size() != 1) throw Error("'" + labels_path + "' is not a label vector");
  if (images.dims[0] != labels.dims[0])
    throw Error("'" + images_path + "' has " + std::to_string(images.dims[0]) + " images but '" + labels_path +
                "' has " + std::to_string(labels.dims[0]) + " labels");
  prep_detail::Table t;
  t.meta.samples = images.dims[0];
  t.meta.sample_shape = idx_image_shape(images);
  t.meta.x_type = PixelType::u8;
  t.data.x_u8 = images.bytes;
  int64_t max_label = 0;
  for (uint8_t l : labels.bytes) {
    t.data.labels.push_back(l);
    max_label = std::max<int64_t>(max_label, l);
  }
  t.meta.num_classes = max_label + 1;
  return t;
}

// --format idx (the default) reads a directory; given a file, say which flag the user most likely missed.
void check_is_directory(const std::string& input) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(input, ec)) return;
  std::ifstream in(input);
  std::string first_line;
  std::getline(in, first_line);
  std::string lower = input;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return std::tolower(ch); });
  // A binary file may hold a comma before its first newline: CSV only when that line is text.
  const bool text = std::none_of(first_line.begin(), first_line.end(), [](unsigned char ch) {
    return ch < 0x20 && ch != '\t' && ch != '\r';
  });
  if (lower.ends_with(".csv") || (text && first_line.find(',') != std::string::npos))
    throw Error("--input '" + input + "' looks like a CSV file: add --format csv (and --target COLUMN); the "
                "default --format idx reads a directory of IDX files");
  throw Error("--input '" + input + "' is a file; --format idx reads a directory holding "
              "train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz] (CSV: --format csv)");
}

}  // namespace

PrepReport prep_idx(const PrepConfig& c) {
  prep_detail::check_config(c);
  // Flags the IDX path would ignore: --target regression on images would silently be classification.
  if (!c.target.empty() || !c.drop_columns.empty() || c.task != TaskKind::automatic || c.missing != MissingValues::error)
    throw Error("--target, --task, --missing and --drop are for --format csv; --input '" + c.input +
                "' is read as IDX files (the default --format idx)");
  check_is_directory(c.input);
  const std::string train_images = find_idx(c.input, "train-images-idx3-ubyte");
  const std::string train_labels = find_idx(c.input, "train-labels-idx1-ubyte");
  if (train_images.empty() || train_labels.empty())
    throw Error("no train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz] in '" + c.input + "'");
  prep_detail::Table all = load_pair(train_images, train_labels), train, val, test;
  const std::string test_images = find_idx(c.input, "t10k-images-idx3-ubyte");
  const std::string test_labels = find_idx(c.input, "t10k-labels-idx1-ubyte");
  if (!test_images.empty() && !test_labels.empty()) {
    test = load_pair(test_images, test_labels);
    test.meta.num_classes = all.meta.num_classes = std::max(all.meta.num_classes, test.meta.num_classes);
  } else {
    prep_detail::Table rest;
    prep_detail::split_off(all, c.test_fraction, c.seed + 1, rest, test);
    all = std::move(rest);
  }
  prep_detail::split_off(all, c.val_fraction, c.seed, train, val);
  // Standardise pixels with the training split's mean and deviation (as torchvision's Normalize does for
  // MNIST-like data): the stored bytes stay raw, the shard attributes carry the affine map.
  double sum = 0.0, sq = 0.0;
  for (uint8_t v : train.data.x_u8) sum += v, sq += static_cast<double>(v) * v;
  const double n = static_cast<double>(train.data.x_u8.size()), mean = sum / n;
  const double sd = std::max(1e-6, std::sqrt(std::max(0.0, sq / n - mean * mean)));
  for (prep_detail::Table* t : {&train, &val, &test}) {
    t->meta.num_classes = all.meta.num_classes;
    t->meta.x_scale = {static_cast<float>(1.0 / sd)};
    t->meta.x_shift = {static_cast<float>(-mean / sd)};
  }
  PrepReport r;
  prep_detail::publish_splits(c.out_dir, train, val, test, c.shards, r);
  r.features = train.meta.features();
  r.outputs = train.meta.num_classes;
  r.classification = true;
  return r;
}

PrepReport prep(const PrepConfig& c) {
  if (c.format != PrepFormat::text && c.context != 0)
    throw Error("--context is for --format text (tokens per window); --input '" + c.input + "' is read as " +
                (c.format == PrepFormat::csv ? "a CSV file" : "IDX files"));
  switch (c.format) {
    case PrepFormat::idx:
      if (!c.like_dir.empty()) throw Error("--like converts a CSV file (--format csv), not IDX files");
      return prep_idx(c);
    case PrepFormat::csv: return c.like_dir.empty() ? prep_csv(c) : prep_csv_like(c);
    case PrepFormat::text:
      if (!c.like_dir.empty()) throw Error("--like converts a CSV file (--format csv), not text");
      return prep_text(c);
  }
  throw Error("unknown prep format");
}

}  // namespace ringtrain
