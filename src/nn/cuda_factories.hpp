// The CUDA engine's entry points for the device-neutral nn code (Model::to, make_loss, make_optimizer,
// make_gradient_check, make_gradient_clip). Built from src/nn/cuda with CUDA, from cuda_disabled.cpp without; no CUDA
// headers here.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "ringtrain/nn/gradient_check.hpp"
#include "ringtrain/nn/gradient_clip.hpp"
#include "ringtrain/nn/layer.hpp"
#include "ringtrain/nn/loss.hpp"
#include "ringtrain/nn/optimizer.hpp"

namespace ringtrain::cuda {

std::unique_ptr<Layer> make_cuda_layer(Layer& source);
std::unique_ptr<Loss> make_cuda_loss(const TargetSpace& targets, float label_smoothing);
std::unique_ptr<Optimizer> make_cuda_optimizer(const OptimizerConfig& config);
std::unique_ptr<GradientCheck> make_cuda_gradient_check(bool keep_skipping);
std::unique_ptr<GradientClip> make_cuda_gradient_clip();

}  // namespace ringtrain::cuda
