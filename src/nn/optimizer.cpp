#include "ringtrain/nn/optimizer.hpp"

#include <cmath>

#include "cuda_factories.hpp"
#include "ringtrain/error.hpp"

namespace ringtrain {
namespace {

// Lazily creates one zeroed state tensor per parameter, matching its shape.
void ensure_state(std::vector<Tensor>& state, const std::vector<Param*>& params) {
  if (state.size() == params.size()) return;
  state.clear();
  for (const Param* p : params) state.emplace_back(p->value.shape());
}

std::vector<NamedTensor> name_state(std::vector<Tensor>& state, const std::string& what) {
  std::vector<NamedTensor> out;
  for (size_t i = 0; i < state.size(); ++i) out.push_back({what + std::to_string(i), &state[i]});
  return out;
}

class Sgd : public Optimizer {
 public:
  explicit Sgd(const OptimizerConfig& c) : c_(c) {}
  void step(const std::vector<Param*>& params, float lr) override {
    if (c_.momentum > 0.0f) ensure_state(velocity_, params);
    const float wd = c_.weight_decay, mu = c_.momentum;
    for (size_t i = 0; i < params.size(); ++i) {
      float* __restrict w = params[i]->value.data();
      const float* __restrict g = params[i]->grad.data();
      const int64_t n = params[i]->value.numel();
      // One branch-free loop per variant, so each vectorises. PyTorch starts the momentum buffer at the
      // first gradient, which equals mu * 0 + g.
      if (mu == 0.0f) {
        for (int64_t j = 0; j < n; ++j) w[j] -= lr * (g[j] + wd * w[j]);
        continue;
      }
      float* __restrict v = velocity_[i].data();
      if (c_.nesterov) {
        for (int64_t j = 0; j < n; ++j) {
          const float d = g[j] + wd * w[j];
          v[j] = mu * v[j] + d;
          w[j] -= lr * (d + mu * v[j]);
        }
      } else {
        for (int64_t j = 0; j < n; ++j) {
          v[j] = mu * v[j] + g[j] + wd * w[j];
          w[j] -= lr * v[j];
        }
      }
    }
  }
  std::vector<NamedTensor> state() override { return name_state(velocity_, "momentum"); }

 private:
  OptimizerConfig c_;
  std::vector<Tensor> velocity_;
};

class Adam : public Optimizer {
 public:
  explicit Adam(const OptimizerConfig& c) : c_(c) {}
  void step(const std::vector<Param*>& params, float lr) override {
    ensure_state(m_, params);
    ensure_state(v_, params);
    ++t_;
    const float bc1 = 1.0f - std::pow(c_.beta1, static_cast<float>(t_));
    const float bc2 = 1.0f - std::pow(c_.beta2, static_cast<float>(t_));
    const float step_size = lr / bc1, inv_sqrt_bc2 = 1.0f / std::sqrt(bc2);
    for (size_t i = 0; i < params.size(); ++i) {
      float* w = params[i]->value.data();
      const float* g = params[i]->grad.data();
      float* m = m_[i].data();
      float* v = v_[i].data();
      const int64_t n = params[i]->value.numel();
      for (int64_t j = 0; j < n; ++j) {
        const float d = g[j] + c_.weight_decay * w[j];
        m[j] = c_.beta1 * m[j] + (1.0f - c_.beta1) * d;
        v[j] = c_.beta2 * v[j] + (1.0f - c_.beta2) * d * d;
        w[j] -= step_size * m[j] / (std::sqrt(v[j]) * inv_sqrt_bc2 + c_.eps);
      }
    }
  }
  std::vector<NamedTensor> state() override {
    auto out = name_state(m_, "exp_avg");
    for (auto& s : name_state(v_, "exp_avg_sq")) out.push_back(s);
    return out;
  }
 private:
  OptimizerConfig c_;
  std::vector<Tensor> m_, v_;
  int64_t t_ = 0;
};

class RmsProp : public Optimizer {
 public:
  explicit RmsProp(const OptimizerConfig& c) : c_(c) {}
  void step(const std::vector<Param*>& params, float lr) override {
    ensure_state(square_avg_, params);
    if (c_.momentum > 0.0f) ensure_state(buf_, params);
    for (size_t i = 0; i < params.size(); ++i) {
      float* w = params[i]->value.data();
      const float* g = params[i]->grad.data();
      float* s = square_avg_[i].data();
      float* b = c_.momentum > 0.0f ? buf_[i].data() : nullptr;
      const int64_t n = params[i]->value.numel();
      for (int64_t j = 0; j < n; ++j) {
        const float d = g[j] + c_.weight_decay * w[j];
        s[j] = c_.alpha * s[j] + (1.0f - c_.alpha) * d * d;
        const float update = d / (std::sqrt(s[j]) + c_.eps);
        if (b) {
          b[j] = c_.momentum * b[j] + update;
          w[j] -= lr * b[j];
        } else {
          w[j] -= lr * update;
        }
      }
    }
  }
  std::vector<NamedTensor> state() override {
    auto out = name_state(square_avg_, "square_avg");
    for (auto& s : name_state(buf_, "momentum")) out.push_back(s);
    return out;
  }

 private:
  OptimizerConfig c_;
  std::vector<Tensor> square_avg_, buf_;
};

void check_optimizer_kind(const std::string& kind) {
  if (kind != "sgd" && kind != "adam" && kind != "rmsprop")
    throw Error("unknown optimizer '" + kind + "' (expected sgd, adam or rmsprop)");
}

}  // namespace

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& c, Device device) {
  check_optimizer_kind(c.kind);
  if (device == Device::cuda) return cuda::make_cuda_optimizer(c);
  if (c.kind == "sgd") return std::make_unique<Sgd>(c);
  if (c.kind == "adam") return std::make_unique<Adam>(c);
  return std::make_unique<RmsProp>(c);
}

}  // namespace ringtrain
