// Sums a few numbers over the replicas that share one global batch, for layers whose forward needs the
// whole batch's statistics (batchnorm under --sync-batchnorm). The parallel mode provides it over its own
// communicator: a layer never talks to other ranks, it hands its numbers to this.
#pragma once
#include <cstddef>

namespace ringtrain {

class CrossReplicaSum {
 public:
  virtual ~CrossReplicaSum() = default;
  // In place: every replica passes its own values and gets the sum over all of them. Collective: every
  // replica calls it the same number of times in the same order (its batchnorm layers in model order).
  virtual void sum(double* values, size_t count) = 0;
};

}  // namespace ringtrain
