#include "ringtrain/comm/hierarchical_allreduce.hpp"

#include <vector>

#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

namespace {

MPI_Comm node_of(MPI_Comm comm, int ranks_per_node) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm node = MPI_COMM_NULL;
  if (ranks_per_node > 0) {
    check_mpi(MPI_Comm_split(comm, rank / ranks_per_node, rank, &node), "MPI_Comm_split");
  } else {
    check_mpi(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
  }
  return node;
}

// The ranks of this rank's local rank on every node, in rank order.
MPI_Comm across_nodes(MPI_Comm comm, const MpiComm& node) {
  int rank = 0, local_rank = 0;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_rank(node.get(), &local_rank);
  MPI_Comm across = MPI_COMM_NULL;
  check_mpi(MPI_Comm_split(comm, local_rank, rank, &across), "MPI_Comm_split");
  return across;
}

}  // namespace

HierarchicalAllreduce::HierarchicalAllreduce(MPI_Comm comm, int ranks_per_node)
    : node_(MpiComm::adopt(node_of(comm, ranks_per_node))), across_(MpiComm::adopt(across_nodes(comm, node_))) {
  int size = 1;
  MPI_Comm_size(comm, &size);
  MPI_Comm_rank(node_.get(), &layout_.local_rank);
  MPI_Comm_size(node_.get(), &layout_.node_size);
  // One allgather of every rank's node size and local rank: every rank then knows the layout (and refuses an
  // uneven one alike), and the nodes are counted by their local rank 0s.
  const int mine[2] = {layout_.node_size, layout_.local_rank};
  std::vector<int> all(2 * static_cast<size_t>(size));
  check_mpi(MPI_Allgather(mine, 2, MPI_INT, all.data(), 2, MPI_INT, comm), "MPI_Allgather");
  bool even = true;
  layout_.nodes = 0;
  for (int r = 0; r < size; ++r) {
    even = even && all[2 * r] == all[0];
    layout_.nodes += all[2 * r + 1] == 0 ? 1 : 0;
  }
  layout_.ranks_per_node = even ? all[0] : 0;
}

void HierarchicalAllreduce::allreduce(float* data, size_t count, const RingConfig& config, RingBuffers& buffers) {
  if (layout_.ranks_per_node == 0)
    throw Error("the hierarchical allreduce needs the same number of ranks on every node");
  ring_reduce_scatter(node_.get(), data, count, config, buffers);
  const ElementRange slice = ring_owned_chunk(count, layout_.node_size, layout_.local_rank);
  ring_allreduce(across_.get(), data + slice.begin, slice.end - slice.begin, config, buffers);
  ring_allgather(node_.get(), data, count, config, buffers);
}

}  // namespace ringtrain
