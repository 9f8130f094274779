// The CUDA engine's nn entry points for builds configured with -DRINGTRAIN_CUDA=OFF.
#include "cuda_factories.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain::cuda {

namespace {
[[noreturn]] void no_cuda() { throw Error("no CUDA device: ringtrain was built with RINGTRAIN_CUDA=OFF"); }
}  // namespace

std::unique_ptr<Layer> make_cuda_layer(Layer&) { no_cuda(); }
std::unique_ptr<Loss> make_cuda_loss(const TargetSpace&, float) { no_cuda(); }
std::unique_ptr<Optimizer> make_cuda_optimizer(const OptimizerConfig&) { no_cuda(); }
std::unique_ptr<GradientCheck> make_cuda_gradient_check(bool) { no_cuda(); }
std::unique_ptr<GradientClip> make_cuda_gradient_clip() { no_cuda(); }

}  // namespace ringtrain::cuda
