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

// The descriptor's math type while cuDNN searches says which kernels it may try: FMA only for fp32, tensor
// cores (TF32) allowed otherwise.
cudnnMathType_t search_math(Precision precision) {
  return precision == Precision::fp32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;
}

bool tensor_cores(cudnnMathType_t math) {
  return math == CUDNN_TENSOR_OP_MATH || math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

// The math type a chosen algorithm runs with: the one cuDNN measured it with, except that fp32 stays on FMA
// kernels whatever a result reports (CUDNN_DEFAULT_MATH would allow TF32 again).
cudnnMathType_t run_math(Precision precision, cudnnMathType_t measured) {
  return precision == Precision::fp32 ? CUDNN_FMA_MATH : measured;
}

// The fastest algorithm cudnnFind measured that ran (and, in fp32, not on tensor cores and exact enough;
// cuDNN reports the math type each result ran with), or an error. Results come sorted by time.
template <class Perf>
const Perf& fastest(const Perf* perf, int count, Precision precision, const char* what) {
  const bool fp32 = precision == Precision::fp32;
  for (int i = 0; i < count; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
    if (!fp32 || (!tensor_cores(perf[i].mathType) && exact_enough(perf[i].algo))) return perf[i];
  }
  throw Error(std::string("cuDNN found no working algorithm for ") + what);
}

constexpr int kMaxAlgos = 16;

}  // namespace

CudaConv2d::CudaConv2d(Conv2d& source)
    : CudaLayer(source),
      g_(source.geometry()),
      has_bias_(source.has_bias()),
      relu_(source.relu_folded()),
      precision_(context().precision()) {
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
  describe(bias_desc_, 1, g_.out_c, 1, 1);
}

std::vector<Param*> CudaConv2d::params() {
  if (has_bias_) return {&weight_, &bias_};
  return {&weight_};
}

void CudaConv2d::describe_batch(int64_t batch) {
  if (batch == described_batch_) return;
  describe(x_desc_, batch, g_.in_c, g_.in_h, g_.in_w);
  describe(y_desc_, batch, g_.out_c, g_.out_h, g_.out_w);
  described_batch_ = batch;
}

// The descriptor carries the math type: each call runs with the one its algorithm was measured with (an
// algorithm run under another math type may be another, slower kernel than the one timed, or need more
// workspace than was measured). Setting it is a host-side write, in order with the calls that read it.
void CudaConv2d::use_math(cudnnMathType_t math) {
  check(cudnnSetConvolutionMathType(conv_desc_, math), "cudnnSetConvolutionMathType");
}

template <class Perf, class Find, class WorkspaceSize>
CudaConv2d::Choice<decltype(Perf::algo)> CudaConv2d::search(Find find, WorkspaceSize workspace_size, const char* what) {
  use_math(search_math(precision_));
  Perf perf[kMaxAlgos];
  int count = 0;
  check(find(kMaxAlgos, &count, perf), what);
  // The search runs every algorithm, and some fail (a workspace larger than the free memory). Whatever it
  // leaves as this thread's last CUDA runtime error must not become the next kernel's (the launch check in
  // kernels/launch.cuh reads it, whoever set it). cuDNN 9 as shipped here carries its own runtime (its
  // libraries need no libcudart), so its failures do not reach ours; one linked to the shared runtime would.
  cudaGetLastError();
  const Perf& best = fastest(perf, count, precision_, what);
  const cudnnMathType_t math = run_math(precision_, best.mathType);
  use_math(math);
  size_t bytes = 0;
  check(workspace_size(best.algo, &bytes), what);
  return {best.algo, math, std::max(bytes, best.memory)};
}

CudaConv2d::Choice<cudnnConvolutionFwdAlgo_t> CudaConv2d::search_forward() {
  cudnnHandle_t h = context().cudnn();
  return search<cudnnConvolutionFwdAlgoPerf_t>(
      [&](int n, int* count, cudnnConvolutionFwdAlgoPerf_t* perf) {
        return cudnnFindConvolutionForwardAlgorithm(h, x_desc_, w_desc_, conv_desc_, y_desc_, n, count, perf);
      },
      [&](cudnnConvolutionFwdAlgo_t algo, size_t* bytes) {
        return cudnnGetConvolutionForwardWorkspaceSize(h, x_desc_, w_desc_, conv_desc_, y_desc_, algo, bytes);
      },
      "the convolution's forward");
}

