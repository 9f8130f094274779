// Parameter initialisation shared by the layers that draw from a normal distribution (GPT-2's N(0, 0.02)).
#pragma once
#include "ringtrain/tensor/rng.hpp"
#include "ringtrain/tensor/tensor.hpp"

namespace ringtrain {

// Fills `t` with N(0, std^2) values. One draw from `rng` seeds the tensor; values 2k and 2k + 1 then come
// from one counter hash of (seed, k) by Box-Muller, so the threads that share the work (GPT-2's 124M values
// take seconds on one) give the same values however many there are.
void fill_normal(Tensor& t, float std, Rng& rng);

}  // namespace ringtrain
