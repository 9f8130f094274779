#include "ringtrain/nn/model_spec.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <string_view>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/nn/activation.hpp"
#include "ringtrain/nn/batchnorm.hpp"
#include "ringtrain/nn/conv2d.hpp"
#include "ringtrain/nn/dropout.hpp"
#include "ringtrain/nn/linear.hpp"
#include "ringtrain/nn/pool2d.hpp"

namespace ringtrain {
namespace {

constexpr std::string_view kOutputsSymbol = "out";  // stands for the data's classes or targets

const std::map<std::string, std::string>& presets() {
  static const std::map<std::string, std::string> table = {
      {"linreg", "flatten,linear(out)"},
      // The peers' models (shared/peers/torch_train.py), so throughput comparisons are like for like.
      {"mlp", "flatten,linear(256),relu,linear(128),relu,linear(100),relu,linear(out)"},
      {"cnn", "conv(32,5,pad=2),relu,maxpool(2),conv(64,5,pad=2),relu,maxpool(2),flatten,linear(1024),relu,"
              "linear(out)"},
  };
  return table;
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

// Splits on commas that are not inside parentheses.
std::vector<std::string> split_top_level(const std::string& text, const std::string& whole) {
  std::vector<std::string> parts;
  int depth = 0;
  std::string cur;
  for (char ch : text) {
    if (ch == '(') ++depth;
    if (ch == ')' && --depth < 0) throw Error("bad model spec '" + whole + "': unbalanced ')'");
    if (ch == ',' && depth == 0) {
      parts.push_back(trim(cur));
      cur.clear();
    } else {
      cur += ch;
    }
  }
  if (depth != 0) throw Error("bad model spec '" + whole + "': missing ')'");
  parts.push_back(trim(cur));
  return parts;
}

LayerSpec parse_layer(const std::string& item, const std::string& whole) {
  if (item.empty()) throw Error("bad model spec '" + whole + "': empty layer between commas");
  LayerSpec spec;
  const size_t open = item.find('(');
  spec.kind = trim(item.substr(0, open));
  for (char ch : spec.kind)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_')
      throw Error("bad model spec '" + whole + "': bad layer name '" + spec.kind + "'");
  if (open == std::string::npos) return spec;
  if (item.back() != ')') throw Error("bad model spec '" + whole + "': text after ')' in '" + item + "'");
  const std::string inside = item.substr(open + 1, item.size() - open - 2);
  if (trim(inside).empty()) return spec;
  for (const std::string& arg : split_top_level(inside, whole)) {
    const size_t eq = arg.find('=');
    if (eq == std::string::npos) {
      if (!spec.kwargs.empty())
        throw Error("bad model spec '" + whole + "': positional argument after key=value in '" + item + "'");
      spec.args.push_back(arg);
    } else {
      spec.kwargs[trim(arg.substr(0, eq))] = trim(arg.substr(eq + 1));
    }
  }
  return spec;
}

// Reads arguments of one layer spec, with errors that name the layer.
class Args {
 public:
  Args(const LayerSpec& spec, int64_t outputs) : spec_(spec), outputs_(outputs) {}

  std::string text(size_t pos, const std::string& key) const {
    if (pos < spec_.args.size()) return spec_.args[pos];
    auto it = spec_.kwargs.find(key);
    return it == spec_.kwargs.end() ? "" : it->second;
  }
  int64_t integer(size_t pos, const std::string& key, int64_t fallback, int64_t min) const {
    std::string t = text(pos, key);
    if (t.empty()) {
      if (fallback < min) throw Error(spec_.kind + " needs '" + key + "'");
      return fallback;
    }
    if (t == kOutputsSymbol) {
      if (outputs_ <= 0) throw Error(spec_.kind + "(out): the number of outputs is not known here");
      return outputs_;
    }
    int64_t v = 0;
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    // At most 2^31 - 1: a size beyond is no layer a machine could hold, and products of such sizes overflow.
    if (ec != std::errc() || end != t.data() + t.size() || v < min || v > INT32_MAX)
      throw Error(spec_.kind + ": '" + key + "' must be an integer from " + std::to_string(min) + " to 2147483647, got '" +
                  t + "'");
    return v;
  }
  float real(size_t pos, const std::string& key, float fallback, float lo, float hi) const {
    std::string t = text(pos, key);
    if (t.empty()) return fallback;
    float v = 0.0f;
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc() || end != t.data() + t.size() || !(v >= lo && v < hi))
      throw Error(spec_.kind + ": '" + key + "' must be a number in [" + std::to_string(lo) + ", " +
                  std::to_string(hi) + "), got '" + t + "'");
    return v;
  }
  // Rejects arguments the layer does not take, so typos do not pass silently.
  void only(size_t max_positional, std::initializer_list<std::string> keys) const {
    if (spec_.args.size() > max_positional)
      throw Error(spec_.kind + " takes at most " + std::to_string(max_positional) + " positional arguments");
    for (const auto& [k, v] : spec_.kwargs)
      if (std::find(keys.begin(), keys.end(), k) == keys.end())
        throw Error(spec_.kind + " has no argument '" + k + "'");
  }

 private:
  const LayerSpec& spec_;
  int64_t outputs_;
};

}  // namespace

std::string expand_preset(const std::string& text) {
  auto it = presets().find(trim(text));
  return it == presets().end() ? text : it->second;
}

std::vector<LayerSpec> parse_model_spec(const std::string& text) {
  const std::string spec = trim(expand_preset(text));
  if (spec.empty()) throw Error("bad model spec: empty (give a preset: linreg, mlp, cnn, or a layer list)");
  std::vector<LayerSpec> layers;
  for (const std::string& item : split_top_level(spec, spec)) layers.push_back(parse_layer(item, spec));
  return layers;
}

namespace {

using LayerFactory = std::unique_ptr<Layer> (*)(const Args&);

std::unique_ptr<Layer> make_linear(const Args& a) {
  a.only(1, {"out", "bias"});
  return std::make_unique<Linear>(a.integer(0, "out", -1, 1), a.integer(1, "bias", 1, 0) != 0);
}

std::unique_ptr<Layer> make_conv(const Args& a) {
  a.only(2, {"out", "kernel", "stride", "pad", "bias"});
  return std::make_unique<Conv2d>(a.integer(0, "out", -1, 1), a.integer(1, "kernel", -1, 1),
                                  a.integer(99, "stride", 1, 1), a.integer(99, "pad", 0, 0),
                                  a.integer(99, "bias", 1, 0) != 0);
}

template <PoolKind kind>
std::unique_ptr<Layer> make_pool(const Args& a) {
  a.only(1, {"kernel", "stride"});
  const int64_t k = a.integer(0, "kernel", -1, 1);
  return std::make_unique<Pool2d>(kind, k, a.integer(99, "stride", k, 1));
}

template <ActivationKind kind>
std::unique_ptr<Layer> make_activation(const Args& a) {
  a.only(0, {});
  return std::make_unique<Activation>(kind);
}

// PyTorch's defaults: LeakyReLU(negative_slope=0.01), ELU(alpha=1.0).
std::unique_ptr<Layer> make_leaky_relu(const Args& a) {
  a.only(1, {"negative_slope"});
  return std::make_unique<Activation>(ActivationKind::leaky_relu, a.real(0, "negative_slope", 0.01f, 0.0f, 1.0f));
}

std::unique_ptr<Layer> make_elu(const Args& a) {
  a.only(1, {"alpha"});
  return std::make_unique<Activation>(ActivationKind::elu, a.real(0, "alpha", 1.0f, 0.0f, 100.0f));
}

std::unique_ptr<Layer> make_dropout(const Args& a) {
  a.only(1, {"p"});
  return std::make_unique<Dropout>(a.real(0, "p", 0.5f, 0.0f, 1.0f));
}

std::unique_ptr<Layer> make_flatten(const Args& a) {
  a.only(0, {});
  return std::make_unique<Flatten>();
}

std::unique_ptr<Layer> make_batchnorm(const Args& a) {
  a.only(0, {"momentum", "eps"});
  return std::make_unique<BatchNorm>(a.real(99, "momentum", 0.1f, 0.0f, 1.0f), a.real(99, "eps", 1e-5f, 0.0f, 1.0f));
}

// Every layer a spec can name: a new layer is one row here.
const std::map<std::string, LayerFactory, std::less<>>& layer_factories() {
  static const std::map<std::string, LayerFactory, std::less<>> table = {
      {"linear", make_linear},
      {"conv", make_conv},
      {"conv2d", make_conv},
      {"maxpool", make_pool<PoolKind::max>},
      {"avgpool", make_pool<PoolKind::avg>},
      {"relu", make_activation<ActivationKind::relu>},
      {"tanh", make_activation<ActivationKind::tanh>},
      {"sigmoid", make_activation<ActivationKind::sigmoid>},
      {"leakyrelu", make_leaky_relu},
      {"elu", make_elu},
      {"gelu", make_activation<ActivationKind::gelu>},
      {"dropout", make_dropout},
      {"flatten", make_flatten},
      {"batchnorm", make_batchnorm},
  };
  return table;
}

}  // namespace

std::unique_ptr<Layer> make_layer(const LayerSpec& s, int64_t outputs) {
  const auto factory = layer_factories().find(s.kind);
  if (factory == layer_factories().end())
    throw Error("unknown layer '" + s.kind +
                "' (known: linear, conv, maxpool, avgpool, relu, tanh, sigmoid, leakyrelu, elu, gelu, dropout, flatten, "
                "batchnorm)");
  return factory->second(Args(s, outputs));
}

}  // namespace ringtrain
