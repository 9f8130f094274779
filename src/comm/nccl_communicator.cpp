#include "ringtrain/comm/nccl_communicator.hpp"

#include <nccl.h>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/cuda_context.hpp"

namespace ringtrain {

namespace {

void check_nccl(ncclResult_t status, const char* what, ncclComm_t comm = nullptr) {
  if (status == ncclSuccess) return;
  std::string message = std::string("NCCL error in ") + what + ": " + ncclGetErrorString(status);
  if (const char* detail = ncclGetLastError(comm); detail && *detail) message += std::string(" (") + detail + ")";
  throw Error(message);
}

// A send or receive queued on a communicator's own stream: the event marks its end.
class NcclTransfer final : public Transfer {
 public:
  explicit NcclTransfer(cudaStream_t stream) {
    cuda::check(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming), "cudaEventCreate");
    cuda::check(cudaEventRecord(done_, stream), "cudaEventRecord");
  }
  ~NcclTransfer() override { cudaEventDestroy(done_); }
  NcclTransfer(const NcclTransfer&) = delete;
  NcclTransfer& operator=(const NcclTransfer&) = delete;
  void wait() override { cuda::check(cudaStreamWaitEvent(cuda::context().compute(), done_, 0), "cudaStreamWaitEvent"); }
  bool test() override {
    const cudaError_t status = cudaEventQuery(done_);
    if (status == cudaErrorNotReady) return false;
    cuda::check(status, "cudaEventQuery");
    return true;
  }

 private:
  cudaEvent_t done_ = nullptr;
};

// A CUDA stream owned by one communicator.
class OwnedStream {
 public:
  OwnedStream() { cuda::check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate"); }
  ~OwnedStream() { cudaStreamDestroy(stream_); }
  OwnedStream(const OwnedStream&) = delete;
  OwnedStream& operator=(const OwnedStream&) = delete;
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

class NcclCommunicator final : public Communicator {
 public:
  // Takes ownership of a communicator NCCL has made.
  NcclCommunicator(ncclComm_t comm, NcclStream stream) : comm_(comm), stream_kind_(stream) {
    check_nccl(ncclCommUserRank(comm_, &rank_), "ncclCommUserRank", comm_);
    check_nccl(ncclCommCount(comm_, &size_), "ncclCommCount", comm_);
    if (stream == NcclStream::own) own_stream_ = std::make_unique<OwnedStream>();
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
  std::unique_ptr<Transfer> iallreduce_sum(double* data, size_t count) override {
    allreduce_sum(data, count);
    return std::make_unique<NcclTransfer>(stream());
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
  std::unique_ptr<Transfer> isend(const void* data, size_t bytes, int peer, int) override {
    transfer_waits_for_compute();
    check_nccl(ncclSend(data, bytes, ncclChar, peer, comm_, stream()), "ncclSend", comm_);
    return std::make_unique<NcclTransfer>(stream());
  }
  std::unique_ptr<Transfer> irecv(void* data, size_t bytes, int peer, int tag) override {
    if (tag == kAnyTag) throw Error("NCCL receives match by order: there is no receive of any tag");
    transfer_waits_for_compute();  // the buffer may still be read by compute queued earlier
    check_nccl(ncclRecv(data, bytes, ncclChar, peer, comm_, stream()), "ncclRecv", comm_);
    return std::make_unique<NcclTransfer>(stream());
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
  std::unique_ptr<Communicator> split_off() const override { return split(0, rank_); }
  std::unique_ptr<Communicator> split(int color, int key) const override {
    ncclComm_t part = nullptr;
    check_nccl(ncclCommSplit(comm_, color, key, &part, nullptr), "ncclCommSplit", comm_);
    return std::make_unique<NcclCommunicator>(part, stream_kind_);
  }

 private:
  cudaStream_t stream() const { return own_stream_ ? own_stream_->get() : cuda::context().comm(); }
  void transfer_waits_for_compute() const {
    if (own_stream_) cuda::stream_wait(own_stream_->get(), cuda::context().compute());
    else comm_stream_waits_for_compute();
  }

  ncclComm_t comm_;
  NcclStream stream_kind_;
  std::unique_ptr<OwnedStream> own_stream_;
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, NcclStream stream) {
  cuda::context();  // NCCL binds to the current device: there must be one
  ncclUniqueId id{};
  if (bootstrap.rank() == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  bootstrap.broadcast(&id, sizeof id, 0);
  ncclComm_t comm = nullptr;
  check_nccl(ncclCommInitRank(&comm, bootstrap.size(), id, bootstrap.rank()), "ncclCommInitRank");
  return std::make_unique<NcclCommunicator>(comm, stream);
}

}  // namespace ringtrain
