#include "ringtrain/nn/conv2d.hpp"

#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <cmath>
#include <optional>
#include <unordered_map>

#include "ringtrain/tensor/blas.hpp"
#include "ringtrain/tensor/cpu_features.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

namespace {

using dnnl::memory;
using Tag = memory::format_tag;

// One CPU engine for every layer: it stands for the machine, and oneDNN's primitive cache is shared anyway.
const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

memory::desc f32(const memory::dims& dims, Tag tag) { return {dims, memory::data_type::f32, tag}; }

// A tensor's floats seen as oneDNN memory of layout `md` (oneDNN writes nothing through its inputs' handles).
memory over(const memory::desc& md, const float* data) { return {md, cpu_engine(), const_cast<float*>(data)}; }

// `buffer`, grown to hold `md` where it is smaller, seen as oneDNN memory of that layout.
memory over(const memory::desc& md, Tensor& buffer) {
  const auto floats = static_cast<int64_t>((md.get_size() + sizeof(float) - 1) / sizeof(float));
  if (buffer.numel() < std::max<int64_t>(floats, 1)) buffer.resize({std::max<int64_t>(floats, 1)});
  return {md, cpu_engine(), buffer.data()};
}

// One tensor's conversion between the layer's layout and a primitive's: a reorder, or none where they agree.
struct Conversion {
  memory::desc from, to;
  std::optional<dnnl::reorder> reorder;
};

Conversion conversion(const memory::desc& from, const memory::desc& to) {
  Conversion c{from, to, std::nullopt};
  if (from != to) c.reorder = dnnl::reorder(dnnl::reorder::primitive_desc(cpu_engine(), from, cpu_engine(), to));
  return c;
}

// A reorder that adds into its destination (a sum post-op): dst += src in dst's layout, in one pass.
Conversion accumulation(const memory::desc& from, const memory::desc& to) {
  dnnl::post_ops sum;
  sum.append_sum(1.0f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(sum);
  return {from, to, dnnl::reorder(dnnl::reorder::primitive_desc(cpu_engine(), from, cpu_engine(), to, attr))};
}

void run(const dnnl::reorder& reorder, dnnl::stream& stream, const memory& from, const memory& to) {
  reorder.execute(stream, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}});
}

// `data` (layout c.from) as a primitive reads it (layout c.to): in place, or converted into `staging`.
memory stage_in(const Conversion& c, const float* data, Tensor& staging, dnnl::stream& stream) {
  if (!c.reorder) return over(c.to, data);
  memory staged = over(c.to, staging);
  run(*c.reorder, stream, over(c.from, data), staged);
  return staged;
}

// Where a primitive writes its output (layout c.from) that belongs in `data` (layout c.to): `data` itself, or
// `staging`, which finish_out then converts into `data`.
memory stage_out(const Conversion& c, float* data, Tensor& staging) {
  return c.reorder ? over(c.from, staging) : over(c.to, data);
}

void finish_out(const Conversion& c, const memory& staged, float* data, dnnl::stream& stream) {
  if (c.reorder) run(*c.reorder, stream, staged, over(c.to, data));
}

// One batch's tensors as the layer holds them (NCHW activations, OIHW weights) and as the primitives are
// asked for them: in the layout oneDNN prefers (format_tag::any: channels blocked by 16), except activations
// of 1x1 kernels. On NCHW those are one GEMM per sample, which beats the blocked kernel plus the reorders in
// and out (1.3-2.6x on ResNet-50's 1x1 shapes, bench/conv_kernels).
struct Layouts {
  memory::desc x, w, y, x_any, w_any, y_any;
  memory::dims strides, pads;
};

Layouts layouts(const ConvGeometry& g, int64_t batch) {
  const memory::dims x_dims{batch, g.in_c, g.in_h, g.in_w}, w_dims{g.out_c, g.in_c, g.kernel, g.kernel},
      y_dims{batch, g.out_c, g.out_h, g.out_w};
  const Tag act = g.kernel == 1 ? Tag::nchw : Tag::any;
  return {f32(x_dims, Tag::nchw), f32(w_dims, Tag::oihw), f32(y_dims, Tag::nchw), f32(x_dims, act),
          f32(w_dims, Tag::any),  f32(y_dims, act),       {g.stride, g.stride},   {g.pad, g.pad}};
}

