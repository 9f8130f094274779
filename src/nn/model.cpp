#include "ringtrain/nn/model.hpp"

#include <algorithm>
#include <cstring>
#include <iterator>

#include "cuda_factories.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/text.hpp"
#include "ringtrain/nn/model_spec.hpp"
#include "ringtrain/nn/residual.hpp"

namespace ringtrain {

Model::Model(const std::string& spec, const Shape& sample_in, int64_t outputs, uint64_t seed)
    : input_shape_(sample_in) {
  const std::string quoted = "bad model spec '" + excerpt(spec) + "': ";
  Rng init(seed);
  Shape shape = sample_in;
  const std::vector<LayerSpec> specs = parse_model_spec(spec);
  for (size_t i = 0; i < specs.size(); ++i) {
    try {
      layers_.push_back(make_layer(specs[i], outputs));
      layer_shapes_.push_back(shape);
      shape = layers_.back()->build(shape, init);
    } catch (const OutOfMemory& e) {
      // The spec is fine: the machine is too small for it.
      const std::string name = i < layers_.size() ? stack_layer_names(layers_)[i] : specs[i].kind;
      throw OutOfMemory("the model's layer " + name + " on input " + shape_str(shape) + ": " + e.what());
    } catch (const Error& e) {
      throw Error(quoted + at_layer(i, specs.size(), specs[i].text, e.what()));
    }
  }
  layer_shapes_.push_back(shape);
  output_shape_ = shape;
  // A language model predicts at every position: [T] tokens in, [T, outputs] out.
  const bool per_position = sample_in.size() == 1 && output_shape_ == Shape{sample_in[0], outputs};
  if (outputs > 0 && shape_numel(output_shape_) != outputs && !per_position)
    throw Error(quoted + "the model produces " + std::to_string(shape_numel(output_shape_)) +
                " outputs per sample but the data needs " + std::to_string(outputs) + " (end with linear(out))");
  link_tied_weights(quoted);
  layers_.front()->set_input_grad_needed(false);
  fold_relus(layers_);
  names_ = stack_layer_names(layers_);
  frozen_.assign(layers_.size(), false);
}

void Model::to(Device device) { to(device, all_layers()); }

void Model::to(Device device, LayerRange layers) {
  if (device == device_) return;
  if (device == Device::cpu) throw Error("a model on the GPU is read back with Tensor::to, not moved back");
  auto moves = [&](size_t i) { return i >= layers.begin && i < layers.end; };
  for (const auto& [borrower, owner] : tied_)
    if (moves(borrower) != moves(owner))
      throw Error("layers " + names_[owner] + " and " + names_[borrower] +
                  " share a weight (tied=1): they must move to a device together");
  for (size_t i = layers.begin; i < layers.end; ++i) layers_[i] = cuda::make_cuda_layer(*layers_[i]);
  relink_tied_weights(layers);
  device_ = device;
}

void Model::link_tied_weights(const std::string& quoted) {
  std::vector<size_t> owners;
  for (size_t j = 0; j < layers_.size(); ++j)
    if (layers_[j]->tied_weight_source()) owners.push_back(j);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Shape needed = layers_[i]->tied_weight_shape();
    if (needed.empty()) continue;
    const std::string borrower = "layer " + std::to_string(i + 1) + " '" + excerpt(layers_[i]->spec()) + "'";
    if (owners.size() != 1)
      throw Error(quoted + borrower + " is tied (tied=1) to the embedding's token table, but the model has " +
                  std::to_string(owners.size()) + " embedding layers (it needs exactly one)");
    const size_t owner = owners.front();
    Param* source = layers_[owner]->tied_weight_source();
    const std::string owner_name = "layer " + std::to_string(owner + 1) + " '" + excerpt(layers_[owner]->spec()) + "'";
    if (owner > i) throw Error(quoted + borrower + " is tied to " + owner_name + ", which must come before it");
    if (source->value.shape() != needed)
      throw Error(quoted + borrower + " needs a weight of " + shape_str(needed) + " (outputs x inputs) but " +
                  owner_name + " has a token table of " + shape_str(source->value.shape()) +
                  " (vocabulary x channels): tied=1 needs them equal");
    layers_[i]->tie(source);
    tied_.emplace_back(i, owner);
  }
}

