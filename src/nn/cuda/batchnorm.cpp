#include "cuda_layers.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain::cuda {

CudaBatchNorm::CudaBatchNorm(BatchNorm& source)
    : CudaLayer(source), momentum_(source.momentum()), eps_(source.eps()), relu_(source.relu_folded()) {
  const std::vector<Param*> p = source.params();
  gamma_ = to_device(*p[0]);
  beta_ = to_device(*p[1]);
  const std::vector<NamedTensor> b = source.buffers();
  running_mean_ = b[0].tensor->to(Device::cuda);
  running_var_ = b[1].tensor->to(Device::cuda);
  channels_ = gamma_.value.numel();
}

// [N, C] and [N, C, H, W] are both normalised per C over everything else: cuDNN's spatial mode over
// [N, C, spatial, 1].
void CudaBatchNorm::describe_input(const Tensor& x) {
  const int64_t n = x.dim(0), spatial = x.numel() / (n * channels_);
  if (n == described_batch_ && spatial == spatial_) return;
  describe(x_desc_, n, channels_, spatial, 1);
  check(cudnnDeriveBNTensorDescriptor(param_desc_, x_desc_, CUDNN_BATCHNORM_SPATIAL), "cudnnDeriveBNTensorDescriptor");
  described_batch_ = n;
  spatial_ = spatial;
}

const Tensor& CudaBatchNorm::forward(const Tensor& x, Mode mode) {
  if (mode == Mode::train && x.numel() / channels_ < 2)
    throw Error("batchnorm needs more than one value per channel in training (batch of 1 without spatial dims)");
  describe_input(x);
  x_ = &x;
  y_.resize(x.shape());
  const float one = 1.0f, zero = 0.0f;
  if (mode == Mode::train) {
    // Sized here, not once: a pipeline stage trades these with each micro-batch's stash (forward_state),
    // and a fresh stash holds empty tensors.
    saved_mean_.resize({channels_});
    saved_inv_std_.resize({channels_});
    check(cudnnBatchNormalizationForwardTraining(context().cudnn(), CUDNN_BATCHNORM_SPATIAL, &one, &zero, x_desc_,
                                                 x.data(), x_desc_, y_.data(), param_desc_, gamma_.value.data(),
                                                 beta_.value.data(), momentum_, running_mean_.data(),
                                                 running_var_.data(), eps_, saved_mean_.data(), saved_inv_std_.data()),
          "cudnnBatchNormalizationForwardTraining");
  } else {
    check(cudnnBatchNormalizationForwardInference(context().cudnn(), CUDNN_BATCHNORM_SPATIAL, &one, &zero, x_desc_,
                                                  x.data(), x_desc_, y_.data(), param_desc_, gamma_.value.data(),
                                                  beta_.value.data(), running_mean_.data(), running_var_.data(), eps_),
          "cudnnBatchNormalizationForwardInference");
  }
  // The folded ReLU, in both modes as on the CPU: the bias-and-ReLU epilogue without a bias.
  if (relu_) kernels::bias_relu(y_.data(), nullptr, y_.numel(), 1, 1, true, stream());
  return y_;
}

const Tensor& CudaBatchNorm::backward(const Tensor& dy) {
  // The input of the forward this backward follows (a pipeline stage may have run other micro-batches'
  // forwards in between, and traded this one's state back in).
  describe_input(*x_);
  dx_.resize(dy.shape());  // cuDNN computes the input gradient whether or not it is needed
  // Through the folded ReLU first: dy where y > 0. y_ is this micro-batch's (forward_state trades it).
  const Tensor* g = &dy;
  if (relu_) {
    dy_relu_.resize(dy.shape());
    kernels::relu_mask(dy.data(), y_.data(), dy_relu_.data(), dy.numel(), stream());
    g = &dy_relu_;
  }
  const float one = 1.0f, zero = 0.0f;
  // Parameter gradients accumulate (beta 1), as Param::grad requires.
  check(cudnnBatchNormalizationBackward(context().cudnn(), CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &one, x_desc_,
                                        x_->data(), x_desc_, g->data(), x_desc_, dx_.data(), param_desc_,
                                        gamma_.value.data(), gamma_.grad.data(), beta_.grad.data(), eps_,
                                        saved_mean_.data(), saved_inv_std_.data()),
        "cudnnBatchNormalizationBackward");
  return dx_;
}

}  // namespace ringtrain::cuda
