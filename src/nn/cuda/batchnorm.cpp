#include "cuda_layers.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain::cuda {

CudaBatchNorm::CudaBatchNorm(BatchNorm& source)
    : CudaLayer(source),
      momentum_(source.momentum()),
      eps_(source.eps()),
      relu_(source.relu_folded()),
      // A model moved to the GPU after its batchnorms were given the sum keeps summing.
      replicas_(source.batch_statistics_sum()) {
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
  if (mode == Mode::train && replicas_) return sync_forward(x);
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
  if (replicas_) return sync_backward(dy);
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

namespace {

// The values per channel at each sample's position: the product of the dimensions after the channels (1 for
// [N, C]). From the shape, not numel / (N * C): a replica may hold no samples.
int64_t spatial_of(const Tensor& x) {
  int64_t spatial = 1;
  for (int i = 2; i < x.rank(); ++i) spatial *= x.dim(i);
  return spatial;
}

}  // namespace

const std::vector<double>& CudaBatchNorm::sum_over_replicas(const double* from, double* to, size_t count,
                                                            const std::vector<double>& extra) {
  host_sums_.resize(count);
  // Queued on the compute stream after the kernels that wrote the sums, then waited for: the sum is a host
  // collective.
  copy_bytes(host_sums_.data(), Device::cpu, from, Device::cuda, count * sizeof(double));
  host_sums_.insert(host_sums_.end(), extra.begin(), extra.end());
  replicas_->sum(host_sums_.data(), host_sums_.size());
  // Queued, not waited for: a copy from pageable memory has taken the values when it returns.
  copy_bytes(to, Device::cuda, host_sums_.data(), Device::cpu, count * sizeof(double));
  return host_sums_;
}

// The CPU layer's BatchNorm::batch_moments with a CrossReplicaSum, on the device: the replicas must shift
// alike, so first the global mean from plain sums, then every replica's moments about it.
const Tensor& CudaBatchNorm::sync_forward(const Tensor& x) {
  const int64_t n = x.dim(0), spatial = spatial_of(x);
  const size_t c = static_cast<size_t>(channels_);
  x_ = &x;
  y_.resize(x.shape());
  auto* scratch = static_cast<double*>(
      scratch_.reserve(kernels::batchnorm_scratch_doubles(n, channels_, spatial) * sizeof(double)));
  auto* sums = static_cast<double*>(sums_.reserve(2 * c * sizeof(double)));
  auto* totals = static_cast<double*>(totals_.reserve(c * sizeof(double)));

  // Pass 1: the sums of x (the squares beside them go unused) and this replica's value count, over the
  // replicas. The global sums of x give the second pass its shift (float(total / count)) and the mean.
  kernels::batchnorm_moments(x.data(), n, channels_, spatial, nullptr, 0.0, scratch, sums, stream());
  const double count = sum_over_replicas(sums, totals, c, {static_cast<double>(n * spatial)})[c];

  // Pass 2: the sums of x - shift and of its square, over the replicas.
  kernels::batchnorm_moments(x.data(), n, channels_, spatial, totals, count, scratch, sums, stream());
  sum_over_replicas(sums, sums, 2 * c);
  // Where the CPU layer checks, after both sums: every replica sees the same global count and stops alike.
  if (count < 2)
    throw Error("batchnorm needs more than one value per channel in training (batch of 1 without spatial dims)");

  // Sized here, not once: a pipeline stage trades these with each micro-batch's stash (forward_state).
  saved_mean_.resize({channels_});
  saved_inv_std_.resize({channels_});
  kernels::batchnorm_statistics(totals, sums, count, channels_, eps_, momentum_, saved_mean_.data(),
                                saved_inv_std_.data(), running_mean_.data(), running_var_.data(), stream());
  kernels::batchnorm_normalize(x.data(), saved_mean_.data(), saved_inv_std_.data(), gamma_.value.data(),
                               beta_.value.data(), y_.data(), n, channels_, spatial, relu_, stream());
  batch_count_ = static_cast<uint64_t>(count);
  return y_;
}

// The CPU layer's backward with a CrossReplicaSum: the gradient sums of this replica's samples go into gamma's
// and beta's gradients (the gradient averager sums the replicas'), and the sums over every replica into dx.
const Tensor& CudaBatchNorm::sync_backward(const Tensor& dy) {
  // x_, y_, the saved statistics and batch_count_ are those of the forward this backward follows (a pipeline
  // stage trades them per micro-batch); xhat is recomputed from them rather than kept.
  const Tensor& x = *x_;
  const int64_t n = dy.dim(0), spatial = spatial_of(dy);
  const size_t c = static_cast<size_t>(channels_);
  auto* scratch = static_cast<double*>(
      scratch_.reserve(kernels::batchnorm_scratch_doubles(n, channels_, spatial) * sizeof(double)));
  auto* sums = static_cast<double*>(sums_.reserve(2 * c * sizeof(double)));
  const float* y = relu_ ? y_.data() : nullptr;  // the folded ReLU's output masks dy
  kernels::batchnorm_gradient_sums(x.data(), dy.data(), y, saved_mean_.data(), saved_inv_std_.data(), n, channels_,
                                   spatial, scratch, sums, stream());
  kernels::batchnorm_parameter_gradients(sums, channels_, gamma_.grad.data(), beta_.grad.data(), stream());
  // As on the CPU: no input gradient, no sum (every replica's model skips the same layers).
  if (!input_grad_needed_) return dx_;
  sum_over_replicas(sums, sums, 2 * c);
  dx_.resize(dy.shape());
  kernels::batchnorm_input_gradient(x.data(), dy.data(), y, saved_mean_.data(), saved_inv_std_.data(),
                                    gamma_.value.data(), sums, static_cast<float>(batch_count_), dx_.data(), n,
                                    channels_, spatial, stream());
  return dx_;
}

}  // namespace ringtrain::cuda