void Model::relink_tied_weights(LayerRange moved) {
  for (const auto& [borrower, owner] : tied_)
    if (borrower >= moved.begin && borrower < moved.end) layers_[borrower]->tie(layers_[owner]->tied_weight_source());
}

const Tensor& Model::forward(const Tensor& x, Mode mode) { return forward(x, mode, all_layers()); }

const Tensor& Model::forward(const Tensor& x, Mode mode, LayerRange layers) {
  if (x.device() != device_)
    throw Error("the model runs on " + name_of(device_) + " but its input is on " + name_of(x.device()));
  const Tensor* h = &x;
  for (size_t i = layers.begin; i < layers.end; ++i) {
    for (LayerObserver* o : observers_) o->forward_begin(i, mode);
    h = &layers_[i]->forward(*h, frozen_[i] ? Mode::eval : mode);
    for (LayerObserver* o : observers_) o->forward_end(i, mode);
  }
  return *h;
}

void Model::backward(const Tensor& dout) { backward(dout, all_layers()); }

const Tensor& Model::backward(const Tensor& dout, LayerRange layers) {
  const size_t lowest = std::max(layers.begin, first_trained_);
  const Tensor* g = &dout;
  for (size_t i = layers.end; i-- > lowest;) {
    for (LayerObserver* o : observers_) o->backward_begin(i);
    g = &layers_[i]->backward(*g);
    for (LayerObserver* o : observers_) o->backward_end(i);
  }
  return lowest == layers.begin && lowest < layers.end ? *g : no_gradient_;
}

void Model::freeze(const std::vector<size_t>& layers) {
  for (size_t i : layers) frozen_.at(i) = true;
  first_trained_ = 0;
  while (first_trained_ < layers_.size() &&
         (frozen_[first_trained_] || layers_[first_trained_]->params().empty()))
    ++first_trained_;
  if (first_trained_ < layers_.size()) layers_[first_trained_]->set_input_grad_needed(false);
}

std::vector<NamedParam> Model::trained_params(LayerRange layers) {
  std::vector<NamedParam> out;
  for (size_t i = layers.begin; i < layers.end; ++i)
    if (!frozen_[i]) std::ranges::move(named_params(i), std::back_inserter(out));
  return out;
}

std::vector<size_t> Model::trained_positions(LayerRange layers) {
  std::vector<size_t> out;
  size_t position = params({0, layers.begin}).size();
  for (size_t i = layers.begin; i < layers.end; ++i) {
    const size_t count = layers_[i]->params().size();
    for (size_t k = 0; k < count; ++k, ++position)
      if (!frozen_[i]) out.push_back(position);
  }
  return out;
}

std::vector<Param*> params_of(const std::vector<NamedParam>& named) {
  std::vector<Param*> out;
  for (const NamedParam& p : named) out.push_back(p.param);
  return out;
}

void Model::share_batch_statistics(CrossReplicaSum* sum) {
  for (auto& layer : layers_) layer->share_batch_statistics(sum);
}

void Model::remove_observer(LayerObserver* observer) {
  std::erase(observers_, observer);
}

void ForwardState::append(const ForwardState& other) {
  tensors.insert(tensors.end(), other.tensors.begin(), other.tensors.end());
  indices.insert(indices.end(), other.indices.begin(), other.indices.end());
  counters.insert(counters.end(), other.counters.begin(), other.counters.end());
}

ForwardStash::ForwardStash(const ForwardState& state)
    : indices(state.indices.size()), counters(state.counters.size()) {
  for (const Tensor* t : state.tensors) tensors.emplace_back(Shape{0}, t->device());
}

