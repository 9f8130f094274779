// Convolution kernels on ResNet shapes: ringtrain's Conv2d layer beside oneDNN's convolution primitives
// called directly, forward, backward-data and backward-weights, at 1 and 2 OpenMP threads, in one run.
// usage: build/bench/conv_kernels [ROUNDS] [FILTER] [THREADS, e.g. 1,2]
// Each measurement is the fastest call over ROUNDS interleaved rounds (layer, oneDNN, layer, oneDNN, ...), so
// both see the same machine noise; FILTER keeps the shapes whose name contains it. The oneDNN side does what a
// layer holding NCHW tensors must do every step: it lets oneDNN pick its layouts (format_tag::any) and counts
// the reorders into and out of them (weights once per step, activations and gradients each time). Two more
// oneDNN columns: NCHW activations (weights still `any`; no activation reorders), and oneDNN's Winograd
// algorithm where it has one for the shape. The layer's backward computes both gradients in one call: its
// backward-data is timed as (both) - (weights only, input gradient switched off). The last lines weigh each
// shape by how often the cnn preset, resnet20 and ResNet-50 use it (without the first layer's input gradient,
// which training never computes).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "ringtrain/nn/conv2d.hpp"
#include "ringtrain/tensor/blas.hpp"

using namespace ringtrain;

namespace {

struct ConvCase {
  const char* model;
  const char* name;
  int64_t batch, in_c, out_c, kernel, stride, pad, size;
  int uses;  // how many convolutions of this shape the model has
  bool first = false;  // the model's first layer, whose input gradient is never computed
};

// The cnn preset's two convolutions and resnet20 as ringtrain builds it for 28x28 Fashion-MNIST (3 stages of
// 3 basic blocks, 16/32/64 channels, 1x1 stride-2 projections), batch 64; ResNet-50's shapes at 224x224
// (torchvision v1.5), batch 8.
const std::vector<ConvCase> kCases = {
    {"cnn", "1->32 5x5 28", 64, 1, 32, 5, 1, 2, 28, 1, true},
    {"cnn", "32->64 5x5 14", 64, 32, 64, 5, 1, 2, 14, 1},
    {"resnet20", "1->16 3x3 28", 64, 1, 16, 3, 1, 1, 28, 1, true},
    {"resnet20", "16->16 3x3 28", 64, 16, 16, 3, 1, 1, 28, 6},
    {"resnet20", "16->32 3x3 s2 28", 64, 16, 32, 3, 2, 1, 28, 1},
    {"resnet20", "32->32 3x3 14", 64, 32, 32, 3, 1, 1, 14, 5},
    {"resnet20", "32->64 3x3 s2 14", 64, 32, 64, 3, 2, 1, 14, 1},
    {"resnet20", "64->64 3x3 7", 64, 64, 64, 3, 1, 1, 7, 5},
    {"resnet20", "16->32 1x1 s2 28", 64, 16, 32, 1, 2, 0, 28, 1},
    {"resnet20", "32->64 1x1 s2 14", 64, 32, 64, 1, 2, 0, 14, 1},
    {"resnet50", "3->64 7x7 s2 224", 8, 3, 64, 7, 2, 3, 224, 1, true},
    {"resnet50", "64->64 3x3 56", 8, 64, 64, 3, 1, 1, 56, 3},
    {"resnet50", "64->256 1x1 56", 8, 64, 256, 1, 1, 0, 56, 4},
    {"resnet50", "256->64 1x1 56", 8, 256, 64, 1, 1, 0, 56, 2},
    {"resnet50", "128->128 3x3 s2 56", 8, 128, 128, 3, 2, 1, 56, 1},
    {"resnet50", "128->128 3x3 28", 8, 128, 128, 3, 1, 1, 28, 3},
    {"resnet50", "256->256 3x3 14", 8, 256, 256, 3, 1, 1, 14, 5},
    {"resnet50", "512->512 3x3 7", 8, 512, 512, 3, 1, 1, 7, 2},
    {"resnet50", "2048->512 1x1 7", 8, 2048, 512, 1, 1, 0, 7, 2},
};

enum Direction { kForward, kBackwardData, kBackwardWeights, kDirections };
const char* const kDirectionNames[] = {"forward", "bwd-data", "bwd-weights"};

int64_t out_size(const ConvCase& c) { return (c.size + 2 * c.pad - c.kernel) / c.stride + 1; }

void fill_random(float* p, int64_t n, uint64_t seed) {
  Rng rng(seed);
  for (int64_t i = 0; i < n; ++i) p[i] = rng.uniform(-1.0f, 1.0f);
}

// Seconds of the fastest call of f among those that fit in ~50 ms (at least 3), after one warm-up call. The
// machine is shared: the fastest call is the one least disturbed by other processes.
template <class F>
double seconds_per_call(F&& f) {
  using clock = std::chrono::steady_clock;
  f();
  double best = 1e30, total = 0;
  for (int calls = 0; calls < 3 || (total < 0.05 && calls < 1000); ++calls) {
    const auto start = clock::now();
    f();
    const double t = std::chrono::duration<double>(clock::now() - start).count();
    best = std::min(best, t);
    total += t;
  }
  return best;
}

// The layer: forward, backward with the weight gradient alone, and backward with both gradients.
class LayerConv {
 public:
  explicit LayerConv(const ConvCase& c) : layer_(c.out_c, c.kernel, c.stride, c.pad, false) {
    Rng init(1);
    layer_.build({c.in_c, c.size, c.size}, init);
    x_ = Tensor({c.batch, c.in_c, c.size, c.size});
    fill_random(x_.data(), x_.numel(), 2);
    dy_ = Tensor({c.batch, c.out_c, out_size(c), out_size(c)});
    fill_random(dy_.data(), dy_.numel(), 3);
  }
  void forward() { layer_.forward(x_, Mode::train); }
  void backward(bool input_grad) {
    layer_.set_input_grad_needed(input_grad);
    layer_.backward(dy_);
  }

