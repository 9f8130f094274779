// The MPI backend: host buffers, over a communicator of its own (MPI_Comm_dup), so its messages never mix
// with any other. allreduce_sum runs our segmented ring (ring_allreduce.hpp) or MPI_Allreduce.
#pragma once
#include <mpi.h>

#include <chrono>
#include <vector>

#include "ringtrain/comm/communicator.hpp"
#include "ringtrain/comm/ring_allreduce.hpp"
#include "ringtrain/tensor/enum_names.hpp"

namespace ringtrain {

// How MpiCommunicator sums: ringtrain's segmented ring over point-to-point, or the library's MPI_Allreduce.
enum class AllreduceAlgorithm { ring, mpi };
inline constexpr EnumNames<AllreduceAlgorithm, 2> kAllreduceAlgorithmNames{
    {{AllreduceAlgorithm::ring, "ring"}, {AllreduceAlgorithm::mpi, "mpi"}}};
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
  AllreduceAlgorithm allreduce = AllreduceAlgorithm::ring;
  size_t segment_bytes = 1 << 20;  // ring pipeline segment (bench/allreduce: 1 MiB is best here)
};

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(MPI_Comm parent = MPI_COMM_WORLD, MpiCommunicatorConfig config = {});

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override;
  void allreduce_sum(float* data, size_t count) override;
  void allreduce_sum(double* data, size_t count) override;
  std::unique_ptr<Transfer> iallreduce_sum(double* data, size_t count) override;
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
  MpiComm comm_;
  MpiCommunicatorConfig config_;
  int rank_ = 0, size_ = 1;
  RingScratch ring_scratch_;
};

// Throws Error("<what> failed: <MPI's message>") unless rc is MPI_SUCCESS.
void check_mpi(int rc, const char* what);
// Waits for the requests without hogging the core (Backoff): a rank that waits for a slow peer leaves its
// core to the training thread. Small collectives, which may wait for a peer still computing, spin briefly;
// the ring's transfers, which start only once every rank has agreed to run them, spin longer.
void wait_requests(MPI_Request* requests, int count, std::chrono::microseconds spin = std::chrono::microseconds(20),
                   MPI_Status* statuses = MPI_STATUSES_IGNORE);

}  // namespace ringtrain
