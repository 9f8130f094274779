#include "ringtrain/nn/model.hpp"

#include <cstring>
#include <map>

#include "cuda_factories.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/nn/activation.hpp"
#include "ringtrain/nn/model_spec.hpp"

namespace ringtrain {

Model::Model(const std::string& spec, const Shape& sample_in, int64_t outputs, uint64_t seed)
    : input_shape_(sample_in) {
  const std::string expanded = expand_preset(spec);
  try {
    Rng init(seed);
    Shape shape = sample_in;
    for (const LayerSpec& ls : parse_model_spec(expanded)) {
      layers_.push_back(make_layer(ls, outputs));
      layer_shapes_.push_back(shape);
      try {
        shape = layers_.back()->build(shape, init);
      } catch (const OutOfMemory& e) {
        throw OutOfMemory("the model's layer " + layer_name(layers_.size() - 1) + " on input " + shape_str(shape) +
                          ": " + e.what());
      }
    }
    layer_shapes_.push_back(shape);
    output_shape_ = shape;
  } catch (const OutOfMemory&) {
    throw;  // the spec is fine: the machine is too small for it
  } catch (const Error& e) {
    const std::string what = e.what();
    if (what.rfind("bad model spec", 0) == 0) throw;
    throw Error("bad model spec '" + expanded + "': " + what);
  }
  if (outputs > 0 && shape_numel(output_shape_) != outputs)
    throw Error("bad model spec '" + expanded + "': the model produces " + std::to_string(shape_numel(output_shape_)) +
                " outputs per sample but the data needs " + std::to_string(outputs) + " (end with linear(out))");
  layers_.front()->set_input_grad_needed(false);
  for (size_t i = 0; i + 1 < layers_.size(); ++i)
    if (auto* act = dynamic_cast<Activation*>(layers_[i + 1].get());
        act && act->activation() == ActivationKind::relu && layers_[i]->fold_relu())
      act->set_folded();
}

void Model::to(Device device) { to(device, all_layers()); }

void Model::to(Device device, LayerRange layers) {
  if (device == device_) return;
  if (device == Device::cpu) throw Error("a model on the GPU is read back with Tensor::to, not moved back");
  for (size_t i = layers.begin; i < layers.end; ++i) layers_[i] = cuda::make_cuda_layer(*layers_[i]);
  device_ = device;
}

const Tensor& Model::forward(const Tensor& x, Mode mode) { return forward(x, mode, all_layers()); }

const Tensor& Model::forward(const Tensor& x, Mode mode, LayerRange layers) {
  if (x.device() != device_)
    throw Error("the model runs on " + name_of(device_) + " but its input is on " + name_of(x.device()));
  const Tensor* h = &x;
  for (size_t i = layers.begin; i < layers.end; ++i) {
    for (LayerObserver* o : observers_) o->forward_begin(i, mode);
    h = &layers_[i]->forward(*h, mode);
    for (LayerObserver* o : observers_) o->forward_end(i, mode);
  }
  return *h;
}

void Model::backward(const Tensor& dout) { backward(dout, all_layers()); }

const Tensor& Model::backward(const Tensor& dout, LayerRange layers) {
  const Tensor* g = &dout;
  for (size_t i = layers.end; i-- > layers.begin;) {
    for (LayerObserver* o : observers_) o->backward_begin(i);
    g = &layers_[i]->backward(*g);
    for (LayerObserver* o : observers_) o->backward_end(i);
  }
  return *g;
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

void Model::zero_grad(LayerRange layers) {
  for (Param* p : params(layers)) p->grad.fill(0.0f);
}

std::vector<Param*> Model::params() { return params(all_layers()); }

std::vector<Param*> Model::params(LayerRange layers) {
  std::vector<Param*> out;
  for (size_t i = layers.begin; i < layers.end; ++i)
    for (Param* p : layers_[i]->params()) out.push_back(p);
  return out;
}

std::vector<std::string> Model::layer_names() const {
  std::map<std::string, int> seen;
  std::vector<std::string> names;
  for (const auto& layer : layers_) names.push_back(layer->kind() + std::to_string(++seen[layer->kind()]));
  return names;
}

std::vector<NamedParam> Model::named_params() {
  std::vector<NamedParam> out;
  const auto names = layer_names();
  for (size_t i = 0; i < layers_.size(); ++i)
    for (Param* p : layers_[i]->params()) out.push_back({names[i] + "/" + p->name, p});
  return out;
}

std::vector<NamedParam> Model::named_params(size_t layer) {
  std::vector<NamedParam> out;
  const std::string name = layer_name(layer);
  for (Param* p : layers_[layer]->params()) out.push_back({name + "/" + p->name, p});
  return out;
}

std::vector<NamedTensor> Model::named_buffers(size_t layer) {
  std::vector<NamedTensor> out;
  const std::string name = layer_name(layer);
  for (const NamedTensor& b : layers_[layer]->buffers()) out.push_back({name + "/" + b.name, b.tensor});
  return out;
}

std::vector<NamedTensor> Model::named_buffers() {
  std::vector<NamedTensor> out;
  const auto names = layer_names();
  for (size_t i = 0; i < layers_.size(); ++i)
    for (const NamedTensor& b : layers_[i]->buffers()) out.push_back({names[i] + "/" + b.name, b.tensor});
  return out;
}

std::vector<std::pair<std::string, uint64_t*>> Model::named_random_streams() {
  std::vector<std::pair<std::string, uint64_t*>> out;
  const auto names = layer_names();
  for (size_t i = 0; i < layers_.size(); ++i) {
    const std::vector<uint64_t*> streams = layers_[i]->random_streams();
    for (size_t k = 0; k < streams.size(); ++k) out.emplace_back(names[i] + "/stream" + std::to_string(k), streams[k]);
  }
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
