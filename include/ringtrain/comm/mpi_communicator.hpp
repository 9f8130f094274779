// The MPI backend: host buffers, over a communicator of its own (MPI_Comm_dup), so its messages never mix
// with any other. allreduce_sum runs our segmented ring (ring_allreduce.hpp), flat or node-aware
// (hierarchical_allreduce.hpp), or MPI_Allreduce.
#pragma once
#include <mpi.h>

#include <chrono>
#include <memory>
#include <optional>
#include <vector>

#include "ringtrain/comm/communicator.hpp"
#include "ringtrain/comm/ring_allreduce.hpp"
#include "ringtrain/tensor/enum_names.hpp"

namespace ringtrain {

// How MpiCommunicator sums floats: ringtrain's segmented ring over point-to-point, flat or hierarchical
// (inside nodes, then across them), the library's MPI_Allreduce, or automatic: hierarchical where the ranks
// span nodes with the same number, at least 2, on each (where it moves fewer bytes across the network),
// else the flat ring.
enum class AllreduceAlgorithm { automatic, ring, hierarchical, mpi };
inline constexpr EnumNames<AllreduceAlgorithm, 4> kAllreduceAlgorithmNames{
    {{AllreduceAlgorithm::automatic, "auto"},
     {AllreduceAlgorithm::ring, "ring"},
     {AllreduceAlgorithm::hierarchical, "hierarchical"},
     {AllreduceAlgorithm::mpi, "mpi"}}};
constexpr const auto& enum_names(AllreduceAlgorithm) { return kAllreduceAlgorithmNames; }

// Owns a duplicated MPI communicator; frees it on destruction (MPI must still be initialised).
class MpiComm {
 public:
  explicit MpiComm(MPI_Comm parent);
  // Takes `comm` over rather than duplicating it.
  static MpiComm adopt(MPI_Comm comm);
  MpiComm(MpiComm&& other) noexcept : comm_(other.comm_) { other.comm_ = MPI_COMM_NULL; }
  ~MpiComm();
  MpiComm(const MpiComm&) = delete;
  MpiComm& operator=(const MpiComm&) = delete;
  MPI_Comm get() const { return comm_; }

 private:
  MpiComm() = default;
  MPI_Comm comm_ = MPI_COMM_NULL;
};

struct MpiCommunicatorConfig {
  AllreduceAlgorithm allreduce = AllreduceAlgorithm::automatic;
  size_t segment_bytes = 1 << 20;  // ring pipeline segment (bench/allreduce: 1 MiB is best here)
  // Float sums cross the wire as 16-bit floats (accumulated in float32); only our rings do this.
  std::optional<HalfFormat> compress;
  // Which ranks make a node (HierarchicalAllreduce): 0, the ranks that share memory; n, consecutive groups
  // of n ranks (tests emulating nodes on one host).
  int ranks_per_node = 0;
};

class HierarchicalAllreduce;

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(MPI_Comm parent = MPI_COMM_WORLD, MpiCommunicatorConfig config = {});

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  ~MpiCommunicator() override;
  std::string backend() const override;
  size_t wire_bytes_per_float() const override;
  void allreduce_sum(float* data, size_t count) override;
  void allreduce_sum(double* data, size_t count) override;
  std::unique_ptr<Transfer> iallreduce_sum(double* data, size_t count) override;
  // Ring and hierarchical: the ring's halves (over all ranks, flat), whose owned range is ring_owned_chunk;
  // --allreduce mpi: MPI_Reduce_scatter and MPI_Allgatherv, rank r owning even_chunk r.
  ElementRange owned_range(size_t count) const override;
  void reduce_scatter_sum(float* data, size_t count) override;
  void allgather_owned(float* data, size_t count) override;
  void broadcast(void* data, size_t bytes, int root) override;
  void allgather(const void* in, void* out, size_t bytes) override;
  void send(const void* data, size_t bytes, int peer, int tag) override;
  void recv(void* data, size_t bytes, int peer, int tag) override;
  std::unique_ptr<Transfer> isend(const void* data, size_t bytes, int peer, int tag) override;
  std::unique_ptr<Transfer> irecv(void* data, size_t bytes, int peer, int tag) override;
  void barrier() override;
  std::unique_ptr<Communicator> split_off() const override;
  std::unique_ptr<Communicator> split(int color, int key) const override;

 private:
  RingConfig ring_config() const { return {config_.segment_bytes, config_.compress}; }
  // --allreduce mpi's layout: every rank's even_chunk, as MPI's counts and displacements.
  void mpi_chunks(size_t count, std::vector<int>& counts, std::vector<int>& displs) const;

  MpiComm comm_;
  MpiCommunicatorConfig config_;
  int rank_ = 0, size_ = 1;
  AllreduceAlgorithm algorithm_;  // never automatic: what it resolved to
  std::unique_ptr<HierarchicalAllreduce> hierarchical_;
  RingBuffers ring_buffers_;
  std::vector<float> mpi_scratch_;  // reduce_scatter_sum's receive buffer under --allreduce mpi
};

// Throws Error("<what> failed: <MPI's message>") unless rc is MPI_SUCCESS.
void check_mpi(int rc, const char* what);
// Waits for the requests without hogging the core (Backoff): a rank that waits for a slow peer leaves its
// core to the training thread. Small collectives, which may wait for a peer still computing, spin briefly;
// the ring's transfers, which start only once every rank has agreed to run them, spin longer.
void wait_requests(MPI_Request* requests, int count, std::chrono::microseconds spin = std::chrono::microseconds(20),
                   MPI_Status* statuses = MPI_STATUSES_IGNORE);

}  // namespace ringtrain
