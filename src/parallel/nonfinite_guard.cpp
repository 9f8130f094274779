#include "ringtrain/parallel/nonfinite_guard.hpp"

#include "ringtrain/comm/agreement.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

NonfiniteGuard::NonfiniteGuard(Device device, bool skip, Verdict verdict, std::vector<NamedParam> params,
                               Communicator* group, Communicator* device_group)
    : device_(device), skip_(skip), verdict_(verdict), named_(std::move(params)), group_(group),
      device_group_(device == Device::cpu ? group : device_group),
      check_(make_gradient_check(device, !skip)) {
  for (const NamedParam& p : named_) params_.push_back(p.param);
}

bool NonfiniteGuard::allow_update(int64_t step) {
  check_->look(params_);
  // Any stage's non-finite gradient skips (or stops) every stage's step.
  if (device_group_) device_group_->allreduce_sum(check_->verdict(), 1);
  check_->record(step);
  // The host decides at once where it holds the gradients, and for a parameter-server worker, whose
  // gradient reaches the servers through host memory anyway.
  if (device_ == Device::cpu || verdict_ == Verdict::this_rank) {
    const int64_t skipped_before = skipped_;
    settle();
    return skipped_ == skipped_before;
  }
  return true;
}

void NonfiniteGuard::settle() {
  const GradientCheck::Findings found = check_->take_findings();
  if (found.bad_steps == 0) return;
  if (!skip_) stop(found);
  skipped_ += found.bad_steps;
}

void NonfiniteGuard::stop(const GradientCheck::Findings& found) {
  std::string name = found.first_param >= 0 ? named_[static_cast<size_t>(found.first_param)].name : "";
  if (group_)
    for (const std::string& theirs : allgather_strings(*group_, name))
      if (!theirs.empty()) name = theirs;  // the last stage's: the first to go bad in the backward
  const std::string message = "non-finite gradient (NaN or infinity) in " + name + " at step " +
                              std::to_string(found.first_step) +
                              ": stopping (--skip-nonfinite would skip such steps); lower --lr or check the data";
  if (verdict_ == Verdict::every_rank) throw CollectiveError(message);
  throw NonfiniteStop(message);
}

}  // namespace ringtrain