 private:
  Conv2d layer_;
  Tensor x_, dy_;
};

using namespace dnnl;

// A buffer in the primitive's layout that stands for a user NCHW/OIHW buffer: the user memory itself when
// the layouts agree, else its own memory and the reorder between the two.
struct Operand {
  memory inner;
  std::optional<reorder> convert;
  void bind(const memory& user, const memory::desc& wanted, const engine& eng, bool into_user) {
    if (wanted == user.get_desc()) {
      inner = user;
      return;
    }
    inner = memory(wanted, eng);
    convert = into_user ? reorder(inner, user) : reorder(user, inner);
    from_ = into_user ? inner : user;
    to_ = into_user ? user : inner;
  }
  void run(stream& s) {
    if (convert) convert->execute(s, from_, to_);
  }

 private:
  memory from_, to_;
};

// oneDNN's three convolution primitives on user buffers in NCHW (weights OIHW), as a layer would run them.
class DnnlConv {
 public:
  DnnlConv(const ConvCase& c, bool nchw_activations, algorithm alg = algorithm::convolution_direct)
      : eng_(engine::kind::cpu, 0), strm_(eng_) {
    const memory::dims x_dims{c.batch, c.in_c, c.size, c.size}, w_dims{c.out_c, c.in_c, c.kernel, c.kernel},
        y_dims{c.batch, c.out_c, out_size(c), out_size(c)}, strides{c.stride, c.stride}, pads{c.pad, c.pad};
    const auto f32 = memory::data_type::f32;
    const auto act = nchw_activations ? memory::format_tag::nchw : memory::format_tag::any;
    const memory::desc x_any(x_dims, f32, act), w_any(w_dims, f32, memory::format_tag::any),
        y_any(y_dims, f32, act);
    primitive_attr attr;
    attr.set_scratchpad_mode(scratchpad_mode::user);
    const convolution_forward::primitive_desc fwd(
        {prop_kind::forward_training, alg, x_any, w_any, y_any, strides, pads, pads}, attr, eng_);
    const convolution_backward_data::primitive_desc bwd_data({alg, x_any, w_any, y_any, strides, pads, pads}, attr,
                                                             eng_, fwd);
    const convolution_backward_weights::primitive_desc bwd_weights({alg, x_any, w_any, y_any, strides, pads, pads},
                                                                   attr, eng_, fwd);
    impl_ = std::string(fwd.impl_info_str()) + " / " + bwd_data.impl_info_str() + " / " + bwd_weights.impl_info_str();
    fwd_ = convolution_forward(fwd);
    bwd_data_ = convolution_backward_data(bwd_data);
    bwd_weights_ = convolution_backward_weights(bwd_weights);

    user(x_, x_dims, memory::format_tag::nchw, 2);
    user(w_, w_dims, memory::format_tag::oihw, 1);
    user(y_, y_dims, memory::format_tag::nchw, 0);
    user(dy_, y_dims, memory::format_tag::nchw, 3);
    user(dx_, x_dims, memory::format_tag::nchw, 0);
    user(dw_, w_dims, memory::format_tag::oihw, 0);
    fwd_x_.bind(x_, fwd.src_desc(), eng_, false);
    fwd_w_.bind(w_, fwd.weights_desc(), eng_, false);
    fwd_y_.bind(y_, fwd.dst_desc(), eng_, true);
    bd_dy_.bind(dy_, bwd_data.diff_dst_desc(), eng_, false);
    bd_dx_.bind(dx_, bwd_data.diff_src_desc(), eng_, true);
    bw_x_.bind(x_, bwd_weights.src_desc(), eng_, false);
    bw_dy_reuse_ = bwd_weights.diff_dst_desc() == bwd_data.diff_dst_desc();
    if (!bw_dy_reuse_) bw_dy_.bind(dy_, bwd_weights.diff_dst_desc(), eng_, false);
    bw_dw_.bind(dw_, bwd_weights.diff_weights_desc(), eng_, true);
    bd_w_reuse_ = bwd_data.weights_desc() == fwd.weights_desc();
    if (!bd_w_reuse_) bd_w_.bind(w_, bwd_data.weights_desc(), eng_, false);
    const size_t scratch = std::max({fwd.scratchpad_desc().get_size(), bwd_data.scratchpad_desc().get_size(),
                                     bwd_weights.scratchpad_desc().get_size()});
    scratch_ = memory({{static_cast<memory::dim>(scratch)}, memory::data_type::u8, memory::format_tag::x}, eng_);
  }

