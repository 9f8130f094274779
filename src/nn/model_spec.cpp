#include "ringtrain/nn/model_spec.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <string_view>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/text.hpp"
#include "ringtrain/nn/activation.hpp"
#include "ringtrain/nn/attention.hpp"
#include "ringtrain/nn/batchnorm.hpp"
#include "ringtrain/nn/conv2d.hpp"
#include "ringtrain/nn/dropout.hpp"
#include "ringtrain/nn/embedding.hpp"
#include "ringtrain/nn/layernorm.hpp"
#include "ringtrain/nn/linear.hpp"
#include "ringtrain/nn/pool2d.hpp"
#include "ringtrain/nn/residual.hpp"
#include "ringtrain/nn/transformer_block.hpp"

namespace ringtrain {
namespace {

constexpr std::string_view kOutputsSymbol = "out";  // stands for the data's classes or targets

// ResNet pieces, shaped as torchvision builds them: convolutions without bias, each followed by a batchnorm.
std::string conv_bn(int64_t channels, int64_t kernel, int64_t stride, int64_t pad) {
  return "conv(" + std::to_string(channels) + "," + std::to_string(kernel) +
         (stride != 1 ? ",stride=" + std::to_string(stride) : "") + (pad != 0 ? ",pad=" + std::to_string(pad) : "") +
         ",bias=0),batchnorm";
}

// Two 3x3 convolutions; a projection shortcut where the block changes the shape.
std::string basic_block(int64_t channels, int64_t stride, bool project) {
  return "residual(" + conv_bn(channels, 3, stride, 1) + ",relu," + conv_bn(channels, 3, 1, 1) +
         (project ? ",shortcut=" + conv_bn(channels, 1, stride, 0) : "") + "),relu";
}

// 1x1 down to `width`, 3x3 (strided, as torchvision's "v1.5"), 1x1 up to 4 x width.
std::string bottleneck_block(int64_t width, int64_t stride, bool project) {
  return "residual(" + conv_bn(width, 1, 1, 0) + ",relu," + conv_bn(width, 3, stride, 1) + ",relu," +
         conv_bn(4 * width, 1, 1, 0) + (project ? ",shortcut=" + conv_bn(4 * width, 1, stride, 0) : "") + "),relu";
}

// Stages of blocks, the first block of every stage but the first halving the resolution.
std::string resnet_stages(const std::vector<int64_t>& widths, const std::vector<int>& blocks, bool bottleneck) {
  std::string s;
  for (size_t stage = 0; stage < widths.size(); ++stage)
    for (int i = 0; i < blocks[stage]; ++i) {
      const int64_t stride = stage > 0 && i == 0 ? 2 : 1;
      const bool project = i == 0 && (stage > 0 || bottleneck);  // a bottleneck's first block widens 4x
      s += "," + (bottleneck ? bottleneck_block(widths[stage], stride, project)
                             : basic_block(widths[stage], stride, project));
    }
  return s;
}

// torchvision's ImageNet ResNets: a 7x7 stem and a max pool to a quarter of the resolution, four stages.
std::string imagenet_resnet(const std::vector<int>& blocks, bool bottleneck) {
  return "conv(64,7,stride=2,pad=3,bias=0),batchnorm,relu,maxpool(3,stride=2,pad=1)" +
         resnet_stages({64, 128, 256, 512}, blocks, bottleneck) + ",globalavgpool,linear(out)";
}

// He et al.'s CIFAR ResNet-20 (section 4.2), for small images: three stages of three basic blocks, 16, 32
// and 64 channels; projection shortcuts (their option B) where the shape changes.
std::string cifar_resnet20() {
  return "conv(16,3,pad=1,bias=0),batchnorm,relu" + resnet_stages({16, 32, 64}, {3, 3, 3}, false) +
         ",globalavgpool,linear(out)";
}

// torchvision's VGG-16 (configuration D, no batchnorm). Its adaptive 7x7 average pool is the identity on
// 224x224 inputs, the size the published figures use, and is left out.
std::string vgg16() {
  std::string s;
  for (const int64_t c : {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0})
    s += c == 0 ? "maxpool(2)," : "conv(" + std::to_string(c) + ",3,pad=1),relu,";
  return s + "flatten,linear(4096),relu,dropout(0.5),linear(4096),relu,dropout(0.5),linear(out)";
}

// GPT-2-style decoders: token and position embedding, `layers` pre-LayerNorm blocks, a final LayerNorm and a
// per-token output layer over the vocabulary (`out`), tied to the token table as GPT-2's when `tied`.
std::string gpt(int64_t channels, int64_t context, int layers, int64_t heads, bool tied) {
  std::string s = "embedding(out," + std::to_string(channels) + ",context=" + std::to_string(context) + ")";
  for (int i = 0; i < layers; ++i) s += ",block(" + std::to_string(heads) + ")";
  return s + ",layernorm,linear(out,per_token=1,bias=0" + (tied ? ",tied=1" : "") + ")";
}

const std::map<std::string, std::string>& presets() {
  static const std::map<std::string, std::string> table = {
      {"linreg", "flatten,linear(out)"},
      // The peers' models (shared/peers/torch_train.py), so throughput comparisons are like for like.
      {"mlp", "flatten,linear(256),relu,linear(128),relu,linear(100),relu,linear(out)"},
      {"cnn", "conv(32,5,pad=2),relu,maxpool(2),conv(64,5,pad=2),relu,maxpool(2),flatten,linear(1024),relu,"
              "linear(out)"},
      {"resnet20", cifar_resnet20()},
      {"resnet18", imagenet_resnet({2, 2, 2, 2}, false)},
      {"resnet50", imagenet_resnet({3, 4, 6, 3}, true)},
      {"resnet101", imagenet_resnet({3, 4, 23, 3}, true)},
      {"vgg16", vgg16()},
      // For tests and the CPU: untied, so that a pipeline may cut anywhere between its blocks.
      {"gpt-tiny", gpt(128, 128, 4, 4, false)},
      // GPT-2 small: 124,439,808 parameters with its vocabulary of 50257.
      {"gpt2-124m", gpt(768, 1024, 12, 12, true)},
  };
  return table;
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

std::string joined(const std::vector<std::string>& words) {
  std::string s;
  for (const std::string& w : words) s += (s.empty() ? "" : ", ") + w;
  return s;
}

// Splits on commas that are not inside parentheses. `at` is where `text` starts in the whole spec, so that
// a bracket error can point at its character.
std::vector<std::string> split_top_level(const std::string& text, size_t at) {
  std::vector<std::string> parts;
  std::vector<size_t> open;  // positions of the '(' not yet closed
  std::string cur;
  for (size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (ch == '(') open.push_back(at + i);
    if (ch == ')') {
      if (open.empty()) throw Error("unbalanced ')' at character " + std::to_string(at + i + 1));
      open.pop_back();
    }
    if (ch == ',' && open.empty()) {
      parts.push_back(trim(cur));
      cur.clear();
    } else {
      cur += ch;
    }
  }
  if (!open.empty()) throw Error("missing ')' for the '(' at character " + std::to_string(open.back() + 1));
  parts.push_back(trim(cur));
  return parts;
}

// "key=value" when the '=' comes before any '(' (so "conv(8,3,pad=1)" is a layer, not a keyword).
bool is_keyword(const std::string& arg, size_t& eq) {
  eq = arg.find('=');
  return eq != std::string::npos && eq < arg.find('(');
}

// Blocks parse by recursion; a bound on the brackets' depth keeps a hostile spec ("residual(residual(...")
// from overflowing the stack, checked before any parsing. No real network nests blocks more than a few deep.
constexpr int kMaxDepth = 32;

int bracket_depth(const std::string& text) {
  int depth = 0, deepest = 0;
  for (char ch : text) deepest = std::max(deepest, depth += ch == '(' ? 1 : ch == ')' ? -1 : 0);
  return deepest;
}

LayerSpec parse_layer(const std::string& item);

// A residual block's arguments: layers of the body, then after `shortcut=` the layers of the shortcut.
void parse_residual(const std::vector<std::string>& args, LayerSpec& spec) {
  std::vector<LayerSpec>* stack = &spec.body;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    size_t eq = 0;
    if (is_keyword(arg, eq)) {
      const std::string key = trim(arg.substr(0, eq));
      if (key != "shortcut") throw Error("residual has no argument '" + excerpt(key) + "' (only shortcut=)");
      if (stack == &spec.shortcut) throw Error("residual: a second 'shortcut='");
      stack = &spec.shortcut;
      arg = trim(arg.substr(eq + 1));
    }
    const char* part = stack == &spec.body ? "body" : "shortcut";
    try {
      stack->push_back(parse_layer(arg));
    } catch (const Error& e) {
      throw Error(std::string(part) + " layer " + std::to_string(stack->size() + 1) + " '" + excerpt(arg) + "': " +
                  e.what());
    }
  }
  if (spec.body.empty())
    throw Error("residual needs at least one layer in its body, before 'shortcut=' (everything after it is the "
                "shortcut)");
}

LayerSpec parse_layer(const std::string& item) {
  if (item.empty()) throw Error("empty layer between commas");
  LayerSpec spec;
  spec.text = item;
  const size_t open = item.find('(');
  spec.kind = trim(item.substr(0, open));
  for (char ch : spec.kind)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_') throw Error("bad layer name '" + excerpt(spec.kind) + "'");
  if (open == std::string::npos) return spec;
  if (item.back() != ')') throw Error("text after ')' in '" + excerpt(item) + "'");
  const std::string inside = item.substr(open + 1, item.size() - open - 2);
  if (trim(inside).empty()) return spec;
  const std::vector<std::string> args = split_top_level(inside, open + 1);
  if (spec.kind == "residual") {
    parse_residual(args, spec);
    return spec;
  }
  for (const std::string& arg : args) {
    size_t eq = 0;
    if (!is_keyword(arg, eq)) {
      if (!spec.kwargs.empty()) throw Error("positional argument after key=value in '" + excerpt(item) + "'");
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
                  excerpt(t) + "'");
    return v;
  }
  float real(size_t pos, const std::string& key, float fallback, float lo, float hi) const {
    std::string t = text(pos, key);
    if (t.empty()) return fallback;
    float v = 0.0f;
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc() || end != t.data() + t.size() || !(v >= lo && v < hi))
      throw Error(spec_.kind + ": '" + key + "' must be a number in [" + std::to_string(lo) + ", " +
                  std::to_string(hi) + "), got '" + excerpt(t) + "'");
    return v;
  }
  // Rejects arguments the layer does not take, so typos do not pass silently.
  void only(size_t max_positional, std::initializer_list<std::string> keys) const {
    if (spec_.args.size() > max_positional)
      throw Error(spec_.kind + " takes at most " + std::to_string(max_positional) + " positional arguments");
    for (const auto& [k, v] : spec_.kwargs)
      if (std::find(keys.begin(), keys.end(), k) == keys.end())
        throw Error(spec_.kind + " has no argument '" + excerpt(k) + "'");
  }

