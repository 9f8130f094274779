#include "ringtrain/nn/transformer_block.hpp"

#include <algorithm>
#include <cstdio>
#include <iterator>

#include "heads_spec.hpp"
#include "ringtrain/nn/activation.hpp"
#include "ringtrain/nn/attention.hpp"
#include "ringtrain/nn/dropout.hpp"
#include "ringtrain/nn/layernorm.hpp"
#include "ringtrain/nn/linear.hpp"
#include "ringtrain/tensor/cpu_features.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

namespace {

// Each branch's part names, in order; the dropouts are last in their branch and only there when p > 0.
constexpr const char* kAttentionNames[] = {"ln1", "attention", "dropout1"};
constexpr const char* kMlpNames[] = {"ln2", "fc", "gelu", "proj", "dropout2"};

}  // namespace

TransformerBlock::TransformerBlock(int64_t heads, float dropout) : heads_(heads), p_(dropout) {
  attention_branch_.push_back(std::make_unique<LayerNorm>());
  attention_branch_.push_back(std::make_unique<Attention>(heads, dropout));
  mlp_branch_.push_back(std::make_unique<LayerNorm>());
  // fc's width is set in build, once C is known; a placeholder until then keeps the parts' order fixed.
  mlp_branch_.push_back(nullptr);
  mlp_branch_.push_back(std::make_unique<Activation>(ActivationKind::gelu));
  mlp_branch_.push_back(nullptr);
  if (dropout > 0.0f) {
    attention_branch_.push_back(std::make_unique<Dropout>(dropout));
    mlp_branch_.push_back(std::make_unique<Dropout>(dropout));
  }
}

TransformerBlock::TransformerBlock(TransformerBlock& source,
                                   const std::function<std::unique_ptr<Layer>(Layer&)>& convert, Device device)
    : heads_(source.heads_), p_(source.p_), h_({0}, device), y_({0}, device), dh_({0}, device), dx_({0}, device) {
  for (auto& layer : source.attention_branch_) attention_branch_.push_back(convert(*layer));
  for (auto& layer : source.mlp_branch_) mlp_branch_.push_back(convert(*layer));
  input_grad_needed_ = source.input_grad_needed_;
}

std::string TransformerBlock::spec() const { return heads_spec("block", heads_, p_); }

Shape TransformerBlock::build(const Shape& in, Rng& rng) {
  if (in.size() != 2)
    throw Error("block takes [T, C] (tokens x channels), got samples of shape " + shape_str(in));
  const int64_t c = in[1];
  mlp_branch_[1] = std::make_unique<Linear>(4 * c, true, true, false);
  mlp_branch_[3] = std::make_unique<Linear>(c, true, true, false);
  for (LayerStack* branch : {&attention_branch_, &mlp_branch_}) {
    Shape shape = in;
    for (auto& layer : *branch) shape = layer->build(shape, rng);
  }
  return in;
}

const Tensor& TransformerBlock::forward(const Tensor& x, Mode mode) {
  add(x, forward_stack(attention_branch_, x, mode), h_);
  add(h_, forward_stack(mlp_branch_, h_, mode), y_);
  return y_;
}

// The residual paths add the gradients through each branch to the gradient that passes it by.
const Tensor& TransformerBlock::backward(const Tensor& dy) {
  add(dy, backward_stack(mlp_branch_, dy), dh_);
  const Tensor& through_attention = backward_stack(attention_branch_, dh_);
  if (!input_grad_needed_) return dx_;
  add(dh_, through_attention, dx_);
  return dx_;
}

ForwardState TransformerBlock::forward_state() {
  ForwardState state;
  for (const auto& [name, layer] : sublayers()) state.append(layer->forward_state());
  state.tensors.push_back(&h_);
  state.tensors.push_back(&y_);
  return state;
}

std::vector<std::pair<std::string, Layer*>> TransformerBlock::sublayers() {
  std::vector<std::pair<std::string, Layer*>> parts;
  for (size_t i = 0; i < attention_branch_.size(); ++i) parts.emplace_back(kAttentionNames[i], attention_branch_[i].get());
  for (size_t i = 0; i < mlp_branch_.size(); ++i) parts.emplace_back(kMlpNames[i], mlp_branch_[i].get());
  return parts;
}

std::vector<Param*> TransformerBlock::params() {
  std::vector<Param*> out;
  for (const auto& [name, layer] : sublayers()) std::ranges::move(layer->params(), std::back_inserter(out));
  return out;
}

std::vector<uint64_t*> TransformerBlock::random_streams() {
  std::vector<uint64_t*> out;
  for (const auto& [name, layer] : sublayers()) std::ranges::move(layer->random_streams(), std::back_inserter(out));
  return out;
}

double TransformerBlock::flops_per_sample() const {
  double f = 0.0;
  for (const LayerStack* branch : {&attention_branch_, &mlp_branch_})
    for (const auto& layer : *branch) f += layer ? layer->flops_per_sample() : 0.0;
  return f;
}

// The block's input feeds ln1 and the residual sum; only ln1's gradient needs computing for it, and the
// block's own sum is skipped in backward. The mlp branch's gradient is always needed (h_ feeds ln2).
void TransformerBlock::set_input_grad_needed(bool needed) {
  Layer::set_input_grad_needed(needed);
  attention_branch_.front()->set_input_grad_needed(needed);
}

void TransformerBlock::add(const Tensor& a, const Tensor& b, Tensor& out) {
  out.resize(a.shape());
  for_each_chunk(out.numel(), [&](int64_t begin, int64_t end) {
    const float* __restrict pa = a.data();
    const float* __restrict pb = b.data();
    float* __restrict o = out.data();
    for (int64_t i = begin; i < end; ++i) o[i] = pa[i] + pb[i];
  });
}

}  // namespace ringtrain
