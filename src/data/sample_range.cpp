#include "ringtrain/data/sample_range.hpp"

#include <algorithm>

#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

namespace {

class ShiftedReader final : public SampleReader {
 public:
  ShiftedReader(std::unique_ptr<SampleReader> whole, int64_t offset) : whole_(std::move(whole)), offset_(offset) {}
  void read(int64_t index, float* x, Targets& y, int64_t row) override { whole_->read(index + offset_, x, y, row); }

 private:
  std::unique_ptr<SampleReader> whole_;
  int64_t offset_;
};

}  // namespace

SampleRange::SampleRange(const SampleSource& whole, int64_t begin, int64_t end)
    : whole_(whole), begin_(begin), end_(end) {
  if (begin < 0 || begin > end || end > whole.samples())
    throw Error("samples " + std::to_string(begin) + ".." + std::to_string(end) + " are not a range of the " +
                std::to_string(whole.samples()) + " samples of " + whole.meta().path);
}

std::vector<int64_t> SampleRange::block_sizes() const {
  std::vector<int64_t> out;
  int64_t first = 0;
  for (const int64_t size : whole_.block_sizes()) {
    const int64_t from = std::max(first, begin_), to = std::min(first + size, end_);
    if (to > from) out.push_back(to - from);
    first += size;
  }
  return out;
}

std::unique_ptr<SampleReader> SampleRange::reader(int64_t window_blocks) const {
  return std::make_unique<ShiftedReader>(whole_.reader(window_blocks), begin_);
}

}  // namespace ringtrain