 private:
  const LayerSpec& spec_;
  int64_t outputs_;
};

using LayerFactory = std::unique_ptr<Layer> (*)(const Args&);

std::unique_ptr<Layer> make_linear(const Args& a) {
  a.only(1, {"out", "bias", "per_token", "tied"});
  const bool per_token = a.integer(99, "per_token", 0, 0) != 0, tied = a.integer(99, "tied", 0, 0) != 0;
  if (tied && !per_token) throw Error("linear: tied=1 needs per_token=1 (the embedding's token table maps tokens)");
  return std::make_unique<Linear>(a.integer(0, "out", -1, 1), a.integer(1, "bias", 1, 0) != 0, per_token, tied);
}

std::unique_ptr<Layer> make_embedding(const Args& a) {
  a.only(3, {"vocabulary", "channels", "context"});
  return std::make_unique<Embedding>(a.integer(0, "vocabulary", -1, 1), a.integer(1, "channels", -1, 1),
                                     a.integer(2, "context", -1, 1));
}

std::unique_ptr<Layer> make_layernorm(const Args& a) {
  a.only(0, {"eps"});
  return std::make_unique<LayerNorm>(a.real(99, "eps", 1e-5f, 0.0f, 1.0f));
}

std::unique_ptr<Layer> make_attention(const Args& a) {
  a.only(1, {"heads", "dropout"});
  return std::make_unique<Attention>(a.integer(0, "heads", -1, 1), a.real(99, "dropout", 0.0f, 0.0f, 1.0f));
}

std::unique_ptr<Layer> make_block(const Args& a) {
  a.only(1, {"heads", "dropout"});
  return std::make_unique<TransformerBlock>(a.integer(0, "heads", -1, 1), a.real(99, "dropout", 0.0f, 0.0f, 1.0f));
}

std::unique_ptr<Layer> make_conv(const Args& a) {
  a.only(2, {"out", "kernel", "stride", "pad", "bias"});
  return std::make_unique<Conv2d>(a.integer(0, "out", -1, 1), a.integer(1, "kernel", -1, 1),
                                  a.integer(99, "stride", 1, 1), a.integer(99, "pad", 0, 0),
                                  a.integer(99, "bias", 1, 0) != 0);
}

template <PoolKind kind>
std::unique_ptr<Layer> make_pool(const Args& a) {
  a.only(1, {"kernel", "stride", "pad"});
  const int64_t k = a.integer(0, "kernel", -1, 1);
  return std::make_unique<Pool2d>(kind, k, a.integer(99, "stride", k, 1), a.integer(99, "pad", 0, 0));
}

std::unique_ptr<Layer> make_global_avg_pool(const Args& a) {
  a.only(0, {});
  return std::make_unique<GlobalAvgPool>();
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
      {"globalavgpool", make_global_avg_pool},
      {"relu", make_activation<ActivationKind::relu>},
      {"tanh", make_activation<ActivationKind::tanh>},
      {"sigmoid", make_activation<ActivationKind::sigmoid>},
      {"leakyrelu", make_leaky_relu},
      {"elu", make_elu},
      {"gelu", make_activation<ActivationKind::gelu>},
      {"dropout", make_dropout},
      {"flatten", make_flatten},
      {"batchnorm", make_batchnorm},
      {"embedding", make_embedding},
      {"layernorm", make_layernorm},
      {"attention", make_attention},
      {"block", make_block},
  };
  return table;
}

