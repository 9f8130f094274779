#include "ringtrain/nn/optimizer.hpp"

#include <cmath>

#include "cuda_factories.hpp"
#include "ringtrain/tensor/cpu_features.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain {
namespace {

// Lazily creates one zeroed state tensor per position, shaped as `shapes` says.
void ensure_state(std::vector<Tensor>& state, const std::vector<Shape>& shapes) {
  if (state.size() == shapes.size()) return;
  state.clear();
  try {
    for (const Shape& shape : shapes) state.emplace_back(shape);
  } catch (const OutOfMemory& e) {
    throw OutOfMemory(std::string("the optimizer's state (one value per parameter for each of its states): ") +
                      e.what());
  }
}

std::vector<Shape> shapes_of(const std::vector<Param*>& params) {
  std::vector<Shape> out;
  for (const Param* p : params) out.push_back(p->value.shape());
  return out;
}

std::vector<Shape> shapes_of(const std::vector<ParamSpan>& spans) {
  std::vector<Shape> out;
  for (const ParamSpan& s : spans) out.push_back({s.size});
  return out;
}

std::vector<ParamSpan> spans_of(const std::vector<Param*>& params) {
  std::vector<ParamSpan> out;
  for (Param* p : params) out.push_back({p->value.data(), p->grad.data(), p->value.numel(), p->kernel});
  return out;
}

// The update loops, one per optimizer variant, each over one parameter tensor. They take plain values and
// restrict pointers so that each loop vectorises; the optimizers call them through run_vectorised, which
// compiles them for AVX-512 where the CPU has it. This file is built with -ffp-contract=off (src/CMakeLists):
// the portable and the AVX-512 path then round every update alike, so data-parallel replicas on nodes of
// different CPU generations, which apply the same averaged gradient, keep the same weights.

// The gradient an update follows: the loss's, weight decay's wd * w and the L1 penalty's l1 * sign(w) (l1 is 0
// on parameters that are not kernels).
inline float penalised(float g, float w, float wd, float l1) {
  return g + wd * w + l1 * static_cast<float>((w > 0.0f) - (w < 0.0f));
}

void sgd_update(float* __restrict w, const float* __restrict g, int64_t n, float lr, float wd, float l1) {
  for (int64_t j = 0; j < n; ++j) w[j] -= lr * penalised(g[j], w[j], wd, l1);
}

// PyTorch starts the momentum buffer at the first gradient, which equals mu * 0 + g.
void sgd_momentum_update(float* __restrict w, const float* __restrict g, float* __restrict v, int64_t n, float lr,
                         float wd, float l1, float mu) {
  for (int64_t j = 0; j < n; ++j) {
    v[j] = mu * v[j] + penalised(g[j], w[j], wd, l1);
    w[j] -= lr * v[j];
  }
}

void sgd_nesterov_update(float* __restrict w, const float* __restrict g, float* __restrict v, int64_t n, float lr,
                         float wd, float l1, float mu) {
  for (int64_t j = 0; j < n; ++j) {
    const float d = penalised(g[j], w[j], wd, l1);
    v[j] = mu * v[j] + d;
    w[j] -= lr * (d + mu * v[j]);
  }
}

// step_size = lr / (1 - beta1^t), inv_sqrt_bc2 = 1 / sqrt(1 - beta2^t). wd: the coupled decay (Adam's);
// keep: AdamW's decoupled decay, w *= keep first (decoupled_keep; 1 leaves w as it is, bit for bit).
void adam_update(float* __restrict w, const float* __restrict g, float* __restrict m, float* __restrict v, int64_t n,
                 OptimizerConfig c, float wd, float keep, float l1, float step_size, float inv_sqrt_bc2) {
  for (int64_t j = 0; j < n; ++j) {
    w[j] *= keep;
    const float d = penalised(g[j], w[j], wd, l1);
    m[j] = c.beta1 * m[j] + (1.0f - c.beta1) * d;
    v[j] = c.beta2 * v[j] + (1.0f - c.beta2) * d * d;
    w[j] -= step_size * m[j] / (std::sqrt(v[j]) * inv_sqrt_bc2 + c.eps);
  }
}

// b: the momentum buffer, null without momentum.
void rmsprop_update(float* __restrict w, const float* __restrict g, float* __restrict s, float* __restrict b,
                    int64_t n, OptimizerConfig c, float l1, float lr) {
  for (int64_t j = 0; j < n; ++j) {
    const float d = penalised(g[j], w[j], c.weight_decay, l1);
    s[j] = c.alpha * s[j] + (1.0f - c.alpha) * d * d;
    const float update = d / (std::sqrt(s[j]) + c.eps);
    if (b) {
      b[j] = c.momentum * b[j] + update;
      w[j] -= lr * b[j];
    } else {
      w[j] -= lr * update;
    }
  }
}

// The L1 penalty's factor for a parameter: the config's on kernels, none on the rest.
float l1_of(const ParamSpan& p, const OptimizerConfig& c) { return p.kernel ? c.l1 : 0.0f; }

// What the host optimizers share: whole parameters and spans of them take the same update (update(), over
// spans), with state tensors shaped like the parameters or the spans.
class HostOptimizer : public Optimizer {
 public:
  void step(const std::vector<Param*>& params, float lr) final { step_over(spans_of(params), shapes_of(params), lr); }
  void step_spans(const std::vector<ParamSpan>& spans, float lr) final { step_over(spans, shapes_of(spans), lr); }
  std::vector<std::vector<Tensor*>> state(const std::vector<Param*>& params) final {
    return state_for(shapes_of(params));
  }
  std::vector<std::vector<Tensor*>> span_state(const std::vector<ParamSpan>& spans) final {
    return state_for(shapes_of(spans));
  }

