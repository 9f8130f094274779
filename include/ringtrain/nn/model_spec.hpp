// The textual model spec: a comma-separated Sequential stack, e.g.
//   conv(32,5,pad=2),relu,maxpool(2),flatten,linear(128),relu,dropout(0.5),linear(out)
// where `out` stands for the data's number of classes or targets. A residual block nests a stack, its body,
// and after `shortcut=` the projection stack (everything from there to the block's ')'):
//   residual(conv(32,3,stride=2,pad=1),batchnorm,relu,conv(32,3,pad=1),batchnorm,shortcut=conv(32,1,stride=2),batchnorm)
// Named presets (mlp, cnn, resnet20, resnet50, vgg16, ...) expand to specs.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ringtrain/nn/layer.hpp"

namespace ringtrain {

struct LayerSpec {
  std::string kind;
  std::vector<std::string> args;              // positional
  std::map<std::string, std::string> kwargs;  // key=value
  std::string text;                           // as written, for messages
  std::vector<LayerSpec> body, shortcut;      // a residual block's stacks
};

// Parses a spec (or expands a preset name) into layer specs. Throws Error naming the problem, where in the
// spec it is ("layer 4 (residual), body layer 2 'conv(...)'") and the offending text.
std::vector<LayerSpec> parse_model_spec(const std::string& text);
// The spec a preset stands for, or the text itself when it names no preset.
std::string expand_preset(const std::string& text);
// `problem` placed in the spec: "layer 3 'conv(8,3)': problem", or "layer 3 (residual): problem" for a block
// (whose own message names the part); a spec of one plain layer needs no place.
std::string at_layer(size_t index, size_t count, const std::string& text, const std::string& problem);
// The preset names, sorted.
std::vector<std::string> preset_names();
// Builds one layer (a residual block with its stacks); `outputs` replaces the symbol `out`.
std::unique_ptr<Layer> make_layer(const LayerSpec& spec, int64_t outputs);

}  // namespace ringtrain
