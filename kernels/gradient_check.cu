// The non-finite check's bookkeeping on the device (kernels.hpp NonfiniteStatus): a handful of scalars per
// step, one thread each, so that no verdict has to cross to the host inside a step.
#include "kernels/kernels.hpp"
#include "kernels/launch.cuh"

namespace ringtrain::kernels {

namespace {

// `count` is the number of parameter tensors (tens), so one thread scans them in order: the first bad one
// is the one the error names.
__global__ void summarize_nonfinite_kernel(const int* flags, int count, NonfiniteStatus* s) {
  int first = -1;
  for (int i = 0; i < count && first < 0; ++i)
    if (flags[i] != 0) first = i;
  s->first_now = first;
  s->verdict = first >= 0 ? 1.0f : 0.0f;
}

__global__ void record_nonfinite_kernel(NonfiniteStatus* s, long long step, bool keep_skipping) {
  const bool bad = s->verdict > 0.0f;
  if (bad) {
    if (s->bad_steps == 0) s->first_step = step, s->first_param = s->first_now;
    ++s->bad_steps;
  }
  s->skip = bad || (keep_skipping && s->bad_steps > 0) ? 1.0f : 0.0f;
}

}  // namespace

void summarize_nonfinite(const int* flags, int count, NonfiniteStatus* status, cudaStream_t stream) {
  summarize_nonfinite_kernel<<<1, 1, 0, stream>>>(flags, count, status);
  check_launch("summarize_nonfinite");
}

void record_nonfinite(NonfiniteStatus* status, long long step, bool keep_skipping, cudaStream_t stream) {
  record_nonfinite_kernel<<<1, 1, 0, stream>>>(status, step, keep_skipping);
  check_launch("record_nonfinite");
}

}  // namespace ringtrain::kernels
