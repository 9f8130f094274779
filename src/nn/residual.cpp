#include "ringtrain/nn/residual.hpp"

#include <algorithm>
#include <iterator>
#include <map>

#include "ringtrain/nn/activation.hpp"
#include "ringtrain/tensor/cpu_features.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/text.hpp"

namespace ringtrain {

std::vector<std::string> stack_layer_names(const LayerStack& stack) {
  std::map<std::string, int> seen;
  std::vector<std::string> names;
  for (const auto& layer : stack) names.push_back(layer->kind() + std::to_string(++seen[layer->kind()]));
  return names;
}

void fold_relus(LayerStack& stack) {
  for (size_t i = 0; i + 1 < stack.size(); ++i)
    if (auto* act = dynamic_cast<Activation*>(stack[i + 1].get());
        act && act->activation() == ActivationKind::relu && !act->folded() && stack[i]->fold_relu())
      act->set_folded();
}

namespace {

std::string stack_spec(const LayerStack& stack) {
  std::string s;
  for (const auto& layer : stack) {
    if (!s.empty()) s += ',';
    s += layer->spec();
  }
  return s;
}

// Builds each layer of a stack on the previous one's output; an error names the layer within the block
// ("body layer 2 conv(...)"), which the model's own message then places in the whole spec.
Shape build_stack(LayerStack& stack, const char* part, const Shape& in, Rng& rng) {
  Shape shape = in;
  for (size_t i = 0; i < stack.size(); ++i) {
    try {
      shape = stack[i]->build(shape, rng);
    } catch (const OutOfMemory&) {
      throw;
    } catch (const Error& e) {
      throw Error(std::string(part) + " layer " + std::to_string(i + 1) + " '" + excerpt(stack[i]->spec()) + "' on input " +
                  shape_str(shape) + ": " + e.what());
    }
  }
  return shape;
}

}  // namespace

Residual::Residual(LayerStack body, LayerStack shortcut) : body_(std::move(body)), shortcut_(std::move(shortcut)) {
  if (body_.empty()) throw Error("residual needs at least one layer in its body");
  fold_relus(body_);
  fold_relus(shortcut_);
}

Residual::Residual(Residual& source, const std::function<std::unique_ptr<Layer>(Layer&)>& convert, Device device)
    : relu_(source.relu_), y_({0}, device), dy_relu_({0}, device), dx_({0}, device) {
  for (auto& layer : source.body_) body_.push_back(convert(*layer));
  for (auto& layer : source.shortcut_) shortcut_.push_back(convert(*layer));
  input_grad_needed_ = source.input_grad_needed_;
}

std::string Residual::spec() const {
  return "residual(" + stack_spec(body_) + (shortcut_.empty() ? "" : ",shortcut=" + stack_spec(shortcut_)) + ")";
}

Shape Residual::build(const Shape& in, Rng& rng) {
  const Shape body_out = build_stack(body_, "body", in, rng);
  const Shape shortcut_out = build_stack(shortcut_, "shortcut", in, rng);
  if (body_out == shortcut_out) return body_out;
  if (shortcut_.empty())
    throw Error("the body maps " + shape_str(in) + " to " + shape_str(body_out) +
                ", which an identity shortcut cannot add to; give a projection shortcut (shortcut=conv(" +
                std::to_string(body_out.front()) + ",1,stride=S),batchnorm) or keep the shape");
  throw Error("the body gives " + shape_str(body_out) + " but the shortcut gives " + shape_str(shortcut_out) +
              "; both paths must give the same shape to be added");
}

const Tensor& forward_stack(LayerStack& stack, const Tensor& x, Mode mode) {
  const Tensor* h = &x;
  for (auto& layer : stack) h = &layer->forward(*h, mode);
  return *h;
}

const Tensor& backward_stack(LayerStack& stack, const Tensor& dy) {
  const Tensor* g = &dy;
  for (size_t i = stack.size(); i-- > 0;) g = &stack[i]->backward(*g);
  return *g;
}

const Tensor& Residual::forward(const Tensor& x, Mode mode) {
  const Tensor& body = forward_stack(body_, x, mode);
  const Tensor& shortcut = shortcut_.empty() ? x : forward_stack(shortcut_, x, mode);
  add(body, shortcut, y_, relu_);
  return y_;
}

const Tensor& Residual::backward(const Tensor& dy) {
  const Tensor* g = &dy;
  if (relu_) {
    relu_gradient(dy, y_, dy_relu_);
    g = &dy_relu_;
  }
  // Both paths run backward whatever happens to dx: their parameters need their gradients.
  const Tensor& through_body = backward_stack(body_, *g);
  const Tensor& through_shortcut = shortcut_.empty() ? *g : backward_stack(shortcut_, *g);
  if (!input_grad_needed_) return dx_;
  add(through_body, through_shortcut, dx_, false);
  return dx_;
}

ForwardState Residual::forward_state() {
  ForwardState state;
  for (auto& layer : body_) state.append(layer->forward_state());
  for (auto& layer : shortcut_) state.append(layer->forward_state());
  state.tensors.push_back(&y_);
  return state;
}

std::vector<std::pair<std::string, Layer*>> Residual::sublayers() {
  std::vector<std::pair<std::string, Layer*>> parts;
  const std::vector<std::string> body_names = stack_layer_names(body_), shortcut_names = stack_layer_names(shortcut_);
  for (size_t i = 0; i < body_.size(); ++i) parts.emplace_back(body_names[i], body_[i].get());
  for (size_t i = 0; i < shortcut_.size(); ++i) parts.emplace_back("shortcut/" + shortcut_names[i], shortcut_[i].get());
  return parts;
}

namespace {

// Every part's items of one kind (parameters, buffers, random streams), in the order sublayers() names them.
template <class Item>
std::vector<Item> gather(const std::vector<std::pair<std::string, Layer*>>& parts, std::vector<Item> (Layer::*items)()) {
  std::vector<Item> out;
  for (const auto& [name, layer] : parts) std::ranges::move((layer->*items)(), std::back_inserter(out));
  return out;
}

}  // namespace

std::vector<Param*> Residual::params() { return gather(sublayers(), &Layer::params); }

std::vector<NamedTensor> Residual::buffers() { return gather(sublayers(), &Layer::buffers); }

std::vector<uint64_t*> Residual::random_streams() { return gather(sublayers(), &Layer::random_streams); }

double Residual::flops_per_sample() const {
  double f = 0.0;
  for (const auto& layer : body_) f += layer->flops_per_sample();
  for (const auto& layer : shortcut_) f += layer->flops_per_sample();
  return f;
}

void Residual::set_input_grad_needed(bool needed) {
  Layer::set_input_grad_needed(needed);
  body_.front()->set_input_grad_needed(needed);
  if (!shortcut_.empty()) shortcut_.front()->set_input_grad_needed(needed);
}

void Residual::share_batch_statistics(CrossReplicaSum* sum) {
  for (const auto& [name, layer] : sublayers()) layer->share_batch_statistics(sum);
}

// Branch-free element-wise loops (selects, not ifs), so that they vectorise. Each chunk copies the pointers
// into restrict locals: through the lambda's captured references a loop may reload them on every element
// and stay scalar.
void Residual::add(const Tensor& a, const Tensor& b, Tensor& out, bool relu) {
  out.resize(a.shape());
  for_each_chunk(out.numel(), [&](int64_t begin, int64_t end) {
    const float* __restrict pa = a.data();
    const float* __restrict pb = b.data();
    float* __restrict o = out.data();
    if (!relu) {
      for (int64_t i = begin; i < end; ++i) o[i] = pa[i] + pb[i];
      return;
    }
    for (int64_t i = begin; i < end; ++i) {
      const float s = pa[i] + pb[i];
      o[i] = s < 0.0f ? 0.0f : s;  // as std::max(s, 0) in the ReLU layer: a NaN passes, for the guard to see
    }
  });
}

void Residual::relu_gradient(const Tensor& dy, const Tensor& y, Tensor& out) {
  out.resize(dy.shape());
  for_each_chunk(out.numel(), [&](int64_t begin, int64_t end) {
    const float* __restrict g = dy.data();
    const float* __restrict v = y.data();
    float* __restrict o = out.data();
    for (int64_t i = begin; i < end; ++i) {
      const float gi = g[i];  // read unconditionally: a select, not a branch
      o[i] = v[i] > 0.0f ? gi : 0.0f;
    }
  });
}

}  // namespace ringtrain