// oneDNN's Winograd convolution (F(4x4, 3x3)) for 3x3, stride-1 convolutions of 64 or more channels on
// outputs of 14x14 or more: 1.5-2x faster than direct on ResNet-50's 64@56x56, 128@28x28 and 256@14x14,
// slower at 512@7x7 and on resnet20's 16-32 channels (bench/conv_kernels, docs/benchmarks.md). Its
// scratchpad is larger (10-35 MB for those shapes), and it rounds differently from direct, as cuDNN's
// Winograd does.
bool winograd_pays(const ConvGeometry& g) {
  return g.kernel == 3 && g.stride == 1 && std::min(g.in_c, g.out_c) >= 64 && g.out_h * g.out_w >= 14 * 14;
}

dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

}  // namespace

// The three primitives of one batch size and thread count, and the reorders between the layer's layouts and
// the ones oneDNN chose for them.
struct Conv2d::Plan {
  dnnl::convolution_forward::primitive_desc fwd_pd;
  dnnl::convolution_backward_data::primitive_desc bwd_data_pd;
  dnnl::convolution_backward_weights::primitive_desc bwd_weights_pd;
  dnnl::convolution_forward fwd;
  dnnl::convolution_backward_data bwd_data;
  dnnl::convolution_backward_weights bwd_weights;
  memory::desc bias;  // also the bias gradient's
  Conversion x_to_fwd, w_to_fwd, fwd_to_y;
  Conversion dy_to_bwd_data, w_to_bwd_data, bwd_data_to_dx;
  Conversion x_to_bwd_weights, dy_to_bwd_weights, dw_into_grad;
  bool dy_shared = false;  // both backward primitives read dy in one layout: converted once
  dnnl::stream stream{cpu_engine()};

  Plan(const ConvGeometry& g, int64_t batch, bool has_bias, bool relu);
  void make_primitives(const Layouts& l, dnnl::algorithm alg, bool relu);
  void make_conversions(const Layouts& l);
};

Conv2d::Plan::Plan(const ConvGeometry& g, int64_t batch, bool has_bias, bool relu) {
  bias = has_bias ? f32({g.out_c}, Tag::x) : memory::desc();  // a zero desc: no bias
  const Layouts l = layouts(g, batch);
  const bool winograd = winograd_pays(g);
  try {
    make_primitives(l, winograd ? dnnl::algorithm::convolution_winograd : dnnl::algorithm::convolution_direct, relu);
  } catch (const dnnl::error& e) {
    if (!winograd || e.status != dnnl_unimplemented) throw;
    make_primitives(l, dnnl::algorithm::convolution_direct, relu);  // oneDNN has Winograd for AVX-512 CPUs only
  }
  make_conversions(l);
}

// The folded ReLU is a post-op of the forward; the backward primitives take the forward's as a hint to agree
// with its layouts.
void Conv2d::Plan::make_primitives(const Layouts& l, dnnl::algorithm alg, bool relu) {
  using namespace dnnl;
  primitive_attr fwd_attr = user_scratchpad();  // its own object: copies of an attr share one handle
  if (relu) {
    post_ops ops;
    ops.append_eltwise(1.0f, algorithm::eltwise_relu, 0.0f, 0.0f);
    fwd_attr.set_post_ops(ops);
  }
  fwd_pd = convolution_forward::primitive_desc(
      convolution_forward::desc(prop_kind::forward_training, alg, l.x_any, l.w_any, bias, l.y_any, l.strides, l.pads,
                                l.pads),
      fwd_attr, cpu_engine());
  bwd_data_pd = convolution_backward_data::primitive_desc(
      convolution_backward_data::desc(alg, l.x_any, l.w_any, l.y_any, l.strides, l.pads, l.pads), user_scratchpad(),
      cpu_engine(), fwd_pd);
  bwd_weights_pd = convolution_backward_weights::primitive_desc(
      convolution_backward_weights::desc(alg, l.x_any, l.w_any, bias, l.y_any, l.strides, l.pads, l.pads),
      user_scratchpad(), cpu_engine(), fwd_pd);
  fwd = convolution_forward(fwd_pd);
  bwd_data = convolution_backward_data(bwd_data_pd);
  bwd_weights = convolution_backward_weights(bwd_weights_pd);
}