CudaConv2d::BackwardChoices CudaConv2d::search_backward() {
  cudnnHandle_t h = context().cudnn();
  const auto data = search<cudnnConvolutionBwdDataAlgoPerf_t>(
      [&](int n, int* count, cudnnConvolutionBwdDataAlgoPerf_t* perf) {
        return cudnnFindConvolutionBackwardDataAlgorithm(h, w_desc_, y_desc_, conv_desc_, x_desc_, n, count, perf);
      },
      [&](cudnnConvolutionBwdDataAlgo_t algo, size_t* bytes) {
        return cudnnGetConvolutionBackwardDataWorkspaceSize(h, w_desc_, y_desc_, conv_desc_, x_desc_, algo, bytes);
      },
      "the convolution's input gradient");
  const auto filter = search<cudnnConvolutionBwdFilterAlgoPerf_t>(
      [&](int n, int* count, cudnnConvolutionBwdFilterAlgoPerf_t* perf) {
        return cudnnFindConvolutionBackwardFilterAlgorithm(h, x_desc_, y_desc_, conv_desc_, w_desc_, n, count, perf);
      },
      [&](cudnnConvolutionBwdFilterAlgo_t algo, size_t* bytes) {
        return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, x_desc_, y_desc_, conv_desc_, w_desc_, algo, bytes);
      },
      "the convolution's weight gradient");
  return {data, filter};
}

const Tensor& CudaConv2d::forward(const Tensor& x, Mode) {
  const int64_t n = x.dim(0);
  if (x.rank() != 4 || x.dim(1) != g_.in_c || x.dim(2) != g_.in_h || x.dim(3) != g_.in_w)
    throw Error("conv expects [batch, " + std::to_string(g_.in_c) + ", " + std::to_string(g_.in_h) + ", " +
                std::to_string(g_.in_w) + "] input, got " + shape_str(x.shape()));
  describe_batch(n);
  const auto& f = algorithms_.forward(n, [&] { return search_forward(); });
  x_ = &x;
  y_.resize({n, g_.out_c, g_.out_h, g_.out_w});
  use_math(f.math);
  const float one = 1.0f, zero = 0.0f;
  check(cudnnConvolutionForward(context().cudnn(), &one, x_desc_, x.data(), w_desc_, weight_.value.data(), conv_desc_,
                                f.algo, context().workspace(f.workspace), f.workspace, &zero, y_desc_, y_.data()),
        "cudnnConvolutionForward");
  kernels::bias_relu(y_.data(), has_bias_ ? bias_.value.data() : nullptr, y_.numel(), g_.out_c, g_.out_h * g_.out_w,
                     relu_, stream());
  return y_;
}

const Tensor& CudaConv2d::backward(const Tensor& dy) {
  // The batch of the forward this backward follows: a pipeline stage runs other micro-batches' forwards in
  // between (x_ is the input tensor object, whose contents the stage trades back in before this).
  const int64_t n = x_->dim(0);
  describe_batch(n);
  const BackwardChoices& b = algorithms_.backward(n, [&] { return search_backward(); });
  const float* g = dy.data();
  if (relu_) {
    dy_relu_.resize(dy.shape());
    kernels::relu_mask(dy.data(), y_.data(), dy_relu_.data(), dy.numel(), stream());
    g = dy_relu_.data();
  }
  cudnnHandle_t h = context().cudnn();
  const size_t workspace = input_grad_needed_ ? std::max(b.data.workspace, b.filter.workspace) : b.filter.workspace;
  void* ws = context().workspace(workspace);
  const float one = 1.0f, zero = 0.0f;
  use_math(b.filter.math);
  check(cudnnConvolutionBackwardFilter(h, &one, x_desc_, x_->data(), y_desc_, g, conv_desc_, b.filter.algo, ws,
                                       b.filter.workspace, &one, w_desc_, weight_.grad.data()),
        "cudnnConvolutionBackwardFilter");
  if (has_bias_)
    check(cudnnConvolutionBackwardBias(h, &one, y_desc_, g, &one, bias_desc_, bias_.grad.data()),
          "cudnnConvolutionBackwardBias");
  if (!input_grad_needed_) return dx_;
  dx_.resize(x_->shape());
  use_math(b.data.math);
  check(cudnnConvolutionBackwardData(h, &one, w_desc_, weight_.value.data(), y_desc_, g, conv_desc_, b.data.algo, ws,
                                     b.data.workspace, &zero, x_desc_, dx_.data()),
        "cudnnConvolutionBackwardData");
  return dx_;
}

}  // namespace ringtrain::cuda
