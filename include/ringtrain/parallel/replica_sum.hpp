// The sum a sync batchnorm asks of the replicas (nn/cross_replica_sum.hpp), over a communicator of its own
// split off the replicas' one: its calls come from the training thread in the middle of forward and
// backward, and must never interleave with the gradient engine's on its background thread.
#pragma once
#include <memory>

#include "ringtrain/comm/communicator.hpp"
#include "ringtrain/nn/cross_replica_sum.hpp"

namespace ringtrain {

class ReplicaSum final : public CrossReplicaSum {
 public:
  // Collective over `replicas` (a host communicator: the statistics are a few host numbers per layer).
  explicit ReplicaSum(const Communicator& replicas) : comm_(replicas.split_off()) {}
  void sum(double* values, size_t count) override { comm_->allreduce_sum(values, count); }

 private:
  std::unique_ptr<Communicator> comm_;
};

}  // namespace ringtrain
