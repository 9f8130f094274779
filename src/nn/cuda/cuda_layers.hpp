// Every CUDA layer, one per CPU layer kind (see cuda_layer.hpp for how they are made).
#pragma once
#include "cuda_layer.hpp"
#include "kernels/kernels.hpp"
#include "ringtrain/nn/activation.hpp"
#include "ringtrain/nn/attention.hpp"
#include "ringtrain/nn/batchnorm.hpp"
#include "ringtrain/nn/conv2d.hpp"
#include "ringtrain/nn/dropout.hpp"
#include "ringtrain/nn/embedding.hpp"
#include "ringtrain/nn/layernorm.hpp"
#include "ringtrain/nn/linear.hpp"
#include "ringtrain/nn/per_batch_algorithms.hpp"
#include "ringtrain/nn/pool2d.hpp"
#include "ringtrain/nn/residual.hpp"
#include "ringtrain/nn/transformer_block.hpp"

namespace ringtrain::cuda {

// y = x W^T + b over rows of a matrix, and its backward: the GEMMs of every CUDA linear map (CudaLinear,
// attention's projections). cuBLAS GEMMs; bias and a folded ReLU in one epilogue kernel. Under bf16 the GEMMs
// read bf16 copies of x, W and dy (made each pass from the fp32 values; backward converts x again rather than
// keep forward's copy, so a pipeline stage can interleave micro-batches) and write fp32.
class Dense {
 public:
  // y [rows, out] = x [rows, in] W^T (+ bias unless null), clamped at 0 when relu; W is [out, in].
  void forward(const float* x, int64_t rows, const Param& weight, const Param* bias, bool relu, float* y);
  // weight.grad += dy^T x, bias->grad += dy's column sums (unless null), and dx [rows, in] = dy W unless dx is
  // null. Reads forward's bf16 copy of W (weights change only in the optimizer step).
  void backward(const float* dy, const float* x, int64_t rows, Param& weight, Param* bias, float* dx);

 private:
  DeviceTensor ones_;
  DeviceBuffer x16_, w16_, dy16_;
};

// A linear layer over its input's rows: samples (the input flattened), or with per_token the tokens of
// [T, C] inputs. A tied layer's weight is its embedding twin's token table (Layer::tie, relinked by Model::to),
// whose gradient its backward adds into.
class CudaLinear final : public CudaLayer {
 public:
  explicit CudaLinear(Linear& source);
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  ForwardState forward_state() override { return {{&y_}}; }
  std::vector<Param*> params() override;
  Shape tied_weight_shape() const override { return tied_flag_ ? Shape{out_, in_} : Shape{}; }
  void tie(Param* source) override { tied_ = source; }

 private:
  Param& weight() { return tied_flag_ ? *tied_ : weight_; }

  int64_t in_, out_;
  bool has_bias_, relu_, per_token_, tied_flag_;
  Param weight_, bias_;
  Param* tied_ = nullptr;
  const Tensor* x_ = nullptr;
  Dense dense_;
  DeviceTensor y_, dx_, dy_relu_;
};

// cuDNN convolution; algorithms found by cudnnFind* (measured, like torch.backends.cudnn.benchmark) once
// per batch size and direction, each run with the math type it was measured with. fp32 keeps FMA-only
// kernels; tf32 and bf16 let cuDNN use TF32 tensor cores.
class CudaConv2d final : public CudaLayer {
 public:
  explicit CudaConv2d(Conv2d& source);
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  ForwardState forward_state() override { return {{&y_}}; }
  std::vector<Param*> params() override;

 private:
  // An algorithm as measured: the math type it ran with and the workspace it needs with that math type.
  template <class Algo>
  struct Choice {
    Algo algo;
    cudnnMathType_t math;
    size_t workspace;
  };
  struct BackwardChoices {
    Choice<cudnnConvolutionBwdDataAlgo_t> data;
    Choice<cudnnConvolutionBwdFilterAlgo_t> filter;
  };

