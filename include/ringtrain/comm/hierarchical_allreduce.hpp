// Node-aware allreduce, as Horovod's hierarchical allreduce and NCCL's tree-of-rings: inside each node a
// ring reduce-scatter over shared memory leaves local rank l with slice l of the node's sum; the ranks of
// local rank l on every node then allreduce that slice across nodes (a ring over the network, each carrying
// 1/L of the buffer, all L at once); a ring allgather inside the node hands the slices round. With N nodes
// of L ranks (n = N x L), each node's link carries 2(N-1)/N of the buffer instead of the flat ring's
// 2(n-1)/n: 1.5x less on 2 nodes of 2, up to 2x with many ranks a node; and a segment crosses the network in
// 2(N-1) steps instead of 2(n-1), which is what pays for small messages (docs/scaling.md, two levels).
#pragma once
#include <mpi.h>

#include <cstddef>

#include "ringtrain/comm/mpi_communicator.hpp"
#include "ringtrain/comm/ring_allreduce.hpp"

namespace ringtrain {

// How a communicator's ranks sit on nodes.
struct NodeLayout {
  int nodes = 1;
  int ranks_per_node = 1;  // 0 when nodes hold different numbers of ranks
  int node_size = 1;       // this rank's node's
  int local_rank = 0;
};

class HierarchicalAllreduce {
 public:
  // Collective over `comm`. ranks_per_node 0: the nodes are the ranks that share memory (MPI_COMM_TYPE_SHARED);
  // n > 0: ranks 0..n-1 are node 0, n..2n-1 node 1, ... (tests and studies emulating nodes on one host).
  HierarchicalAllreduce(MPI_Comm comm, int ranks_per_node);
  const NodeLayout& layout() const { return layout_; }
  // Needs the same number of ranks on every node (layout().ranks_per_node > 0): the slices of the node
  // reduce-scatter must pair up across nodes. The wire format applies across nodes only: inside a node the
  // bytes move through memory, where halving them saves little and costs the conversions.
  void allreduce(float* data, size_t count, const RingConfig& config, RingBuffers& buffers);

 private:
  MpiComm node_, across_;
  NodeLayout layout_;
};

}  // namespace ringtrain
