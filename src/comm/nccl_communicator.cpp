#include "ringtrain/comm/nccl_communicator.hpp"

#include <nccl.h>

#include "ringtrain/error.hpp"
#include "ringtrain/tensor/cuda_context.hpp"

namespace ringtrain {

namespace {

void check_nccl(ncclResult_t status, const char* what, ncclComm_t comm = nullptr) {
  if (status == ncclSuccess) return;
  std::string message = std::string("NCCL error in ") + what + ": " + ncclGetErrorString(status);
  if (const char* detail = ncclGetLastError(comm); detail && *detail) message += std::string(" (") + detail + ")";
  throw Error(message);
}

class NcclCommunicator final : public Communicator {
 public:
  // Takes ownership of a communicator NCCL has made.
  explicit NcclCommunicator(ncclComm_t comm) : comm_(comm) {
    check_nccl(ncclCommUserRank(comm_, &rank_), "ncclCommUserRank", comm_);
    check_nccl(ncclCommCount(comm_, &size_), "ncclCommCount", comm_);
  }
  ~NcclCommunicator() override { ncclCommDestroy(comm_); }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "nccl"; }
  Device device() const override { return Device::cuda; }

  void allreduce_sum(float* data, size_t count) override {
    check_nccl(ncclAllReduce(data, data, count, ncclFloat, ncclSum, comm_, stream()), "ncclAllReduce", comm_);
  }
  void allreduce_sum(double* data, size_t count) override {
    check_nccl(ncclAllReduce(data, data, count, ncclDouble, ncclSum, comm_, stream()), "ncclAllReduce", comm_);
  }
  void broadcast(void* data, size_t bytes, int root) override {
    check_nccl(ncclBroadcast(data, data, bytes, ncclChar, root, comm_, stream()), "ncclBroadcast", comm_);
  }
  void allgather(const void* in, void* out, size_t bytes) override {
    check_nccl(ncclAllGather(in, out, bytes, ncclChar, comm_, stream()), "ncclAllGather", comm_);
  }
  void send(const void* data, size_t bytes, int peer, int) override {
    check_nccl(ncclSend(data, bytes, ncclChar, peer, comm_, stream()), "ncclSend", comm_);
  }
  void recv(void* data, size_t bytes, int peer, int) override {
    check_nccl(ncclRecv(data, bytes, ncclChar, peer, comm_, stream()), "ncclRecv", comm_);
  }
  // The one call that waits on the host: every rank's stream has reached it.
  void barrier() override {
    DeviceBuffer token(sizeof(float));
    check_nccl(ncclAllReduce(token.get(), token.get(), 1, ncclFloat, ncclSum, comm_, stream()), "ncclAllReduce",
               comm_);
    cuda::check(cudaStreamSynchronize(stream()), "cudaStreamSynchronize");
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (bytes) cuda::check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()), "cudaMemcpyAsync");
  }
  std::unique_ptr<Communicator> split_off() const override {
    ncclComm_t fresh = nullptr;
    check_nccl(ncclCommSplit(comm_, 0, rank_, &fresh, nullptr), "ncclCommSplit", comm_);
    return std::make_unique<NcclCommunicator>(fresh);
  }

 private:
  static cudaStream_t stream() { return cuda::context().comm(); }

  ncclComm_t comm_;
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap) {
  cuda::context();  // NCCL binds to the current device: there must be one
  ncclUniqueId id{};
  if (bootstrap.rank() == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  bootstrap.broadcast(&id, sizeof id, 0);
  ncclComm_t comm = nullptr;
  check_nccl(ncclCommInitRank(&comm, bootstrap.size(), id, bootstrap.rank()), "ncclCommInitRank");
  return std::make_unique<NcclCommunicator>(comm);
}

}  // namespace ringtrain