 protected:
  // The state kept, one vector of tensors per state name in state_names() order, each indexed by position.
  virtual std::vector<std::vector<Tensor>*> slots() = 0;
  // The update rules, over spans whose state tensors exist.
  virtual void update(const std::vector<ParamSpan>& spans, float lr) = 0;

 private:
  void step_over(const std::vector<ParamSpan>& spans, const std::vector<Shape>& shapes, float lr) {
    for (std::vector<Tensor>* slot : slots()) ensure_state(*slot, shapes);
    ++steps_;
    update(spans, lr);
  }
  // state[i][k] = &slots()[k][i], created for `shapes` first.
  std::vector<std::vector<Tensor*>> state_for(const std::vector<Shape>& shapes) {
    std::vector<std::vector<Tensor*>> out(shapes.size());
    for (std::vector<Tensor>* slot : slots()) {
      ensure_state(*slot, shapes);
      for (size_t i = 0; i < shapes.size(); ++i) out[i].push_back(&(*slot)[i]);
    }
    return out;
  }
};

class Sgd final : public HostOptimizer {
 public:
  explicit Sgd(const OptimizerConfig& c) : c_(c) {}
  std::vector<std::string> state_names() const override {
    return c_.momentum > 0.0f ? std::vector<std::string>{"momentum"} : std::vector<std::string>{};
  }

 private:
  std::vector<std::vector<Tensor>*> slots() override {
    if (c_.momentum > 0.0f) return {&velocity_};
    return {};
  }
  void update(const std::vector<ParamSpan>& spans, float lr) override {
    const float wd = c_.weight_decay, mu = c_.momentum;
    const bool nesterov = c_.nesterov;
    for (size_t i = 0; i < spans.size(); ++i) {
      float* w = spans[i].value;
      const float* g = spans[i].grad;
      const int64_t n = spans[i].size;
      float* v = mu > 0.0f ? velocity_[i].data() : nullptr;
      const float l1 = l1_of(spans[i], c_);
      run_vectorised([=] {
        if (!v) return sgd_update(w, g, n, lr, wd, l1);
        if (nesterov) return sgd_nesterov_update(w, g, v, n, lr, wd, l1, mu);
        sgd_momentum_update(w, g, v, n, lr, wd, l1, mu);
      });
    }
  }

  OptimizerConfig c_;
  std::vector<Tensor> velocity_;
};

// Adam, and AdamW (c.kind == adamw), which decays the kernels decoupled instead of coupling decay into g.
class Adam final : public HostOptimizer {
 public:
  explicit Adam(const OptimizerConfig& c) : c_(c) {}
  std::vector<std::string> state_names() const override { return {"exp_avg", "exp_avg_sq"}; }

 private:
  std::vector<std::vector<Tensor>*> slots() override { return {&m_, &v_}; }
  void update(const std::vector<ParamSpan>& spans, float lr) override {
    const float bc1 = 1.0f - std::pow(c_.beta1, static_cast<float>(steps_));
    const float bc2 = 1.0f - std::pow(c_.beta2, static_cast<float>(steps_));
    const float step_size = lr / bc1, inv_sqrt_bc2 = 1.0f / std::sqrt(bc2);
    const OptimizerConfig c = c_;
    const float wd = c.kind == OptimizerKind::adamw ? 0.0f : c.weight_decay;
    for (size_t i = 0; i < spans.size(); ++i) {
      float* w = spans[i].value;
      const float* g = spans[i].grad;
      float *m = m_[i].data(), *v = v_[i].data();
      const int64_t n = spans[i].size;
      const float l1 = l1_of(spans[i], c), keep = decoupled_keep(c, spans[i].kernel, lr);
      // Chunks over the threads (each element updated alike whatever their number): on 2 threads a
      // transformer's AdamW step ran on one of them.
      for_each_chunk(n, [=](int64_t b, int64_t e) {
        adam_update(w + b, g + b, m + b, v + b, e - b, c, wd, keep, l1, step_size, inv_sqrt_bc2);
      });
    }
  }

