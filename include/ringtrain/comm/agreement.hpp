// Collective checks that turn one rank's problem into the same clear error on every rank, so a job never
// hangs with some ranks waiting in a collective that others will not reach.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ringtrain/comm/communicator.hpp"

namespace ringtrain {

// Collective. `failure` is this rank's error message ("" when it succeeded). If any rank failed, every rank
// throws the same CollectiveError: the lowest failed rank's message, naming the rank unless all failed alike.
void raise_if_any_failed(Communicator& comm, const std::string& failure);
// Collective: runs this rank's `work` (which makes no collective call), then raise_if_any_failed with the
// message of what it threw, if anything.
void run_agreed(Communicator& comm, const std::function<void()>& work);

// Collective. settings: (name, value) pairs every rank must agree on, in the same order on every rank.
// Throws CollectiveError naming the first setting that differs and the ranks' values.
void check_same_on_all_ranks(Communicator& comm, const std::vector<std::pair<std::string, std::string>>& settings);

// Collective: whether any rank says yes.
bool agree_any(Communicator& comm, bool mine);

// Whether any rank was asked to stop, agreed at every step without stalling one: each call starts a
// non-blocking sum of this rank's request and returns the outcome of the previous call's, which a step's
// compute has long completed. Every rank makes the same calls, so every rank gets the same answers, one call
// after the request. A blocking agreement per step costs a short step a tenth of its time on a busy node
// (docs/benchmarks.md). Host communicators.
class StopVote {
 public:
  explicit StopVote(Communicator& comm) : comm_(comm) {}
  ~StopVote();  // waits for the last vote (every rank cast it), unless leaving on an error
  StopVote(const StopVote&) = delete;
  StopVote& operator=(const StopVote&) = delete;
  bool cast(bool mine);

 private:
  Communicator& comm_;
  double ballot_ = 0.0;
  std::unique_ptr<Transfer> counting_;
};

}  // namespace ringtrain