void Conv2d::Plan::make_conversions(const Layouts& l) {
  x_to_fwd = conversion(l.x, fwd_pd.src_desc());
  w_to_fwd = conversion(l.w, fwd_pd.weights_desc());
  fwd_to_y = conversion(fwd_pd.dst_desc(), l.y);
  dy_to_bwd_data = conversion(l.y, bwd_data_pd.diff_dst_desc());
  w_to_bwd_data = conversion(l.w, bwd_data_pd.weights_desc());
  bwd_data_to_dx = conversion(bwd_data_pd.diff_src_desc(), l.x);
  x_to_bwd_weights = conversion(l.x, bwd_weights_pd.src_desc());
  dy_to_bwd_weights = conversion(l.y, bwd_weights_pd.diff_dst_desc());
  dw_into_grad = accumulation(bwd_weights_pd.diff_weights_desc(), l.w);
  dy_shared = bwd_data_pd.diff_dst_desc() == bwd_weights_pd.diff_dst_desc();
}

Conv2d::Conv2d(int64_t out_channels, int64_t kernel, int64_t stride, int64_t pad, bool bias)
    : out_c_(out_channels), kernel_(kernel), stride_(stride), pad_(pad), has_bias_(bias) {}

Conv2d::~Conv2d() = default;

std::string Conv2d::spec() const {
  return "conv(" + std::to_string(out_c_) + "," + std::to_string(kernel_) + ",stride=" + std::to_string(stride_) +
         ",pad=" + std::to_string(pad_) + (has_bias_ ? "" : ",bias=0") + ")";
}

Shape Conv2d::build(const Shape& in, Rng& rng) {
  if (in.size() != 3)
    throw Error("conv needs image input [channels, height, width], got " + shape_str(in) +
                (in.size() == 1 ? ": flat samples (tabular data, or the output of a flatten) suit linear layers"
                                : std::string()));
  g_ = {in[0], in[1], in[2], out_c_, kernel_, stride_, pad_, 0, 0};
  g_.out_h = (g_.in_h + 2 * pad_ - kernel_) / stride_ + 1;
  g_.out_w = (g_.in_w + 2 * pad_ - kernel_) / stride_ + 1;
  if (g_.in_h + 2 * pad_ < kernel_ || g_.in_w + 2 * pad_ < kernel_)
    throw Error("conv kernel " + std::to_string(kernel_) + " is larger than its padded input " + shape_str(in));
  const int64_t fan_in = g_.in_c * kernel_ * kernel_;
  const float bound = 1.0f / std::sqrt(static_cast<float>(fan_in));
  weight_.value = Tensor({out_c_, in[0], kernel_, kernel_});
  weight_.grad = Tensor(weight_.value.shape());
  for (int64_t i = 0; i < weight_.value.numel(); ++i) weight_.value[i] = rng.uniform(-bound, bound);
  if (has_bias_) {
    bias_.value = Tensor({out_c_});
    bias_.grad = Tensor({out_c_});
    bias_grad_ = Tensor({out_c_});
    for (int64_t i = 0; i < out_c_; ++i) bias_.value[i] = rng.uniform(-bound, bound);
  }
  plans_.clear();
  weights_converted_by_ = nullptr;
  return {out_c_, g_.out_h, g_.out_w};
}

bool Conv2d::fold_relu() {
  relu_ = true;
  plans_.clear();  // the ReLU is a post-op of the forward primitive
  weights_converted_by_ = nullptr;
  return true;
}

double Conv2d::flops_per_sample() const {
  return 6.0 * static_cast<double>(out_c_ * g_.in_c * kernel_ * kernel_ * g_.out_h * g_.out_w);
}

Conv2d::Plan& Conv2d::plan_for(int64_t batch) {
  const std::pair<int64_t, int> key{batch, compute_threads()};
  auto it = plans_.find(key);
  if (it != plans_.end()) return *it->second;
  try {
    return *plans_.emplace(key, std::make_unique<Plan>(g_, batch, has_bias_, relu_)).first->second;
  } catch (const dnnl::error& e) {
    throw Error("oneDNN has no convolution for " + spec() + " on [" + std::to_string(batch) + ", " +
                std::to_string(g_.in_c) + ", " + std::to_string(g_.in_h) + ", " + std::to_string(g_.in_w) +
                "]: " + e.what());
  }
}

