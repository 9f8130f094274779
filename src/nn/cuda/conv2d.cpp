#include <algorithm>

#include "cuda_layers.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain::cuda {

namespace {

// Winograd transforms round differently enough from a direct sum to spend the fp32 promise (agreement with
// the CPU engine to ~1e-5); under tf32 and bf16 that promise is already given up.
bool exact_enough(cudnnConvolutionFwdAlgo_t a) {
  return a != CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD && a != CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED;
}
bool exact_enough(cudnnConvolutionBwdDataAlgo_t a) {
  return a != CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD && a != CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED;
}
bool exact_enough(cudnnConvolutionBwdFilterAlgo_t a) { return a != CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED; }

// The fastest algorithm cudnnFind measured that ran (and, in fp32, is exact enough), or an error.
template <class Perf>
const Perf& fastest(const Perf* perf, int count, const char* what) {
  const bool fp32 = context().precision() == Precision::fp32;
  for (int i = 0; i < count; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS && (!fp32 || exact_enough(perf[i].algo))) return perf[i];
  throw Error(std::string("cuDNN found no working algorithm for ") + what);
}

constexpr int kMaxAlgos = 16;

}  // namespace

CudaConv2d::CudaConv2d(Conv2d& source)
    : CudaLayer(source), g_(source.geometry()), has_bias_(source.has_bias()), relu_(source.relu_folded()) {
  const std::vector<Param*> p = source.params();
  weight_ = to_device(*p[0]);
  if (has_bias_) bias_ = to_device(*p[1]);
  check(cudnnSetFilter4dDescriptor(w_desc_, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, static_cast<int>(g_.out_c),
                                   static_cast<int>(g_.in_c), static_cast<int>(g_.kernel), static_cast<int>(g_.kernel)),
        "cudnnSetFilter4dDescriptor");
  const int pad = static_cast<int>(g_.pad), stride = static_cast<int>(g_.stride);
  check(cudnnSetConvolution2dDescriptor(conv_desc_, pad, pad, stride, stride, 1, 1, CUDNN_CROSS_CORRELATION,
                                        CUDNN_DATA_FLOAT),
        "cudnnSetConvolution2dDescriptor");
  // FMA-only kernels keep fp32 products exact to fp32; the default lets cuDNN pick TF32 tensor cores.
  check(cudnnSetConvolutionMathType(conv_desc_,
                                    context().precision() == Precision::fp32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH),
        "cudnnSetConvolutionMathType");
  describe(bias_desc_, 1, g_.out_c, 1, 1);
}

std::vector<Param*> CudaConv2d::params() {
  if (has_bias_) return {&weight_, &bias_};
  return {&weight_};
}

void CudaConv2d::prepare(int64_t batch) {
  describe(x_desc_, batch, g_.in_c, g_.in_h, g_.in_w);
  describe(y_desc_, batch, g_.out_c, g_.out_h, g_.out_w);
  cudnnHandle_t h = context().cudnn();
  int count = 0;
  cudnnConvolutionFwdAlgoPerf_t fwd[kMaxAlgos];
  check(cudnnFindConvolutionForwardAlgorithm(h, x_desc_, w_desc_, conv_desc_, y_desc_, kMaxAlgos, &count, fwd),
        "cudnnFindConvolutionForwardAlgorithm");
  const auto& f = fastest(fwd, count, "the convolution's forward");
  cudnnConvolutionBwdDataAlgoPerf_t data[kMaxAlgos];
  check(cudnnFindConvolutionBackwardDataAlgorithm(h, w_desc_, y_desc_, conv_desc_, x_desc_, kMaxAlgos, &count, data),
        "cudnnFindConvolutionBackwardDataAlgorithm");
  const auto& d = fastest(data, count, "the convolution's input gradient");
  cudnnConvolutionBwdFilterAlgoPerf_t filter[kMaxAlgos];
  check(cudnnFindConvolutionBackwardFilterAlgorithm(h, x_desc_, y_desc_, conv_desc_, w_desc_, kMaxAlgos, &count, filter),
        "cudnnFindConvolutionBackwardFilterAlgorithm");
  const auto& w = fastest(filter, count, "the convolution's weight gradient");
  forward_algo_ = f.algo;
  data_algo_ = d.algo;
  filter_algo_ = w.algo;
  workspace_bytes_ = std::max({f.memory, d.memory, w.memory});
  batch_ = batch;
}

const Tensor& CudaConv2d::forward(const Tensor& x, Mode) {
  const int64_t n = x.dim(0);
  if (x.rank() != 4 || x.dim(1) != g_.in_c || x.dim(2) != g_.in_h || x.dim(3) != g_.in_w)
    throw Error("conv expects [batch, " + std::to_string(g_.in_c) + ", " + std::to_string(g_.in_h) + ", " +
                std::to_string(g_.in_w) + "] input, got " + shape_str(x.shape()));
  if (n != batch_) prepare(n);
  x_ = &x;
  y_.resize({n, g_.out_c, g_.out_h, g_.out_w});
  const float one = 1.0f, zero = 0.0f;
  check(cudnnConvolutionForward(context().cudnn(), &one, x_desc_, x.data(), w_desc_, weight_.value.data(), conv_desc_,
                                forward_algo_, context().workspace(workspace_bytes_), workspace_bytes_, &zero, y_desc_,
                                y_.data()),
        "cudnnConvolutionForward");
  kernels::bias_relu(y_.data(), has_bias_ ? bias_.value.data() : nullptr, y_.numel(), g_.out_c, g_.out_h * g_.out_w,
                     relu_, stream());
  return y_;
}

const Tensor& CudaConv2d::backward(const Tensor& dy) {
  const float* g = dy.data();
  if (relu_) {
    dy_relu_.resize(dy.shape());
    kernels::relu_mask(dy.data(), y_.data(), dy_relu_.data(), dy.numel(), stream());
    g = dy_relu_.data();
  }
  cudnnHandle_t h = context().cudnn();
  void* ws = context().workspace(workspace_bytes_);
  const float one = 1.0f, zero = 0.0f;
  check(cudnnConvolutionBackwardFilter(h, &one, x_desc_, x_->data(), y_desc_, g, conv_desc_, filter_algo_, ws,
                                       workspace_bytes_, &one, w_desc_, weight_.grad.data()),
        "cudnnConvolutionBackwardFilter");
  if (has_bias_)
    check(cudnnConvolutionBackwardBias(h, &one, y_desc_, g, &one, bias_desc_, bias_.grad.data()),
          "cudnnConvolutionBackwardBias");
  if (!input_grad_needed_) return dx_;
  dx_.resize(x_->shape());
  check(cudnnConvolutionBackwardData(h, &one, w_desc_, weight_.value.data(), y_desc_, g, conv_desc_, data_algo_, ws,
                                     workspace_bytes_, &zero, x_desc_, dx_.data()),
        "cudnnConvolutionBackwardData");
  return dx_;
}

}  // namespace ringtrain::cuda
