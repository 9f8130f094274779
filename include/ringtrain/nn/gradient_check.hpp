// The look for a NaN or an infinity in a step's final gradients (after averaging). The host's look answers
// at once. A GPU's is queued on the compute stream and its verdicts stay on the device: the fused optimizer
// reads skip_flag() and skips the update, and the host learns what was found only when it asks
// (take_findings), where it reads the scores anyway. So the host never waits for the GPU inside a step.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "ringtrain/nn/layer.hpp"

namespace ringtrain {

class GradientCheck {
 public:
  // What the steps recorded since the last take_findings were found to hold.
  struct Findings {
    int64_t bad_steps = 0;    // steps whose verdict was bad
    int64_t first_step = -1;  // the first of them
    int first_param = -1;     // the first parameter this rank found bad in it (an index into look's params);
                              // -1 when only other ranks' verdicts made it bad (another pipeline stage's)
  };

  virtual ~GradientCheck() = default;
  // Looks at the gradients of `params` (the same list every step): verdict() is then 1 when one holds a NaN
  // or an infinity, else 0.
  virtual void look(const std::vector<Param*>& params) = 0;
  // The verdict, on the check's device, where ranks that hold other parts of the model may add theirs (an
  // allreduce) before it is recorded.
  virtual float* verdict() = 0;
  // Records the verdict (any sum above 0 is bad) as step `step`'s.
  virtual void record(int64_t step) = 0;
  // On a GPU: the device float the optimizer's kernels read first, non-zero to skip the update (this step's
  // verdict, or with keep_skipping any since take_findings); null on the host, whose optimizer is simply not
  // called.
  virtual const float* skip_flag() const = 0;
  // What was found since the last call (on a GPU: reads the device, waiting for the steps queued).
  virtual Findings take_findings() = 0;
};

// `keep_skipping`: once a bad step is recorded, skip every update until take_findings (without
// --skip-nonfinite the job stops when the host learns of it, so the model stays as that step found it).
std::unique_ptr<GradientCheck> make_gradient_check(Device device, bool keep_skipping);

}  // namespace ringtrain