  const std::string& impl() const { return impl_; }

  // The weights are reordered once per step, in the forward; the backward reuses them where it can.
  void forward() {
    fwd_x_.run(strm_);
    fwd_w_.run(strm_);
    fwd_.execute(strm_, {{DNNL_ARG_SRC, fwd_x_.inner}, {DNNL_ARG_WEIGHTS, fwd_w_.inner},
                         {DNNL_ARG_DST, fwd_y_.inner}, {DNNL_ARG_SCRATCHPAD, scratch_}});
    fwd_y_.run(strm_);
    strm_.wait();
  }
  void backward_data() {
    bd_dy_.run(strm_);
    if (!bd_w_reuse_) bd_w_.run(strm_);
    bwd_data_.execute(strm_, {{DNNL_ARG_DIFF_DST, bd_dy_.inner},
                              {DNNL_ARG_WEIGHTS, bd_w_reuse_ ? fwd_w_.inner : bd_w_.inner},
                              {DNNL_ARG_DIFF_SRC, bd_dx_.inner},
                              {DNNL_ARG_SCRATCHPAD, scratch_}});
    bd_dx_.run(strm_);
    strm_.wait();
  }
  // The input is reordered again (a pipeline stage may have run other micro-batches' forwards since);
  // the output gradient is reused when backward-data wanted the same layout.
  void backward_weights() {
    bw_x_.run(strm_);
    if (!bw_dy_reuse_) bw_dy_.run(strm_);
    bwd_weights_.execute(strm_, {{DNNL_ARG_SRC, bw_x_.inner},
                                 {DNNL_ARG_DIFF_DST, bw_dy_reuse_ ? bd_dy_.inner : bw_dy_.inner},
                                 {DNNL_ARG_DIFF_WEIGHTS, bw_dw_.inner},
                                 {DNNL_ARG_SCRATCHPAD, scratch_}});
    bw_dw_.run(strm_);
    strm_.wait();
  }

 private:
  void user(memory& m, const memory::dims& dims, memory::format_tag tag, uint64_t seed) {
    m = memory({dims, memory::data_type::f32, tag}, eng_);
    if (seed) fill_random(static_cast<float*>(m.get_data_handle()), static_cast<int64_t>(m.get_desc().get_size() / 4),
                          seed);
  }