  void describe_batch(int64_t batch);
  template <class Perf, class Find, class WorkspaceSize>
  Choice<decltype(Perf::algo)> search(Find find, WorkspaceSize workspace_size, const char* what);
  Choice<cudnnConvolutionFwdAlgo_t> search_forward();
  BackwardChoices search_backward();
  void use_math(cudnnMathType_t math);

  ConvGeometry g_;
  bool has_bias_, relu_;
  Precision precision_;  // the context's when this layer was made
  Param weight_, bias_;
  const Tensor* x_ = nullptr;
  DeviceTensor y_, dx_, dy_relu_;
  TensorDescriptor x_desc_, y_desc_, bias_desc_;
  FilterDescriptor w_desc_;
  ConvolutionDescriptor conv_desc_;
  int64_t described_batch_ = -1;  // the batch size x_desc_ and y_desc_ describe
  PerBatchAlgorithms<Choice<cudnnConvolutionFwdAlgo_t>, BackwardChoices> algorithms_;
};

// cuDNN pooling with the CPU layer's padding: max pooling ignores padded positions (as the CPU's -infinity
// does), average pooling divides by the whole window, padding included (count_include_pad).
class CudaPool2d final : public CudaLayer {
 public:
  explicit CudaPool2d(Pool2d& source);
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  ForwardState forward_state() override { return {{&y_}}; }

 private:
  void describe_input(const Tensor& x);

  int64_t kernel_, stride_, pad_;
  int64_t c_ = 0, h_ = 0, w_ = 0, oh_ = 0, ow_ = 0;  // of the last input
  PoolingDescriptor pool_desc_;
  TensorDescriptor x_desc_, y_desc_;
  int64_t batch_ = -1;
  const Tensor* x_ = nullptr;
  DeviceTensor y_, dx_;
};

// Our kernels (kernels/pooling.cu): a warp sums each plane; backward spreads dy / (H * W) over it.
class CudaGlobalAvgPool final : public CudaLayer {
 public:
  explicit CudaGlobalAvgPool(GlobalAvgPool& source) : CudaLayer(source) {}
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  ForwardState forward_state() override { return {{&y_}}; }

 private:
  Shape in_shape_;  // of the last input; backward takes its batch size from dy
  DeviceTensor y_, dx_;
};

class CudaActivation final : public CudaLayer {
 public:
  explicit CudaActivation(Activation& source);
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  // The output is the next layer's input, which its backward reads; GELU's backward reads its input too.
  ForwardState forward_state() override {
    return kind_ == kernels::Activation::gelu ? ForwardState{{&x_, &y_}} : ForwardState{{&y_}};
  }

 private:
  kernels::Activation kind_;
  float param_;  // LeakyReLU's slope, ELU's alpha
  bool folded_;  // the layer before applies this ReLU: pass through
  DeviceTensor x_, y_, dx_;  // x_: GELU's input
};

class CudaDropout final : public CudaLayer {
 public:
  explicit CudaDropout(Dropout& source);
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  ForwardState forward_state() override { return {{&y_}, {}, {&forward_call_}}; }
  std::vector<uint64_t*> random_streams() override { return {&calls_}; }

 private:
  float p_;
  uint64_t seed_, calls_;
  uint64_t forward_call_ = 0;  // the mask stream of the forward that backward follows
  Mode last_mode_ = Mode::eval;
  DeviceTensor y_, dx_;
};

class CudaFlatten final : public CudaLayer {
 public:
  explicit CudaFlatten(Flatten& source) : CudaLayer(source) {}
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  ForwardState forward_state() override { return {{&y_}}; }

