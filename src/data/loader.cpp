#include "ringtrain/data/loader.hpp"

#include <algorithm>
#include <numeric>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/rng.hpp"

namespace ringtrain {

namespace {

void shuffle(std::vector<int64_t>& v, size_t begin, size_t end, Rng& rng) {  // Fisher-Yates
  for (size_t i = end - begin; i > 1; --i) std::swap(v[begin + i - 1], v[begin + rng.below(i)]);
}

}  // namespace

std::vector<int64_t> epoch_order(const std::vector<int64_t>& shard_sizes, bool shuffle_samples, uint64_t seed,
                                 int64_t epoch, int64_t window_shards) {
  std::vector<int64_t> offsets(shard_sizes.size() + 1, 0);
  std::partial_sum(shard_sizes.begin(), shard_sizes.end(), offsets.begin() + 1);
  std::vector<int64_t> order;
  order.reserve(static_cast<size_t>(offsets.back()));
  if (!shuffle_samples) {
    for (int64_t i = 0; i < offsets.back(); ++i) order.push_back(i);
    return order;
  }
  Rng rng(derive_seed(seed, 1000 + static_cast<uint64_t>(epoch)));
  std::vector<int64_t> shards(shard_sizes.size());
  std::iota(shards.begin(), shards.end(), 0);
  shuffle(shards, 0, shards.size(), rng);
  const size_t window = window_shards > 0 ? static_cast<size_t>(window_shards) : shards.size();
  for (size_t w = 0; w < shards.size(); w += window) {
    const size_t begin = order.size();
    for (size_t s = w; s < std::min(w + window, shards.size()); ++s)
      for (int64_t i = offsets[static_cast<size_t>(shards[s])]; i < offsets[static_cast<size_t>(shards[s]) + 1]; ++i)
        order.push_back(i);
    shuffle(order, begin, order.size(), rng);
  }
  return order;
}

BatchLoader::BatchLoader(const SampleSource& data, LoaderConfig config) : data_(data), config_(config) {
  if (config_.batch < 1) throw Error("batch size must be at least 1");
  reader_ = data_.reader(config_.window_shards);
  if (config_.augment.any())
    augmenter_.emplace(config_.augment, data_.meta().sample_shape, data_.meta().x_shift, config_.seed);
}

BatchLoader::~BatchLoader() { stop(); }

int64_t BatchLoader::batches_from(int64_t first_sample) const {
  const int64_t global = global_batch(), left = std::max<int64_t>(data_.samples() - first_sample, 0);
  if (config_.drop_last) return left / global;
  // Partial last global batch: this rank has a batch there only if its slice starts inside it.
  const int64_t full = left / global, rest = left % global;
  return full + (rest > config_.rank * config_.batch ? 1 : 0);
}

void BatchLoader::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void BatchLoader::start_epoch(int64_t epoch, int64_t first_sample) {
  stop();
  std::lock_guard lock(mu_);
  while (!ready_.empty()) spare_.push_back(std::move(ready_.front())), ready_.pop_front();
  finished_ = stopping_ = false;
  error_ = nullptr;
  worker_ = std::thread([this, epoch, first_sample] { produce(epoch, first_sample); });
}

bool BatchLoader::next(Batch& batch) {
  std::unique_lock lock(mu_);
  wanted_ = true;
  cv_.notify_all();
  cv_.wait(lock, [&] { return !ready_.empty() || finished_; });
  wanted_ = false;
  if (ready_.empty()) {
    if (error_) std::rethrow_exception(error_);
    return false;
  }
  std::swap(batch, ready_.front());
  spare_.push_back(std::move(ready_.front()));
  ready_.pop_front();
  cv_.notify_all();
  return true;
}

void BatchLoader::produce(int64_t epoch, int64_t first_sample) {
  try {
    const std::vector<int64_t> order =
        epoch_order(data_.block_sizes(), config_.shuffle, config_.seed, epoch, config_.window_shards);
    const int64_t global = global_batch(), total = static_cast<int64_t>(order.size());
    const int64_t batches = batches_from(first_sample);
    for (int64_t k = 0; k < batches; ++k) {
      const int64_t begin = first_sample + k * global + config_.rank * config_.batch;
      const int64_t end = std::min(begin + config_.batch, total);
      Batch batch;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] {
          return stopping_ || static_cast<int>(ready_.size()) < config_.prefetch || (ready_.empty() && wanted_);
        });
        if (stopping_) return;
        if (!spare_.empty()) batch = std::move(spare_.front()), spare_.pop_front();
      }
      assemble(order, begin, end, epoch, batch);
      {
        std::lock_guard lock(mu_);
        ready_.push_back(std::move(batch));
      }
      cv_.notify_all();
    }
  } catch (...) {
    std::lock_guard lock(mu_);
    error_ = std::current_exception();
  }
  {
    std::lock_guard lock(mu_);
    finished_ = true;
  }
  cv_.notify_all();
}

void BatchLoader::assemble(const std::vector<int64_t>& order, int64_t begin, int64_t end, int64_t epoch,
                           Batch& out) {
  const ShardMeta& meta = data_.meta();
  const int64_t n = end - begin, features = meta.features();
  Shape xs = {n};
  xs.insert(xs.end(), meta.sample_shape.begin(), meta.sample_shape.end());
  out.x.resize(xs);
  if (meta.classification()) out.y.labels.resize(static_cast<size_t>(n * meta.labels_per_sample()));
  else out.y.values.resize({n, meta.target_dim});
  for (int64_t r = 0; r < n; ++r) {
    const int64_t index = order[static_cast<size_t>(begin + r)];
    reader_->read(index, out.x.data() + r * features, out.y, r);
    if (augmenter_) augmenter_->apply(out.x.data() + r * features, epoch, index);
  }
}

}  // namespace ringtrain
