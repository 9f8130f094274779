// What a cuDNN convolution measured for each batch size it has seen (src/nn/cuda/conv2d.cpp), free of cuDNN
// so that the caching can be tested on any machine. Training and evaluation batches differ in size (and an
// epoch's last batch is short): each size is measured once, and the three directions separately, forward when
// a size is first seen, backward when the first backward at that size runs. An evaluation-only size then
// never pays for a backward search.
#pragma once
#include <cstdint>
#include <map>
#include <optional>

namespace ringtrain {

template <class Forward, class Backward>
class PerBatchAlgorithms {
 public:
  // The forward choice for batches of `batch`, from `search()` the first time that size is seen. The
  // reference stays valid for the life of this object.
  template <class Search>
  const Forward& forward(int64_t batch, Search&& search) {
    std::optional<Forward>& slot = sizes_[batch].forward;
    if (!slot) slot.emplace(search()), ++searches_;
    return *slot;
  }

  // The backward choice (input and weight gradients) for batches of `batch`, from `search()` the first time
  // a backward runs at that size.
  template <class Search>
  const Backward& backward(int64_t batch, Search&& search) {
    std::optional<Backward>& slot = sizes_[batch].backward;
    if (!slot) slot.emplace(search()), ++searches_;
    return *slot;
  }

  int64_t searches() const { return searches_; }  // how often a search ran, both directions counted

 private:
  struct Choices {
    std::optional<Forward> forward;
    std::optional<Backward> backward;
  };
  std::map<int64_t, Choices> sizes_;  // a node-based map: references to its values survive insertions
  int64_t searches_ = 0;
};

}  // namespace ringtrain
