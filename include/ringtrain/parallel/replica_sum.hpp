// The sum a sync batchnorm asks of the replicas (nn/cross_replica_sum.hpp), over a communicator of its own
// split off the replicas' one: its calls come from the training thread in the middle of forward and
// backward, and must never interleave with the gradient engine's on its background thread.
#pragma once
#include <memory>
#include <stdexcept>

#include "ringtrain/comm/communicator.hpp"
#include "ringtrain/nn/cross_replica_sum.hpp"
#include "ringtrain/nn/model.hpp"

namespace ringtrain {

class ReplicaSum final : public CrossReplicaSum {
 public:
  // Collective over `replicas`, a host communicator: the statistics are a few host numbers per layer.
  explicit ReplicaSum(const Communicator& replicas) : comm_(replicas.split_off()) {
    if (comm_->device() != Device::cpu) throw std::logic_error("ReplicaSum sums host values: give it a host communicator");
  }
  void sum(double* values, size_t count) override { comm_->allreduce_sum(values, count); }

 private:
  std::unique_ptr<Communicator> comm_;
};

// A ReplicaSum shared with every layer of a model for exactly as long as it lives: no batchnorm is left
// holding the address of a sum that is gone, whether its mode ends or the mode's constructor throws after
// sharing it. While shared, a training forward and backward of the model are collective over the replicas.
class SharedBatchStatistics {
 public:
  SharedBatchStatistics(Model& model, const Communicator& replicas) : model_(model), sum_(replicas) {
    model_.share_batch_statistics(&sum_);
  }
  ~SharedBatchStatistics() { model_.share_batch_statistics(nullptr); }
  SharedBatchStatistics(const SharedBatchStatistics&) = delete;
  SharedBatchStatistics& operator=(const SharedBatchStatistics&) = delete;

 private:
  Model& model_;
  ReplicaSum sum_;
};

}  // namespace ringtrain
