#include "ringtrain/comm/mpi_communicator.hpp"

#include <algorithm>
#include <chrono>
#include <climits>

#include "ringtrain/comm/backoff.hpp"
#include "ringtrain/comm/hierarchical_allreduce.hpp"
#include "ringtrain/comm/ring_allreduce.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

namespace {

int as_int(size_t n, const char* what) {
  if (n > static_cast<size_t>(INT_MAX)) throw Error(std::string(what) + ": message of " + std::to_string(n) +
                                                    " elements is larger than MPI's int count");
  return static_cast<int>(n);
}

// An MPI_Isend/MPI_Irecv in flight.
class MpiTransfer final : public Transfer {
 public:
  enum Kind { send, receive, collective };
  MpiTransfer(MPI_Request request, Kind kind) : request_(request), kind_(kind) {}
  ~MpiTransfer() override {
    if (request_ == MPI_REQUEST_NULL || kind_ == collective) return;  // a collective may be neither freed nor cancelled
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    if (kind_ == receive) MPI_Cancel(&request_);  // a receive that will never be read: withdraw it
    MPI_Request_free(&request_);                  // a send completes on its own
  }
  MpiTransfer(const MpiTransfer&) = delete;
  MpiTransfer& operator=(const MpiTransfer&) = delete;
  void wait() override {
    if (request_ != MPI_REQUEST_NULL) wait_requests(&request_, 1, std::chrono::microseconds(20), &status_);
  }
  bool test() override {
    if (request_ == MPI_REQUEST_NULL) return true;  // completion sets it to MPI_REQUEST_NULL
    int done = 0;
    check_mpi(MPI_Test(&request_, &done, &status_), "MPI_Test");
    return done != 0;
  }
  int tag() const override { return kind_ == receive ? status_.MPI_TAG : -1; }

 private:
  MPI_Request request_;
  Kind kind_;
  MPI_Status status_{};
};

}  // namespace

void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(rc, text, &length);
  throw Error(std::string(what) + " failed: " + std::string(text, length));
}

void wait_requests(MPI_Request* requests, int count, std::chrono::microseconds spin, MPI_Status* statuses) {
  Backoff backoff(spin);
  for (;;) {
    int done = 0;
    check_mpi(MPI_Testall(count, requests, &done, statuses), "MPI_Testall");
    if (done) return;
    backoff.idle();
  }
}

MpiComm::MpiComm(MPI_Comm parent) { check_mpi(MPI_Comm_dup(parent, &comm_), "MPI_Comm_dup"); }

MpiComm MpiComm::adopt(MPI_Comm comm) {
  MpiComm owned;
  owned.comm_ = comm;
  return owned;
}

MpiComm::~MpiComm() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

MpiCommunicator::MpiCommunicator(MPI_Comm parent, MpiCommunicatorConfig config)
    : comm_(parent), config_(config), algorithm_(config.allreduce) {
  MPI_Comm_rank(comm_.get(), &rank_);
  MPI_Comm_size(comm_.get(), &size_);
  // Every rank learns the node layout whatever it asked for: ranks given different --allreduce values still
  // meet in the same collectives, and reach the settings check that names the difference. The errors below
  // are every rank's (the layout is agreed; the flags are the job's), so CollectiveError: one line.
  hierarchical_ = std::make_unique<HierarchicalAllreduce>(comm_.get(), config_.ranks_per_node);
  const NodeLayout& nodes = hierarchical_->layout();
  if (config_.compress && algorithm_ == AllreduceAlgorithm::mpi)
    throw CollectiveError("--compress needs ringtrain's ring (--allreduce auto, ring or hierarchical): MPI_Allreduce would "
                "add in 16 bits");
  if (algorithm_ == AllreduceAlgorithm::hierarchical && nodes.ranks_per_node == 0)
    throw CollectiveError("--allreduce hierarchical needs the same number of ranks on every node, and this job's " +
                std::to_string(size_) + " ranks are spread unevenly over " + std::to_string(nodes.nodes) +
                " nodes (use --allreduce ring)");
  if (algorithm_ == AllreduceAlgorithm::automatic)
    algorithm_ = nodes.nodes > 1 && nodes.ranks_per_node > 1 ? AllreduceAlgorithm::hierarchical
                                                              : AllreduceAlgorithm::ring;
  if (algorithm_ != AllreduceAlgorithm::hierarchical) hierarchical_.reset();
}

