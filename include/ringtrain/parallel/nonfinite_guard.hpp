// What a mode does about a NaN or an infinity in a step's final gradients (nn/gradient_check.hpp finds
// them): the job stops, naming the step and the parameter, or with --skip-nonfinite the step's update is
// skipped and counted. On the host the verdict acts at once. On a GPU the update is skipped on the device
// and the host acts when it next reads the scores (settle, from ParallelMode::take_score): the error then
// names the first bad step, and no update has been applied since it.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "ringtrain/comm/communicator.hpp"
#include "ringtrain/nn/gradient_check.hpp"
#include "ringtrain/nn/model.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

// The non-finite stop found by one rank alone (Verdict::this_rank): its mode decides how the job ends.
class NonfiniteStop : public Error {
 public:
  using Error::Error;
};

class NonfiniteGuard {
 public:
  // Who reaches a verdict: every rank alike (they hold the same gradients, or agree over `group`), or this
  // rank alone (a parameter-server worker, on its own gradient): the error is then a CollectiveError, else
  // a NonfiniteStop, which the mode turns into a stop of every rank.
  enum class Verdict { every_rank, this_rank };
  // `params`: the gradients to watch, named for the error. `group`: ranks that hold other parts of the model
  // and must decide alike (a pipeline's stages), over MPI, and `device_group`, the same ranks over the
  // device's communicator (NCCL) when the gradients are on a GPU; null when every rank holds all of them.
  NonfiniteGuard(Device device, bool skip, Verdict verdict, std::vector<NamedParam> params, Communicator* group,
                 Communicator* device_group);

  // After step `step`'s gradients are final: whether to call the optimizer (on a GPU always: it reads the
  // verdict itself, skip_flag()). Where the host decides at once (host gradients, and this_rank verdicts),
  // throws for a bad step unless skipping.
  bool allow_update(int64_t step);
  // Acts on what the GPU found since the last call: throws for a bad step unless skipping, else counts.
  // Collective over `group` when a step was bad. Nothing is left to do where the host decided at once.
  void settle();
  int64_t skipped() const { return skipped_; }
  const float* skip_flag() const { return check_->skip_flag(); }

 private:
  [[noreturn]] void stop(const GradientCheck::Findings& findings);

  Device device_;
  bool skip_;
  Verdict verdict_;
  std::vector<NamedParam> named_;
  std::vector<Param*> params_;
  Communicator* group_;
  Communicator* device_group_;
  std::unique_ptr<GradientCheck> check_;
  int64_t skipped_ = 0;
};

}  // namespace ringtrain