void trade(const ForwardState& state, ForwardStash& stash) {
  for (size_t i = 0; i < state.tensors.size(); ++i) std::swap(*state.tensors[i], stash.tensors[i]);
  for (size_t i = 0; i < state.indices.size(); ++i) std::swap(*state.indices[i], stash.indices[i]);
  for (size_t i = 0; i < state.counters.size(); ++i) std::swap(*state.counters[i], stash.counters[i]);
}

ForwardState Model::forward_state(LayerRange layers) {
  ForwardState state;
  for (size_t i = layers.begin; i < layers.end; ++i) state.append(layers_[i]->forward_state());
  return state;
}

void Model::zero_grad() { zero_grad(all_layers()); }

// Only where backward runs: the layers below it keep the zero gradients they were built with.
void Model::zero_grad(LayerRange layers) {
  for (Param* p : params({std::max(layers.begin, std::min(first_trained_, layers.end)), layers.end}))
    p->grad.fill(0.0f);
}

std::vector<Param*> Model::params() { return params(all_layers()); }

std::vector<Param*> Model::params(LayerRange layers) {
  std::vector<Param*> out;
  for (size_t i = layers.begin; i < layers.end; ++i)
    for (Param* p : layers_[i]->params()) out.push_back(p);
  return out;
}

namespace {

// Calls visit(name, layer) for every layer that is not a block, depth first, named by its path from the
// top ("residual3/shortcut/conv1"): the order in which a block lists its parts' params, buffers and streams.
template <class Visit>
void visit_leaves(Layer& layer, const std::string& name, Visit&& visit) {
  const auto parts = layer.sublayers();
  if (parts.empty()) visit(name, layer);
  for (const auto& [part_name, part] : parts) visit_leaves(*part, name + "/" + part_name, visit);
}

}  // namespace

std::vector<NamedParam> Model::named_params(size_t layer) {
  std::vector<NamedParam> out;
  visit_leaves(*layers_[layer], layer_name(layer), [&](const std::string& name, Layer& leaf) {
    for (Param* p : leaf.params()) out.push_back({name + "/" + p->name, p});
  });
  return out;
}

std::vector<NamedParam> Model::named_params() {
  std::vector<NamedParam> out;
  for (size_t i = 0; i < layers_.size(); ++i) std::ranges::move(named_params(i), std::back_inserter(out));
  return out;
}

std::vector<NamedTensor> Model::named_buffers(size_t layer) {
  std::vector<NamedTensor> out;
  visit_leaves(*layers_[layer], layer_name(layer), [&](const std::string& name, Layer& leaf) {
    for (const NamedTensor& b : leaf.buffers()) out.push_back({name + "/" + b.name, b.tensor});
  });
  return out;
}

std::vector<NamedTensor> Model::named_buffers() {
  std::vector<NamedTensor> out;
  for (size_t i = 0; i < layers_.size(); ++i) std::ranges::move(named_buffers(i), std::back_inserter(out));
  return out;
}

std::vector<std::pair<std::string, uint64_t*>> Model::named_random_streams() {
  std::vector<std::pair<std::string, uint64_t*>> out;
  for (size_t i = 0; i < layers_.size(); ++i)
    visit_leaves(*layers_[i], layer_name(i), [&](const std::string& name, Layer& leaf) {
      const std::vector<uint64_t*> streams = leaf.random_streams();
      for (size_t k = 0; k < streams.size(); ++k) out.emplace_back(name + "/stream" + std::to_string(k), streams[k]);
    });
  return out;
}

int64_t Model::parameter_count() {
  int64_t n = 0;
  for (Param* p : params()) n += p->value.numel();
  return n;
}

std::string Model::spec() const {
  std::string s;
  for (const auto& layer : layers_) s += (s.empty() ? "" : ",") + layer->spec();
  return s;
}

double Model::flops_per_sample() const {
  double f = 0.0;
  for (const auto& layer : layers_) f += layer->flops_per_sample();
  return f;
}

}  // namespace ringtrain