MpiCommunicator::~MpiCommunicator() = default;

std::string MpiCommunicator::backend() const {
  return name_of(algorithm_);  // as --allreduce names it
}

size_t MpiCommunicator::wire_bytes_per_float() const {
  return config_.compress ? sizeof(uint16_t) : sizeof(float);
}

void MpiCommunicator::allreduce_sum(float* data, size_t count) {
  if (algorithm_ == AllreduceAlgorithm::ring) {
    ring_allreduce(comm_.get(), data, count, ring_config(), ring_buffers_);
    return;
  }
  if (algorithm_ == AllreduceAlgorithm::hierarchical) {
    hierarchical_->allreduce(data, count, ring_config(), ring_buffers_);
    return;
  }
  // As the peer benchmark and Horovod's MPI path call it: blocking, MPI's own algorithm choice.
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, data, as_int(count, "MPI_Allreduce"), MPI_FLOAT, MPI_SUM, comm_.get()),
            "MPI_Allreduce");
}

void MpiCommunicator::allreduce_sum(double* data, size_t count) {
  MPI_Request request;
  check_mpi(MPI_Iallreduce(MPI_IN_PLACE, data, as_int(count, "MPI_Allreduce"), MPI_DOUBLE, MPI_SUM, comm_.get(),
                           &request), "MPI_Allreduce");
  wait_requests(&request, 1);
}

std::unique_ptr<Transfer> MpiCommunicator::iallreduce_sum(double* data, size_t count) {
  MPI_Request request;
  check_mpi(MPI_Iallreduce(MPI_IN_PLACE, data, as_int(count, "MPI_Iallreduce"), MPI_DOUBLE, MPI_SUM, comm_.get(),
                           &request), "MPI_Iallreduce");
  return std::make_unique<MpiTransfer>(request, MpiTransfer::collective);
}

ElementRange MpiCommunicator::owned_range(size_t count) const {
  return algorithm_ == AllreduceAlgorithm::mpi ? even_chunk(count, size_, rank_)
                                               : ring_owned_chunk(count, size_, rank_);
}

void MpiCommunicator::mpi_chunks(size_t count, std::vector<int>& counts, std::vector<int>& displs) const {
  counts.resize(size_);
  displs.resize(size_);
  for (int r = 0; r < size_; ++r) {
    const ElementRange chunk = even_chunk(count, size_, r);
    counts[r] = as_int(chunk.size(), "MPI_Reduce_scatter");
    displs[r] = as_int(chunk.begin, "MPI_Reduce_scatter");
  }
}

void MpiCommunicator::reduce_scatter_sum(float* data, size_t count) {
  if (algorithm_ != AllreduceAlgorithm::mpi) {
    // The hierarchical allreduce's halves run inside nodes; a shard over all ranks takes the flat ring.
    ring_reduce_scatter(comm_.get(), data, count, ring_config(), ring_buffers_);
    return;
  }
  std::vector<int> counts, displs;
  mpi_chunks(count, counts, displs);
  // MPI_IN_PLACE would leave this rank's sums at the start of `data`: receive them beside it instead.
  std::vector<float>& mine = mpi_scratch_;
  mine.resize(static_cast<size_t>(counts[rank_]));
  MPI_Request request;
  check_mpi(MPI_Ireduce_scatter(data, mine.data(), counts.data(), MPI_FLOAT, MPI_SUM, comm_.get(), &request),
            "MPI_Reduce_scatter");
  wait_requests(&request, 1);
  std::copy(mine.begin(), mine.end(), data + displs[rank_]);
}

