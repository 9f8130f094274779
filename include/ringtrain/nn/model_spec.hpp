// The textual model spec: a comma-separated Sequential stack, e.g.
//   conv(32,5,pad=2),relu,maxpool(2),flatten,linear(128),relu,dropout(0.5),linear(out)
// where `out` stands for the data's number of classes or targets. Named presets expand to specs.
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
};

// Parses a spec (or expands a preset name: linreg, mlp, cnn) into layer specs. Throws Error naming the
// problem and the offending text.
std::vector<LayerSpec> parse_model_spec(const std::string& text);
// The spec a preset stands for, or the text itself when it names no preset.
std::string expand_preset(const std::string& text);
// Builds one layer; `outputs` replaces the symbol `out`.
std::unique_ptr<Layer> make_layer(const LayerSpec& spec, int64_t outputs);

}  // namespace ringtrain