const Tensor& Conv2d::forward(const Tensor& x, Mode) {
  x_ = &x;
  y_.resize({x.dim(0), out_c_, g_.out_h, g_.out_w});
  Plan& p = plan_for(x.dim(0));
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, stage_in(p.x_to_fwd, x.data(), in_staged_, p.stream)},
      {DNNL_ARG_WEIGHTS, stage_in(p.w_to_fwd, weight_.value.data(), weight_fwd_, p.stream)},
      {DNNL_ARG_DST, stage_out(p.fwd_to_y, y_.data(), out_staged_)},
      {DNNL_ARG_SCRATCHPAD, over(p.fwd_pd.scratchpad_desc(), scratchpad_)}};
  if (has_bias_) args[DNNL_ARG_BIAS] = over(p.bias, bias_.value.data());
  p.fwd.execute(p.stream, args);
  finish_out(p.fwd_to_y, args[DNNL_ARG_DST], y_.data(), p.stream);
  p.stream.wait();
  weights_converted_by_ = &p;
  return y_;
}

const Tensor& Conv2d::backward(const Tensor& dy) {
  Plan& p = plan_for(dy.dim(0));
  const float* g = relu_ ? masked_by_relu(dy) : dy.data();
  const memory dy_w = stage_in(p.dy_to_bwd_weights, g, out_staged_, p.stream);
  backward_weights(p, dy_w);
  if (input_grad_needed_) backward_data(p, p.dy_shared ? dy_w : stage_in(p.dy_to_bwd_data, g, dy_staged_, p.stream));
  p.stream.wait();
  return dx_;
}

// The output gradient where the folded ReLU passed nothing (y = 0); positions are independent, so any
// split over threads gives the same result.
const float* Conv2d::masked_by_relu(const Tensor& dy) {
  dy_relu_.resize(dy.shape());
  const int64_t n = dy.dim(0), per_sample = dy.numel() / std::max<int64_t>(n, 1);
#pragma omp parallel for schedule(static)
  for (int64_t s = 0; s < n; ++s) {
    run_vectorised([&] {
      const float *y = y_.data() + s * per_sample, *g = dy.data() + s * per_sample;
      float* out = dy_relu_.data() + s * per_sample;
      for (int64_t i = 0; i < per_sample; ++i) out[i] = y[i] > 0.0f ? g[i] : 0.0f;
    });
  }
  return dy_relu_.data();
}

// dW and db of this batch, added into the parameters' gradients (micro-batches accumulate there).
void Conv2d::backward_weights(Plan& p, const memory& dy) {
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, stage_in(p.x_to_bwd_weights, x_->data(), in_staged_, p.stream)},
      {DNNL_ARG_DIFF_DST, dy},
      {DNNL_ARG_DIFF_WEIGHTS, over(p.dw_into_grad.from, dw_staged_)},
      {DNNL_ARG_SCRATCHPAD, over(p.bwd_weights_pd.scratchpad_desc(), scratchpad_)}};
  if (has_bias_) args[DNNL_ARG_DIFF_BIAS] = over(p.bias, bias_grad_);
  p.bwd_weights.execute(p.stream, args);
  run(*p.dw_into_grad.reorder, p.stream, args[DNNL_ARG_DIFF_WEIGHTS], over(p.dw_into_grad.to, weight_.grad.data()));
  p.stream.wait();
  if (has_bias_)
    for (int64_t c = 0; c < out_c_; ++c) bias_.grad[c] += bias_grad_[c];
}

// dx, written through the staging buffer the weight gradient has finished reading x from. The weights come
// converted by the last forward where it used this layout: they change only between steps, and every step
// runs its forwards first.
void Conv2d::backward_data(Plan& p, const memory& dy) {
  dx_.resize(x_->shape());
  const Conversion& to_w = p.w_to_bwd_data;
  const bool converted = weights_converted_by_ && weights_converted_by_->w_to_fwd.reorder &&
                         weights_converted_by_->w_to_fwd.to == to_w.to;
  const memory w =
      converted ? over(to_w.to, weight_fwd_) : stage_in(to_w, weight_.value.data(), weight_bwd_, p.stream);
  const memory dx = stage_out(p.bwd_data_to_dx, dx_.data(), in_staged_);
  p.bwd_data.execute(p.stream, {{DNNL_ARG_DIFF_DST, dy},
                                {DNNL_ARG_WEIGHTS, w},
                                {DNNL_ARG_DIFF_SRC, dx},
                                {DNNL_ARG_SCRATCHPAD, over(p.bwd_data_pd.scratchpad_desc(), scratchpad_)}});
  finish_out(p.bwd_data_to_dx, dx, dx_.data(), p.stream);
}

std::vector<Param*> Conv2d::params() {
  if (has_bias_) return {&weight_, &bias_};
  return {&weight_};
}

}  // namespace ringtrain
