// The CUDA optimizers: the CPU's update rules in one fused kernel launch per step (kernels/optimizer.cu).
#include <cmath>

#include "nn/cuda_factories.hpp"
#include "kernels/kernels.hpp"
#include "ringtrain/tensor/cuda_context.hpp"

namespace ringtrain::cuda {

namespace {

// A device counter at 0.
DeviceBuffer zeroed_steps() {
  DeviceBuffer counter(sizeof(long long));
  const long long zero = 0;
  copy_bytes(counter.get(), Device::cuda, &zero, Device::cpu, sizeof zero);
  return counter;
}

class CudaOptimizer final : public Optimizer {
 public:
  explicit CudaOptimizer(const OptimizerConfig& c) : c_(c) {}

  void step(const std::vector<Param*>& params, float lr) override {
    if (params != params_) prepare(params);
    cudaStream_t stream = context().compute();
    const auto* chunks = static_cast<const kernels::ParamChunk*>(chunks_.get());
    switch (c_.kind) {
      case OptimizerKind::sgd:
        kernels::sgd_step(chunks, chunk_count_, {lr, c_.momentum, c_.weight_decay, c_.nesterov, skip_}, stream);
        break;
      case OptimizerKind::adam:
      case OptimizerKind::adamw: {
        const float coupled = c_.kind == OptimizerKind::adam ? c_.weight_decay : 0.0f;
        kernels::adam_step(chunks, chunk_count_, {lr, c_.beta1, c_.beta2, c_.eps, coupled, device_steps(), skip_},
                           stream);
        break;
      }
      case OptimizerKind::rmsprop:
        kernels::rmsprop_step(chunks, chunk_count_, {lr, c_.alpha, c_.eps, c_.weight_decay, c_.momentum, skip_},
                              stream);
        break;
    }
    kernels::count_step(device_steps(), skip_, stream);
  }
  void skip_update_when(const float* device_flag) override { skip_ = device_flag; }
  int64_t steps() const override {
    long long steps = 0;
    copy_bytes(&steps, Device::cpu, steps_on_device_.get(), Device::cuda, sizeof steps);
    return steps;
  }
  void set_steps(int64_t steps) override {
    const long long value = steps;
    copy_bytes(steps_on_device_.get(), Device::cuda, &value, Device::cpu, sizeof value);
  }

  // The CPU optimizers' names, so checkpoints read the same on either device.
  std::vector<std::string> state_names() const override {
    std::vector<std::string> names;
    const bool sgd = c_.kind == OptimizerKind::sgd, adam = adam_family();
    if (uses_first()) names.push_back(sgd ? "momentum" : adam ? "exp_avg" : "square_avg");
    if (uses_second()) names.push_back(adam ? "exp_avg_sq" : "momentum");
    return names;
  }
  std::vector<std::vector<Tensor*>> state(const std::vector<Param*>& params) override {
    if (params != params_) prepare(params);
    std::vector<std::vector<Tensor*>> out(params.size());
    for (size_t i = 0; i < params.size(); ++i) {
      if (uses_first()) out[i].push_back(&first_[i]);
      if (uses_second()) out[i].push_back(&second_[i]);
    }
    return out;
  }

 private:
  // Creates zeroed state for the parameters and the chunk table the kernel walks; parameters keep their
  // buffers for the life of a model, so this runs once.
  bool uses_first() const { return c_.kind != OptimizerKind::sgd || c_.momentum > 0.0f; }
  bool uses_second() const { return adam_family() || (c_.kind == OptimizerKind::rmsprop && c_.momentum > 0.0f); }
  bool adam_family() const { return c_.kind == OptimizerKind::adam || c_.kind == OptimizerKind::adamw; }

  void prepare(const std::vector<Param*>& params) {
    const bool uses_first = this->uses_first(), uses_second = this->uses_second();
    first_.clear();
    second_.clear();
    std::vector<kernels::ParamChunk> chunks;
    for (Param* p : params) {
      if (uses_first) first_.emplace_back(p->value.shape(), Device::cuda);
      if (uses_second) second_.emplace_back(p->value.shape(), Device::cuda);
      float* s1 = uses_first ? first_.back().data() : nullptr;
      float* s2 = uses_second ? second_.back().data() : nullptr;
      const float l1 = p->kernel ? c_.l1 : 0.0f;
      const float decay = c_.kind == OptimizerKind::adamw && p->kernel ? c_.weight_decay : 0.0f;
      const int64_t n = p->value.numel();
      for (int64_t begin = 0; begin < n; begin += kernels::kChunkElements)
        chunks.push_back(
            {p->value.data(), p->grad.data(), s1, s2, begin, std::min(begin + kernels::kChunkElements, n), l1, decay});
    }
    chunk_count_ = static_cast<int>(chunks.size());
    chunks_ = DeviceBuffer(sizeof(kernels::ParamChunk) * chunks.size());
    copy_bytes(chunks_.get(), Device::cuda, chunks.data(), Device::cpu, chunks_.bytes());
    synchronize_device();  // the table is read from a host vector that goes away now
    params_ = params;
  }

  long long* device_steps() { return static_cast<long long*>(steps_on_device_.get()); }

  OptimizerConfig c_;
  const float* skip_ = nullptr;  // the non-finite check's verdict (Optimizer::skip_update_when)
  DeviceBuffer steps_on_device_ = zeroed_steps();  // updates applied: Adam's t - 1
  std::vector<Param*> params_;
  std::vector<Tensor> first_, second_;  // per parameter: momentum / exp_avg / square_avg, then exp_avg_sq / momentum
  DeviceBuffer chunks_;
  int chunk_count_ = 0;
};

}  // namespace

std::unique_ptr<Optimizer> make_cuda_optimizer(const OptimizerConfig& config) {
  return std::make_unique<CudaOptimizer>(config);
}

}  // namespace ringtrain::cuda
