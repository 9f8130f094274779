#include "ringtrain/train/freeze.hpp"

#include <fnmatch.h>

#include <algorithm>

#include "ringtrain/nn/batchnorm.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/text.hpp"

namespace ringtrain {

namespace {

std::string layer_list(const Model& model) {
  std::string names;
  for (size_t i = 0; i < model.size(); ++i) names += (i ? ", " : "") + model.layer_name(i);
  return excerpt(names, 200);
}

// Layers [first, end) of `selector`'s range, checked against the model's size.
std::vector<size_t> in_range(const LayerSelector& selector, const Model& model) {
  const auto layers = static_cast<int64_t>(model.size());
  const int64_t end = selector.end < 0 ? layers : selector.end;
  if (selector.first >= layers || end > layers)
    throw Error("--freeze '" + excerpt(selector.text) + "': the model has " + counted(layers, "layer") + ", 0.." +
                std::to_string(layers - 1));
  std::vector<size_t> out;
  for (int64_t i = selector.first; i < end; ++i) out.push_back(static_cast<size_t>(i));
  return out;
}

std::vector<size_t> matching(const LayerSelector& selector, const Model& model) {
  std::vector<size_t> out;
  for (size_t i = 0; i < model.size(); ++i)
    if (fnmatch(selector.glob.c_str(), model.layer_name(i).c_str(), 0) == 0) out.push_back(i);
  if (out.empty())
    throw Error("--freeze '" + excerpt(selector.text) + "' matches no layer of the model (" + layer_list(model) + ")");
  return out;
}

bool holds_batchnorm(Layer& layer) {
  if (dynamic_cast<BatchNorm*>(&layer)) return true;
  for (const auto& [name, part] : layer.sublayers())
    if (holds_batchnorm(*part)) return true;
  return false;
}

std::string flag_text(const std::vector<LayerSelector>& selectors) {
  std::string text;
  for (const LayerSelector& s : selectors) text += (text.empty() ? "" : ",") + s.text;
  return text;
}

}  // namespace

std::vector<size_t> select_layers(const std::vector<LayerSelector>& selectors, const Model& model) {
  std::vector<size_t> out;
  for (const LayerSelector& selector : selectors)
    for (size_t i : selector.glob.empty() ? in_range(selector, model) : matching(selector, model)) out.push_back(i);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

void freeze_layers(const std::vector<LayerSelector>& selectors, Model& model, size_t head) {
  if (selectors.empty()) return;  // the model as built: backward through every layer
  const std::vector<size_t> layers = select_layers(selectors, model);
  const std::string flag = "--freeze '" + excerpt(flag_text(selectors)) + "'";
  if (std::binary_search(layers.begin(), layers.end(), head))
    throw Error(flag + " freezes " + model.layer_name(head) +
                ", the output layer --reset-head starts anew: it would never train");
  model.freeze(layers);
  const size_t first = model.first_trained_layer();
  if (first == model.size()) throw Error(flag + " freezes every layer with parameters: nothing would train");
  for (size_t i : layers)
    if (i > first && holds_batchnorm(model.layer(i)))
      throw Error(flag + ": the frozen " + model.layer_name(i) + " holds a batchnorm and " + model.layer_name(first) +
                  " below it trains; backward through a frozen batchnorm (on its running statistics) is not "
                  "supported: freeze the layers below " + model.layer_name(i) + " too");
}

std::string frozen_names(const Model& model, const char* separator) {
  std::string names;
  for (size_t i = 0; i < model.size(); ++i)
    if (model.frozen(i)) names += (names.empty() ? "" : separator) + model.layer_name(i);
  return names;
}

std::string describe_frozen(Model& model) {
  const std::string names = frozen_names(model, ", ");
  if (names.empty()) return "";
  int64_t frozen = 0, layers = 0;
  for (size_t i = 0; i < model.size(); ++i) {
    if (!model.frozen(i)) continue;
    ++layers;
    for (const NamedParam& p : model.named_params(i)) frozen += p.param->value.numel();
  }
  const int64_t all = model.parameter_count();
  return "  --freeze: " + counted(layers, "layer") + " frozen (" + excerpt(names, 200) + "): " +
         std::to_string(frozen) + " of " + counted(all, "parameter") + ", " + std::to_string(all - frozen) +
         " train\n";
}

}  // namespace ringtrain