std::vector<std::string> layer_kinds() {
  std::vector<std::string> kinds{"residual"};
  for (const auto& [kind, factory] : layer_factories()) kinds.push_back(kind);
  return kinds;
}

bool is_layer_kind(const std::string& word) { return word == "residual" || layer_factories().contains(word); }

// One of a residual block's stacks; an error names the layer within the block.
LayerStack make_stack(const std::vector<LayerSpec>& specs, const char* part, int64_t outputs) {
  LayerStack stack;
  for (size_t i = 0; i < specs.size(); ++i) {
    try {
      stack.push_back(make_layer(specs[i], outputs));
    } catch (const Error& e) {
      throw Error(std::string(part) + " layer " + std::to_string(i + 1) + " '" + excerpt(specs[i].text) + "': " +
                  e.what());
    }
  }
  return stack;
}

}  // namespace

std::string expand_preset(const std::string& text) {
  auto it = presets().find(trim(text));
  return it == presets().end() ? text : it->second;
}

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const auto& [name, spec] : presets()) names.push_back(name);
  return names;
}

std::string at_layer(size_t index, size_t count, const std::string& text, const std::string& problem) {
  const std::string kind = trim(text.substr(0, text.find('(')));
  if (kind == "residual") return "layer " + std::to_string(index + 1) + " (residual): " + problem;
  return count == 1 ? problem : "layer " + std::to_string(index + 1) + " '" + excerpt(text) + "': " + problem;
}