 private:
  Shape in_shape_;
  DeviceTensor y_, dx_;
};

// cuDNN spatial batch normalisation: the same statistics as the CPU layer (biased variance to normalise,
// unbiased in the running estimate, PyTorch's momentum). A ReLU folded into the source (BatchNorm::fold_relu)
// is applied to y in place after cuDNN's forward, and backward hands cuDNN dy masked where y is 0; the
// CudaActivation after it passes values through, as the CPU's ReLU does.
//
// With a CrossReplicaSum (sync batchnorm, share_batch_statistics) training runs our kernels instead
// (kernels/batchnorm.cu), since cuDNN computes its statistics over this process's batch alone: the CPU
// layer's two passes of per-channel sums, each copied to the host, summed over the replicas and copied back,
// then the global mean and variance normalise and update the running statistics; backward sums dy and
// dy * xhat, adds the local sums to the parameter gradients and the replicas' sums into dx. Evaluation
// normalises with the running statistics either way (cuDNN's inference).
class CudaBatchNorm final : public CudaLayer {
 public:
  explicit CudaBatchNorm(BatchNorm& source);
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  // batch_count_: the values behind the statistics, every replica's (the sync backward divides by it).
  ForwardState forward_state() override { return {{&y_, &saved_mean_, &saved_inv_std_}, {}, {&batch_count_}}; }
  std::vector<Param*> params() override { return {&gamma_, &beta_}; }
  std::vector<NamedTensor> buffers() override { return {{"running_mean", &running_mean_}, {"running_var", &running_var_}}; }
  void share_batch_statistics(CrossReplicaSum* sum) override { replicas_ = sum; }

 private:
  void describe_input(const Tensor& x);
  const Tensor& sync_forward(const Tensor& x);
  const Tensor& sync_backward(const Tensor& dy);
  // Copies `count` device doubles at `from` to the host (a stream sync), appends `extra` values, sums them all
  // over the replicas, and queues the first `count` sums' copy to `to` (may be `from`). Returns the host copy,
  // extras included.
  const std::vector<double>& sum_over_replicas(const double* from, double* to, size_t count,
                                               const std::vector<double>& extra = {});

  float momentum_, eps_;
  bool relu_;  // the source's folded ReLU
  CrossReplicaSum* replicas_;  // null: statistics over this process's batch (cuDNN)
  int64_t channels_;
  Param gamma_, beta_;
  Tensor running_mean_, running_var_;
  DeviceTensor saved_mean_, saved_inv_std_;  // the batch's mean and 1/std, for backward
  uint64_t batch_count_ = 0;  // values per channel behind them, all replicas' (sync batchnorm)
  TensorDescriptor x_desc_, param_desc_;
  int64_t described_batch_ = -1, spatial_ = 1;  // the input x_desc_ describes
  const Tensor* x_ = nullptr;
  DeviceTensor y_, dx_, dy_relu_;  // dy_relu_: dy masked by the folded ReLU, cuDNN's input in backward
  // Sync batchnorm's: the reduction's scratch, the per-channel sums (2 * channels doubles), the first pass's
  // global sums of x (channels doubles), and the host copy that goes through the CrossReplicaSum. Used within
  // one forward or backward call only: nothing here needs to be in forward_state().
  DeviceBuffer scratch_, sums_, totals_;
  std::vector<double> host_sums_;
};

// A residual block on the GPU: the CPU block's own forward and backward (Residual), over its parts made CUDA
// layers by make_cuda_layer, with its tensors on the device and its two element-wise steps as kernels on the
// compute stream. Not a CudaLayer: its kind, spec and flops are the CPU block's, computed from its parts.
class CudaResidual final : public Residual {
 public:
  explicit CudaResidual(Residual& source);

 private:
  void add(const Tensor& a, const Tensor& b, Tensor& out, bool relu) override;
  void relu_gradient(const Tensor& dy, const Tensor& y, Tensor& out) override;
};

// The token and position tables (kernels/transformer.cu): a gather forward, a scatter-add backward. The ids are
// checked on the device, and forward reads back the first bad one's row (a 4-byte copy that waits for the
// GPU, once per batch at the model's first layer) to stop with the CPU layer's error line.
class CudaEmbedding final : public CudaLayer {
 public:
  explicit CudaEmbedding(Embedding& source);
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  // The ids as forward read them (backward scatters into their rows), and the output.
  ForwardState forward_state() override { return {{&y_, &ids_}}; }
  std::vector<Param*> params() override { return {&token_, &position_}; }
  Param* tied_weight_source() override { return &token_; }

