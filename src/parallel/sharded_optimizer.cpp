#include "ringtrain/parallel/sharded_optimizer.hpp"

#include <algorithm>

#include "ringtrain/comm/allreduce_engine.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

namespace {

size_t elements(const Param& p) { return static_cast<size_t>(p.value.numel()); }

}  // namespace

ShardedOptimizer::ShardedOptimizer(Communicator& world, Optimizer& optimizer, std::vector<Param*> params,
                                   std::vector<size_t> positions, size_t fusion_bytes, const OptimizerState* resume)
    : world_(world), optimizer_(optimizer), params_(std::move(params)), positions_(std::move(positions)) {
  if (world.device() != Device::cpu)
    throw Error("--shard-optimizer exchanges host buffers; the " + world.backend() + " communicator moves device ones");
  plan_buckets(fusion_bytes);
  if (resume) take_state(*resume);
}

void ShardedOptimizer::plan_buckets(size_t fusion_bytes) {
  // As the allreduce engine groups gradients, in model order: one alone is summed in the same order.
  std::vector<size_t> counts;
  for (const Param* p : params_) counts.push_back(elements(*p));
  for (std::vector<size_t>& members : fusion_groups(counts, fusion_bytes)) {
    size_t size = 0;
    for (size_t i : members) size += counts[i];
    const bool in_place = members.size() == 1;
    if (!in_place) flat_.resize(std::max(flat_.size(), size));
    buckets_.push_back({std::move(members), size, in_place, {}});
  }
  for (size_t b = 0; b < buckets_.size(); ++b) {
    Bucket& bucket = buckets_[b];
    bucket.owned = world_.owned_range(bucket.size);
    size_t at = 0;  // the member's first element in the bucket
    for (size_t i : bucket.members) {
      const size_t n = elements(*params_[i]);
      const size_t first = std::max(bucket.owned.begin, at), last = std::min(bucket.owned.end, at + n);
      if (first < last) parts_.push_back({b, first, i, first - at, last - first});
      at += n;
    }
  }
}

float* ShardedOptimizer::buffer(const Bucket& b, Tensor Param::*field) {
  if (b.in_place) return (params_[b.members[0]]->*field).data();
  float* out = flat_.data();
  for (size_t i : b.members) out = std::copy_n((params_[i]->*field).data(), elements(*params_[i]), out);
  return flat_.data();
}

void ShardedOptimizer::unpack(const Bucket& b, Tensor Param::*field) {
  if (b.in_place) return;
  const float* in = flat_.data();
  for (size_t i : b.members) {
    std::copy_n(in, elements(*params_[i]), (params_[i]->*field).data());
    in += elements(*params_[i]);
  }
}

std::vector<ParamSpan> ShardedOptimizer::spans() const {
  std::vector<ParamSpan> out;
  for (const Part& part : parts_) {
    Param& p = *params_[part.param];
    out.push_back({p.value.data() + part.from, p.grad.data() + part.from, static_cast<int64_t>(part.size), p.kernel});
  }
  return out;
}

std::vector<GradSpan> ShardedOptimizer::grad_spans() const {
  std::vector<GradSpan> out;
  for (const Part& part : parts_)
    out.push_back({params_[part.param]->grad.data() + part.from, static_cast<int64_t>(part.size)});
  return out;
}

void ShardedOptimizer::reduce_gradients() {
  for (const Bucket& b : buckets_) {
    world_.reduce_scatter_sum(buffer(b, &Param::grad), b.size);
    unpack(b, &Param::grad);  // the spans read every gradient in place
  }
}

void ShardedOptimizer::step(float lr) {
  optimizer_.step_spans(spans(), lr);  // this rank's parts of the parameters, in place
  for (const Bucket& b : buckets_) {
    world_.allgather_owned(buffer(b, &Param::value), b.size);
    unpack(b, &Param::value);
  }
}

void ShardedOptimizer::gather_state(OptimizerState& state) {
  const std::vector<std::vector<Tensor*>> mine = optimizer_.span_state(spans());  // [part][state name]
  // One bucket's state tensor at a time is assembled whole, on every rank (an allgather: the ranks' parts
  // are what it was made for), and rank 0 keeps it per parameter.
  for (size_t k = 0; k < optimizer_.state_names().size(); ++k) {
    for (size_t b = 0; b < buckets_.size(); ++b) {
      std::vector<float> whole(buckets_[b].size);
      for (size_t j = 0; j < parts_.size(); ++j)
        if (parts_[j].bucket == b) std::copy_n(mine[j][k]->data(), parts_[j].size, whole.data() + parts_[j].at);
      world_.allgather_owned(whole.data(), whole.size());
      if (world_.rank() != 0) continue;
      const float* in = whole.data();
      for (size_t i : buckets_[b].members) {
        Tensor& t = state.tensors.at(positions_[i]).at(k);
        std::copy_n(in, elements(*params_[i]), t.data());
        in += elements(*params_[i]);
      }
    }
  }
  if (world_.rank() == 0) state.steps = optimizer_.steps();
}

void ShardedOptimizer::take_state(const OptimizerState& full) {
  if (full.names != optimizer_.state_names()) throw Error("the checkpoint's optimizer state does not fit this optimizer");
  const std::vector<std::vector<Tensor*>> mine = optimizer_.span_state(spans());
  for (size_t j = 0; j < parts_.size(); ++j) {
    const Part& part = parts_[j];
    for (size_t k = 0; k < full.names.size(); ++k) {
      const Tensor& whole = full.tensors.at(positions_[part.param]).at(k);
      if (static_cast<size_t>(whole.numel()) != elements(*params_[part.param]))
        throw Error("the checkpoint's optimizer state does not fit this model");
      std::copy_n(whole.data() + part.from, part.size, mine[j][k]->data());
    }
  }
  optimizer_.set_steps(full.steps);
}

size_t ShardedOptimizer::share_size() const {
  size_t n = 0;
  for (const Part& part : parts_) n += part.size;
  return n;
}

size_t ShardedOptimizer::total_size() const {
  size_t n = 0;
  for (const Bucket& b : buckets_) n += b.size;
  return n;
}

}  // namespace ringtrain
