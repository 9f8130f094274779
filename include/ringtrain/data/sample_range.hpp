// Samples [begin, end) of another source, in its order: the contiguous share of a source one rank scores
// when predictions must come back in the source's order (train/inference.hpp). The loader's own split
// between ranks interleaves them batch by batch instead.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ringtrain/data/sample_source.hpp"

namespace ringtrain {

class SampleRange final : public SampleSource {
 public:
  // `whole` must outlive the range; 0 <= begin <= end <= whole.samples().
  SampleRange(const SampleSource& whole, int64_t begin, int64_t end);

  const ShardMeta& meta() const override { return whole_.meta(); }
  int64_t samples() const override { return end_ - begin_; }
  // The whole's blocks cut to the range (the empty ones left out).
  std::vector<int64_t> block_sizes() const override;
  std::vector<std::string> paths() const override { return whole_.paths(); }
  std::string origin() const override { return whole_.origin(); }
  // The whole's reader, of `window_blocks` of the whole's blocks, shifted to the range.
  std::unique_ptr<SampleReader> reader(int64_t window_blocks) const override;

 private:
  const SampleSource& whole_;
  int64_t begin_, end_;
};

}  // namespace ringtrain