 private:
  int64_t vocabulary_, channels_, context_;
  Param token_, position_;
  DeviceTensor y_, ids_, no_input_gradient_;  // ids_: [batch, T] token ids as floats
  DeviceBuffer first_bad_;
};

// One warp per row for the statistics and the input gradient; the parameter gradients as column sums in a
// fixed order (kernels/transformer.cu).
class CudaLayerNorm final : public CudaLayer {
 public:
  explicit CudaLayerNorm(LayerNorm& source);
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  ForwardState forward_state() override { return {{&y_, &mean_, &inv_std_}}; }
  std::vector<Param*> params() override { return {&weight_, &bias_}; }

 private:
  float eps_;
  int64_t channels_;
  Param weight_, bias_;
  const Tensor* x_ = nullptr;
  DeviceTensor y_, mean_, inv_std_, dx_;
  DeviceBuffer scratch_;
};

// Causal self-attention: the projections are Dense GEMMs; per sample, strided-batched cuBLAS GEMMs over the
// heads read q, k and v in place in the qkv rows (no copies into [B, H, T, D]) for q k^T and att v and their
// gradients; the mask, softmax and its backward are our kernels; the attention dropout is the Dropout
// kernel over the probabilities (the CPU's counters), drawn again in backward as the CPU does. The full T x T
// products are computed and masked (the CPU skips blocks above the diagonal). Not cuDNN's fused attention:
// every intermediate here can be compared with the CPU's.
class CudaAttention final : public CudaLayer {
 public:
  explicit CudaAttention(Attention& source);
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  ForwardState forward_state() override { return {{&qkv_, &att_, &heads_out_, &y_}, {}, {&forward_call_}}; }
  std::vector<Param*> params() override { return {&qkv_weight_, &qkv_bias_, &proj_weight_, &proj_bias_}; }
  std::vector<uint64_t*> random_streams() override { return {&calls_}; }

 private:
  // Room for a [batch, H, T, T] tensor in `scratch`: a local buffer of forward or backward, whose block the
  // caching allocator hands to the next layer's (one for all layers, not one each).
  float* scratch_like_att(DeviceBuffer& scratch) const;
  // att_ through the dropout mask of forward_call_ into `scratch` (or att_ itself when nothing drops).
  const float* dropped_probabilities(DeviceBuffer& scratch) const;

  int64_t heads_, time_, channels_, head_dim_;
  float p_;
  uint64_t seed_, calls_;
  uint64_t forward_call_ = 0;  // the mask stream of the forward that backward follows
  bool dropped_ = false;       // whether that forward dropped (training, p > 0)
  Param qkv_weight_, qkv_bias_, proj_weight_, proj_bias_;
  Dense qkv_map_, proj_map_;
  const Tensor* x_ = nullptr;
  DeviceTensor qkv_;        // [batch, T, 3C]
  DeviceTensor att_;        // [batch, H, T, T] probabilities before dropout; 0 above the diagonal
  DeviceTensor heads_out_;  // [batch, T, C]: att v, heads side by side
  DeviceTensor y_, dx_, dheads_, dqkv_;
};

// A GPT block on the GPU: the CPU block's own forward and backward (TransformerBlock) over its parts made CUDA
// layers by make_cuda_layer, with its tensors on the device and its residual sums as a kernel. Not a
// CudaLayer, as CudaResidual.
class CudaTransformerBlock final : public TransformerBlock {
 public:
  explicit CudaTransformerBlock(TransformerBlock& source);

 private:
  void add(const Tensor& a, const Tensor& b, Tensor& out) override;
};

}  // namespace ringtrain::cuda