  engine eng_;
  stream strm_;
  std::string impl_;
  convolution_forward fwd_;
  convolution_backward_data bwd_data_;
  convolution_backward_weights bwd_weights_;
  memory x_, w_, y_, dy_, dx_, dw_, scratch_;
  Operand fwd_x_, fwd_w_, fwd_y_, bd_dy_, bd_w_, bd_dx_, bw_x_, bw_dy_, bw_dw_;
  bool bd_w_reuse_ = false, bw_dy_reuse_ = false;
};

struct Times {
  double t[kDirections] = {1e30, 1e30, 1e30};
  void keep_best(Direction d, double s) { t[d] = std::min(t[d], s); }
};

// oneDNN's Winograd convolution (F(4x4, 3x3)), where it has one for the shape and this CPU.
std::optional<DnnlConv> winograd(const ConvCase& c) {
  try {
    return std::optional<DnnlConv>(std::in_place, c, false, algorithm::convolution_winograd);
  } catch (const dnnl::error&) {
    return std::nullopt;
  }
}

enum Variant { kAny, kNchw, kWinograd, kVariants };

// One round for one shape: the layer, then oneDNN in its chosen layouts, with NCHW activations, and Winograd.
void measure_round(LayerConv& layer, DnnlConv* dnnl[kVariants], Times& ours, double& ours_both,
                   Times dnnl_times[kVariants]) {
  ours.keep_best(kForward, seconds_per_call([&] { layer.forward(); }));
  ours.keep_best(kBackwardWeights, seconds_per_call([&] { layer.backward(false); }));
  ours_both = std::min(ours_both, seconds_per_call([&] { layer.backward(true); }));
  for (int v = 0; v < kVariants; ++v) {
    if (!dnnl[v]) continue;
    DnnlConv& conv = *dnnl[v];
    dnnl_times[v].keep_best(kForward, seconds_per_call([&] { conv.forward(); }));
    dnnl_times[v].keep_best(kBackwardData, seconds_per_call([&] { conv.backward_data(); }));
    dnnl_times[v].keep_best(kBackwardWeights, seconds_per_call([&] { conv.backward_weights(); }));
  }
}

std::vector<int> thread_counts(const char* list) {
  std::vector<int> counts;
  for (const char* p = list; *p;) {
    counts.push_back(std::atoi(p));
    while (*p && *p != ',') ++p;
    if (*p) ++p;
  }
  return counts;
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 3;
  const std::string filter = argc > 2 ? argv[2] : "";
  const std::vector<int> threads_list = thread_counts(argc > 3 ? argv[3] : "1,2");
  // Weighted sums per model and thread count (uses x time): the layer, and oneDNN in the layouts the layer
  // asks for (NCHW activations for 1x1 kernels, its own choice otherwise).
  std::map<std::string, double> weighted_ours, weighted_dnnl;
  std::printf("%-20s %-11s %3s %9s %9s %9s %9s %9s %9s %9s\n", "shape", "direction", "thr", "ours ms", "any ms",
              "nchw ms", "wino ms", "ours/any", "ours/nchw", "ours/wino");
  for (const ConvCase& c : kCases) {
    if (!filter.empty() && std::string(c.name).find(filter) == std::string::npos) continue;
    for (int threads : threads_list) {
      set_compute_threads(threads);
      LayerConv layer(c);
      DnnlConv any(c, false), nchw(c, true);
      std::optional<DnnlConv> wino = winograd(c);
      DnnlConv* dnnl[kVariants] = {&any, &nchw, wino ? &*wino : nullptr};
      Times ours, dnnl_times[kVariants];
      double ours_both = 1e30;  // the layer's backward with both gradients
      for (int r = 0; r < rounds; ++r) measure_round(layer, dnnl, ours, ours_both, dnnl_times);
      ours.t[kBackwardData] = std::max(ours_both - ours.t[kBackwardWeights], 0.0);
      for (int d = 0; d < kDirections; ++d) {
        const double o = ours.t[d] * 1e3, a = dnnl_times[kAny].t[d] * 1e3, n = dnnl_times[kNchw].t[d] * 1e3;
        const double w = wino ? dnnl_times[kWinograd].t[d] * 1e3 : 0.0;
        std::printf("%-20s %-11s %3d %9.3f %9.3f %9.3f %9.3f %9.2f %9.2f %9.2f\n", c.name, kDirectionNames[d], threads,
                    o, a, n, w, o / a, o / n, wino ? o / w : 0.0);
        const std::string key = std::string(c.model) + " " + std::to_string(threads) + " thr";
        if (c.first && d == kBackwardData) continue;
        weighted_ours[key] += c.uses * o;
        weighted_dnnl[key] += c.uses * (c.kernel == 1 ? n : a);
      }
      if (threads == threads_list.front())
        std::printf("  oneDNN any:  %s\n  oneDNN nchw: %s\n  oneDNN wino: %s\n", any.impl().c_str(),
                    nchw.impl().c_str(), wino ? wino->impl().c_str() : "(none for this shape)");
    }
    std::fflush(stdout);
  }
  std::printf("\nweighted by uses, all three directions (ms per step of these convolutions; the first layer\n"
              "without its input gradient; oneDNN in the layouts the layer asks for):\n");
  for (const auto& [key, o] : weighted_ours)
    std::printf("%-16s ours %9.2f  oneDNN %9.2f  ours/oneDNN %.2f\n", key.c_str(), o, weighted_dnnl[key],
                o / weighted_dnnl[key]);
  return 0;
}
