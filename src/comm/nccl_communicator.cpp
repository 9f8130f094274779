#include "ringtrain/comm/nccl_communicator.hpp"

#include <nccl.h>

#include <exception>

#include "ringtrain/tensor/cuda_allocator.hpp"
#include "ringtrain/tensor/cuda_context.hpp"
#include "ringtrain/tensor/cuda_events.hpp"
#include "ringtrain/tensor/error.hpp"

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
  explicit NcclTransfer(cudaStream_t stream) { cuda::check(cudaEventRecord(done_, stream), "cudaEventRecord"); }
  void wait() override { cuda::check(cudaStreamWaitEvent(cuda::context().compute(), done_, 0), "cudaStreamWaitEvent"); }
  bool test() override { return cuda::event_done(done_); }

 private:
  cuda::Event done_;
};

class NcclCommunicator final : public Communicator {
 public:
  // Takes ownership of a communicator NCCL has made.
  NcclCommunicator(ncclComm_t comm, NcclStream stream) : comm_(comm), stream_kind_(stream) {
    try {
      check(ncclCommUserRank(comm_, &rank_), "ncclCommUserRank");
      check(ncclCommCount(comm_, &size_), "ncclCommCount");
      if (stream == NcclStream::own) own_stream_ = std::make_unique<cuda::Stream>();
    } catch (...) {
      ncclCommAbort(comm_);
      throw;
    }
  }
  // ncclCommDestroy lets the communicator's queued operations finish first. After an error (here, or on a
  // rank that will never call again) or while an exception unwinds the job, they may wait for peers that
  // never come: abort them instead, which returns. The own stream goes after (a member).
  ~NcclCommunicator() override {
    if (failed_ || std::uncaught_exceptions() > 0 || async_error()) ncclCommAbort(comm_);
    else ncclCommDestroy(comm_);
  }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "nccl"; }
  Device device() const override { return Device::cuda; }

  void allreduce_sum(float* data, size_t count) override {
    uses(data);
    in_compute_order(
        [&] { check(ncclAllReduce(data, data, count, ncclFloat, ncclSum, comm_, stream()), "ncclAllReduce"); });
  }
  void allreduce_sum(double* data, size_t count) override {
    uses(data);
    in_compute_order(
        [&] { check(ncclAllReduce(data, data, count, ncclDouble, ncclSum, comm_, stream()), "ncclAllReduce"); });
  }
  std::unique_ptr<Transfer> iallreduce_sum(double* data, size_t count) override {
    allreduce_sum(data, count);
    return std::make_unique<NcclTransfer>(stream());
  }
  void broadcast(void* data, size_t bytes, int root) override {
    uses(data);
    in_compute_order(
        [&] { check(ncclBroadcast(data, data, bytes, ncclChar, root, comm_, stream()), "ncclBroadcast"); });
  }
  void allgather(const void* in, void* out, size_t bytes) override {
    uses(in), uses(out);
    in_compute_order([&] { check(ncclAllGather(in, out, bytes, ncclChar, comm_, stream()), "ncclAllGather"); });
  }
  void send(const void* data, size_t bytes, int peer, int) override {
    uses(data);
    check(ncclSend(data, bytes, ncclChar, peer, comm_, stream()), "ncclSend");
  }
  void recv(void* data, size_t bytes, int peer, int) override {
    uses(data);
    check(ncclRecv(data, bytes, ncclChar, peer, comm_, stream()), "ncclRecv");
  }
  std::unique_ptr<Transfer> isend(const void* data, size_t bytes, int peer, int tag) override {
    transfer_waits_for_compute();
    send(data, bytes, peer, tag);
    return std::make_unique<NcclTransfer>(stream());
  }
  std::unique_ptr<Transfer> irecv(void* data, size_t bytes, int peer, int tag) override {
    if (tag == kAnyTag) throw Error("NCCL receives match by order: there is no receive of any tag");
    transfer_waits_for_compute();  // the buffer may still be read by compute queued earlier
    recv(data, bytes, peer, tag);
    return std::make_unique<NcclTransfer>(stream());
  }
  // The one call that waits on the host: every rank's stream has reached it.
  void barrier() override {
    DeviceBuffer token(sizeof(float));
    allreduce_sum(static_cast<float*>(token.get()), 1);
    cuda::check(cudaStreamSynchronize(stream()), "cudaStreamSynchronize");
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    uses(dst), uses(src);
    cuda::check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()), "cudaMemcpyAsync");
  }
  std::unique_ptr<Communicator> split_off() const override { return split(0, rank_); }
  std::unique_ptr<Communicator> split(int color, int key) const override {
    ncclComm_t part = nullptr;
    check(ncclCommSplit(comm_, color, key, &part, nullptr), "ncclCommSplit");
    return std::make_unique<NcclCommunicator>(part, stream_kind_);
  }

 private:
  cudaStream_t stream() const { return own_stream_ ? own_stream_->get() : cuda::context().comm(); }
  // A collective on a stream of its own reads what compute wrote before it and is read by compute after it,
  // as a host collective would be (the shared stream's users order it themselves, to overlap it).
  template <typename Collective>
  void in_compute_order(Collective collective) const {
    if (own_stream_) cuda::stream_wait(own_stream_->get(), cuda::context().compute());
    collective();
    if (own_stream_) cuda::stream_wait(cuda::context().compute(), own_stream_->get());
  }
  void transfer_waits_for_compute() const {
    if (own_stream_) cuda::stream_wait(own_stream_->get(), cuda::context().compute());
    else comm_stream_waits_for_compute();
  }
  // The allocator learns that this stream uses the buffer: freed, its block waits for this stream's work.
  void uses(const void* buffer) const { cuda::record_stream(buffer, stream()); }
  // Throws for a failed NCCL call and remembers that one failed (the destructor then aborts).
  void check(ncclResult_t status, const char* what) const {
    if (status != ncclSuccess) failed_ = true;
    check_nccl(status, what, comm_);
  }
  bool async_error() const {
    ncclResult_t error = ncclSuccess;
    if (ncclCommGetAsyncError(comm_, &error) != ncclSuccess) return true;
    return error != ncclSuccess && error != ncclInProgress;
  }

  ncclComm_t comm_;
  NcclStream stream_kind_;
  std::unique_ptr<cuda::Stream> own_stream_;
  int rank_ = 0, size_ = 1;
  mutable bool failed_ = false;
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
