// IDX files (yann.lecun.com/exdb/mnist format: MNIST, Fashion-MNIST): big-endian magic 0x0000 0x08 <ndims>,
// ndims big-endian uint32 sizes, then uint8 data, plain or gzip-compressed. `ringtrain prep` converts them to
// shards; `ringtrain predict` also reads an images file directly.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ringtrain/data/sample_source.hpp"

namespace ringtrain {

struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> bytes;
};

// The whole file; Error naming it when it is not IDX of unsigned bytes, is truncated, or declares more than
// 2 GiB.
IdxArray read_idx(const std::string& path);

// Whether the file starts as an IDX file or a gzip stream does (what read_idx reads).
bool looks_like_idx(const std::string& path);

// A sample of an images array [N, rows, cols]: [1, rows, cols], one channel, so conv layers apply directly.
Shape idx_image_shape(const IdxArray& images);

// The images of an IDX file as samples without targets, normalised as value = raw * scale + shift (the
// model's training data's standardisation; prep stores it in the shards, as x_scale and x_shift).
class IdxImages final : public SampleSource {
 public:
  IdxImages(const std::string& path, float scale, float shift);

  const ShardMeta& meta() const override { return meta_; }
  int64_t samples() const override { return meta_.samples; }
  std::vector<int64_t> block_sizes() const override { return {meta_.samples}; }
  std::vector<std::string> paths() const override { return {meta_.path}; }
  std::string origin() const override { return "in IDX file '" + meta_.path + "'"; }
  std::unique_ptr<SampleReader> reader(int64_t window_blocks) const override;

 private:
  ShardMeta meta_;  // no classes and no targets
  std::vector<uint8_t> pixels_;
};

}  // namespace ringtrain