std::vector<LayerSpec> parse_model_spec(const std::string& text) {
  const std::string spec = trim(expand_preset(text));
  const std::string quoted = "bad model spec '" + excerpt(trim(text)) + "': ";
  if (spec.empty()) throw Error("bad model spec: empty (give a preset: " + joined(preset_names()) + "; or a layer list)");
  std::vector<LayerSpec> layers;
  try {
    const std::vector<std::string> items = split_top_level(spec, 0);
    if (bracket_depth(spec) > kMaxDepth)
      throw Error("brackets nest more than " + std::to_string(kMaxDepth) + " deep (blocks within blocks)");
    // One bare word that names no layer is a preset the user meant.
    if (items.size() == 1 && items[0].find('(') == std::string::npos && !is_layer_kind(items[0]))
      throw Error("unknown preset '" + excerpt(items[0]) + "' (presets: " + joined(preset_names()) + ")");
    for (size_t i = 0; i < items.size(); ++i) {
      try {
        layers.push_back(parse_layer(items[i]));
      } catch (const Error& e) {
        throw Error(at_layer(i, items.size(), items[i], e.what()));
      }
    }
  } catch (const Error& e) {
    throw Error(quoted + e.what());
  }
  return layers;
}

std::unique_ptr<Layer> make_layer(const LayerSpec& s, int64_t outputs) {
  if (s.kind == "residual") {
    if (s.body.empty()) throw Error("residual needs at least one layer in its body");
    return std::make_unique<Residual>(make_stack(s.body, "body", outputs), make_stack(s.shortcut, "shortcut", outputs));
  }
  const auto factory = layer_factories().find(s.kind);
  if (factory == layer_factories().end())
    throw Error("unknown layer '" + excerpt(s.kind) + "' (layers: " + joined(layer_kinds()) + ")");
  return factory->second(Args(s, outputs));
}

}  // namespace ringtrain
