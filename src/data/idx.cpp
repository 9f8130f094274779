#include "ringtrain/data/idx.hpp"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <fstream>

#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

IdxArray read_idx(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw Error("cannot open IDX file '" + path + "'");
  struct Closer {
    gzFile f;
    ~Closer() { gzclose(f); }
  } closer{f};
  std::array<uint8_t, 4> magic{};
  if (gzread(f, magic.data(), 4) != 4 || magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] == 0 ||
      magic[3] > 4)
    throw Error("'" + path + "' is not an IDX file of unsigned bytes (bad magic number)");
  IdxArray a;
  // A header's sizes multiply to at most 2^31 bytes (far above MNIST's 47 MB); beyond, or wrapped around,
  // they would ask for any amount of memory.
  constexpr int64_t kMaxBytes = int64_t{1} << 31;
  int64_t total = 1;
  for (int d = 0; d < magic[3]; ++d) {
    std::array<uint8_t, 4> b{};
    if (gzread(f, b.data(), 4) != 4) throw Error("'" + path + "' ends inside its IDX header");
    a.dims.push_back((int64_t{b[0]} << 24) | (b[1] << 16) | (b[2] << 8) | b[3]);
    if (a.dims.back() > 0 && total > kMaxBytes / a.dims.back())
      throw Error("'" + path + "' declares an array of more than 2 GiB in its IDX header");
    total *= a.dims.back();
  }
  // Read as the bytes come, so that a short file that declares much is found before memory is taken for it.
  constexpr int64_t kChunk = int64_t{64} << 20;
  while (static_cast<int64_t>(a.bytes.size()) < total) {
    const size_t have = a.bytes.size(), want = static_cast<size_t>(std::min(kChunk, total - static_cast<int64_t>(have)));
    a.bytes.resize(have + want);
    if (gzread(f, a.bytes.data() + have, static_cast<unsigned>(want)) != static_cast<int>(want))
      throw Error("'" + path + "' is truncated: its header promises " + std::to_string(total) + " bytes");
  }
  return a;
}

bool looks_like_idx(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::array<unsigned char, 3> start{};
  if (!in.read(reinterpret_cast<char*>(start.data()), start.size())) return false;
  const bool gzip = start[0] == 0x1f && start[1] == 0x8b;
  return gzip || (start[0] == 0 && start[1] == 0 && start[2] == 0x08);
}

Shape idx_image_shape(const IdxArray& images) {
  Shape shape = {1};
  shape.insert(shape.end(), images.dims.begin() + 1, images.dims.end());
  return shape;
}

namespace {

class IdxReader final : public SampleReader {
 public:
  explicit IdxReader(const ShardMeta& meta, const std::vector<uint8_t>& pixels) : meta_(meta), pixels_(pixels) {}
  void read(int64_t index, float* x, Targets&, int64_t) override {
    const int64_t features = meta_.features();
    const uint8_t* raw = pixels_.data() + index * features;
    const float scale = meta_.x_scale[0], shift = meta_.x_shift[0];
    for (int64_t f = 0; f < features; ++f) x[f] = static_cast<float>(raw[f]) * scale + shift;
  }

 private:
  const ShardMeta& meta_;
  const std::vector<uint8_t>& pixels_;
};

}  // namespace

IdxImages::IdxImages(const std::string& path, float scale, float shift) {
  IdxArray images = read_idx(path);
  if (images.dims.size() < 2) throw Error("'" + path + "' holds no images (needs [N, rows, cols])");
  if (images.dims[0] == 0 || images.bytes.empty()) throw Error("'" + path + "' holds no images (its header says 0)");
  meta_.path = path;
  meta_.samples = images.dims[0];
  meta_.sample_shape = idx_image_shape(images);
  meta_.x_type = PixelType::u8;
  meta_.x_scale = {scale};
  meta_.x_shift = {shift};
  pixels_ = std::move(images.bytes);
}

std::unique_ptr<SampleReader> IdxImages::reader(int64_t) const { return std::make_unique<IdxReader>(meta_, pixels_); }

}  // namespace ringtrain
