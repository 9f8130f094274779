// The embedding on the GPU (CudaEmbedding, cuda_layers.hpp).
#include <climits>

#include "cuda_layers.hpp"

namespace ringtrain::cuda {

CudaEmbedding::CudaEmbedding(Embedding& source)
    : CudaLayer(source),
      vocabulary_(source.vocabulary()),
      channels_(source.channels()),
      context_(source.context()),
      token_(to_device(*source.params()[0])),
      position_(to_device(*source.params()[1])),
      first_bad_(sizeof(unsigned)) {}

const Tensor& CudaEmbedding::forward(const Tensor& x, Mode) {
  const int64_t batch = x.dim(0), t_len = x.numel() / batch;
  check_window_length(t_len, context_);
  ids_.resize({batch, t_len});
  y_.resize({batch, t_len, channels_});
  auto* first_bad = static_cast<unsigned*>(first_bad_.get());
  check(cudaMemsetAsync(first_bad, 0xff, sizeof(unsigned), stream()), "cudaMemsetAsync");  // UINT_MAX: none
  kernels::embedding_forward(x.data(), token_.value.data(), position_.value.data(), ids_.data(), y_.data(),
                             batch * t_len, t_len, channels_, vocabulary_, first_bad, stream());
  // The CPU layer's check, with its message: the ids are only on the device, so this waits for it.
  unsigned bad = UINT_MAX;
  copy_bytes(&bad, Device::cpu, first_bad, Device::cuda, sizeof bad);
  if (bad != UINT_MAX) {
    float id = 0.0f;
    copy_bytes(&id, Device::cpu, ids_.data() + bad, Device::cuda, sizeof id);
    throw_token_outside_vocabulary(id, static_cast<int64_t>(bad) % t_len, vocabulary_);
  }
  return y_;
}

const Tensor& CudaEmbedding::backward(const Tensor& dy) {
  const int64_t t_len = dy.dim(1), batch = dy.numel() / (t_len * channels_);
  kernels::embedding_backward(dy.data(), ids_.data(), token_.grad.data(), position_.grad.data(), batch, t_len,
                              channels_, stream());
  return no_input_gradient_;
}

}  // namespace ringtrain::cuda