  OptimizerConfig c_;
  std::vector<Tensor> m_, v_;
};

class RmsProp final : public HostOptimizer {
 public:
  explicit RmsProp(const OptimizerConfig& c) : c_(c) {}
  std::vector<std::string> state_names() const override {
    return c_.momentum > 0.0f ? std::vector<std::string>{"square_avg", "momentum"}
                              : std::vector<std::string>{"square_avg"};
  }

 private:
  std::vector<std::vector<Tensor>*> slots() override {
    if (c_.momentum > 0.0f) return {&square_avg_, &buf_};
    return {&square_avg_};
  }
  void update(const std::vector<ParamSpan>& spans, float lr) override {
    const OptimizerConfig c = c_;
    for (size_t i = 0; i < spans.size(); ++i) {
      float* w = spans[i].value;
      const float* g = spans[i].grad;
      float* s = square_avg_[i].data();
      float* b = c.momentum > 0.0f ? buf_[i].data() : nullptr;
      const int64_t n = spans[i].size;
      const float l1 = l1_of(spans[i], c);
      run_vectorised([=] { rmsprop_update(w, g, s, b, n, c, l1, lr); });
    }
  }

  OptimizerConfig c_;
  std::vector<Tensor> square_avg_, buf_;
};

}  // namespace

float decoupled_keep(const OptimizerConfig& c, bool kernel, float lr) {
  return c.kind == OptimizerKind::adamw && kernel ? 1.0f - lr * c.weight_decay : 1.0f;
}

void Optimizer::step_spans(const std::vector<ParamSpan>&, float) {
  throw Error("this optimizer steps whole parameters only (--shard-optimizer needs a host optimizer)");
}

std::vector<std::vector<Tensor*>> Optimizer::span_state(const std::vector<ParamSpan>&) {
  throw Error("this optimizer keeps state for whole parameters only (--shard-optimizer needs a host optimizer)");
}

OptimizerState zero_optimizer_state(const std::vector<std::string>& names, const std::vector<Param*>& params) {
  OptimizerState state;
  state.names = names;
  for (const Param* p : params) {
    std::vector<Tensor> slots;
    for (size_t k = 0; k < names.size(); ++k) slots.emplace_back(p->value.shape());
    state.tensors.push_back(std::move(slots));
  }
  return state;
}

namespace {
std::vector<size_t> consecutive(size_t first, size_t count) {
  std::vector<size_t> out(count);
  for (size_t i = 0; i < count; ++i) out[i] = first + i;
  return out;
}
}  // namespace

void copy_optimizer_state_out(Optimizer& optimizer, const std::vector<Param*>& params, OptimizerState& state,
                              size_t first) {
  copy_optimizer_state_out(optimizer, params, state, consecutive(first, params.size()));
}

void copy_optimizer_state_in(const OptimizerState& state, size_t first, Optimizer& optimizer,
                             const std::vector<Param*>& params) {
  copy_optimizer_state_in(state, consecutive(first, params.size()), optimizer, params);
}

void copy_optimizer_state_out(Optimizer& optimizer, const std::vector<Param*>& params, OptimizerState& state,
                              const std::vector<size_t>& positions) {
  const auto tensors = optimizer.state(params);
  for (size_t i = 0; i < params.size(); ++i)
    for (size_t k = 0; k < tensors[i].size(); ++k) state.tensors.at(positions.at(i)).at(k).copy_from(*tensors[i][k]);
  state.steps = optimizer.steps();
}

void copy_optimizer_state_in(const OptimizerState& state, const std::vector<size_t>& positions, Optimizer& optimizer,
                             const std::vector<Param*>& params) {
  if (state.names != optimizer.state_names())
    throw Error("the checkpoint's optimizer state does not fit this optimizer");
  const auto tensors = optimizer.state(params);
  for (size_t i = 0; i < params.size(); ++i)
    for (size_t k = 0; k < tensors[i].size(); ++k) tensors[i][k]->copy_from(state.tensors.at(positions.at(i)).at(k));
  optimizer.set_steps(state.steps);
}

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& c, Device device) {
  if (device == Device::cuda) return cuda::make_cuda_optimizer(c);
  switch (c.kind) {
    case OptimizerKind::sgd: return std::make_unique<Sgd>(c);
    case OptimizerKind::adam:
    case OptimizerKind::adamw: return std::make_unique<Adam>(c);
    case OptimizerKind::rmsprop: return std::make_unique<RmsProp>(c);
  }
  throw Error("unknown optimizer kind");
}

}  // namespace ringtrain