void MpiCommunicator::allgather_owned(float* data, size_t count) {
  if (algorithm_ != AllreduceAlgorithm::mpi) {
    ring_allgather(comm_.get(), data, count, ring_config(), ring_buffers_);
    return;
  }
  std::vector<int> counts, displs;
  mpi_chunks(count, counts, displs);
  MPI_Request request;
  check_mpi(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, counts.data(), displs.data(), MPI_FLOAT,
                            comm_.get(), &request),
            "MPI_Allgatherv");
  wait_requests(&request, 1);
}

void MpiCommunicator::broadcast(void* data, size_t bytes, int root) {
  MPI_Request request;
  check_mpi(MPI_Ibcast(data, as_int(bytes, "MPI_Bcast"), MPI_BYTE, root, comm_.get(), &request), "MPI_Bcast");
  wait_requests(&request, 1);
}

void MpiCommunicator::allgather(const void* in, void* out, size_t bytes) {
  MPI_Request request;
  const int n = as_int(bytes, "MPI_Allgather");
  check_mpi(MPI_Iallgather(in, n, MPI_BYTE, out, n, MPI_BYTE, comm_.get(), &request), "MPI_Allgather");
  wait_requests(&request, 1);
}

void MpiCommunicator::send(const void* data, size_t bytes, int peer, int tag) {
  MPI_Request request;
  check_mpi(MPI_Isend(data, as_int(bytes, "MPI_Send"), MPI_BYTE, peer, tag, comm_.get(), &request), "MPI_Send");
  wait_requests(&request, 1);
}

void MpiCommunicator::recv(void* data, size_t bytes, int peer, int tag) {
  MPI_Request request;
  check_mpi(MPI_Irecv(data, as_int(bytes, "MPI_Recv"), MPI_BYTE, peer, tag, comm_.get(), &request), "MPI_Recv");
  wait_requests(&request, 1);
}

std::unique_ptr<Transfer> MpiCommunicator::isend(const void* data, size_t bytes, int peer, int tag) {
  MPI_Request request;
  check_mpi(MPI_Isend(data, as_int(bytes, "MPI_Isend"), MPI_BYTE, peer, tag, comm_.get(), &request), "MPI_Isend");
  return std::make_unique<MpiTransfer>(request, MpiTransfer::send);
}

std::unique_ptr<Transfer> MpiCommunicator::irecv(void* data, size_t bytes, int peer, int tag) {
  MPI_Request request;
  check_mpi(MPI_Irecv(data, as_int(bytes, "MPI_Irecv"), MPI_BYTE, peer, tag == kAnyTag ? MPI_ANY_TAG : tag,
                      comm_.get(), &request),
            "MPI_Irecv");
  return std::make_unique<MpiTransfer>(request, MpiTransfer::receive);
}

void MpiCommunicator::barrier() {
  MPI_Request request;
  check_mpi(MPI_Ibarrier(comm_.get(), &request), "MPI_Barrier");
  wait_requests(&request, 1);
}

std::unique_ptr<Communicator> MpiCommunicator::split_off() const {
  return std::make_unique<MpiCommunicator>(comm_.get(), config_);
}

std::unique_ptr<Communicator> MpiCommunicator::split(int color, int key) const {
  MPI_Comm part = MPI_COMM_NULL;
  check_mpi(MPI_Comm_split(comm_.get(), color, key, &part), "MPI_Comm_split");
  const MpiComm owned = MpiComm::adopt(part);  // the new communicator duplicates it; this frees it
  // A part of the job (a pipeline stage's replicas) may sit unevenly on nodes that hold the whole job evenly:
  // it chooses its own algorithm.
  MpiCommunicatorConfig config = config_;
  if (config.allreduce == AllreduceAlgorithm::hierarchical) config.allreduce = AllreduceAlgorithm::automatic;
  return std::make_unique<MpiCommunicator>(owned.get(), config);
}

}  // namespace ringtrain
