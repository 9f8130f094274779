// The NCCL backend under mpirun or srun, one GPU per rank: allreduce equals the exact sum, broadcast and
// send/recv move device buffers, the allreduce engine sums and fuses device gradients over NCCL as it does
// host ones over MPI, and a communicator dropped while an exception unwinds does not wait for its peers.
// Skipped, saying why, unless every rank has a GPU of its own: the one the launcher left it
// (srun --gpus-per-task=1, as slurm/train-gpu.sbatch runs), else its local rank's (test::start_gpu_per_rank).
#include <gtest/gtest.h>

#include <sstream>
#include <stdexcept>

#include "ringtrain/comm/allreduce_engine.hpp"
#include "ringtrain/comm/nccl_communicator.hpp"
#include "ringtrain/tensor/tensor.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

class Nccl : public ::testing::Test {
 protected:
  void SetUp() override {
    Communicator& world = test::world();
    if (const std::string why = test::start_gpu_per_rank(world); !why.empty()) GTEST_SKIP() << why;
    nccl_ = make_nccl_communicator(world);
  }
  std::unique_ptr<Communicator> nccl_;
};

// Integer values: sums are exact in any order.
float rank_value(int rank, int64_t i) { return static_cast<float>((rank + 1) * (i % 13) - 6); }

Tensor rank_values(int rank, int64_t count) {
  Tensor t({count});
  for (int64_t i = 0; i < count; ++i) t[i] = rank_value(rank, i);
  return t;
}

float expected_sum(int ranks, int64_t i) {
  float sum = 0.0f;
  for (int r = 0; r < ranks; ++r) sum += rank_value(r, i);
  return sum;
}

// Host copy of a device tensor the communicator wrote: compute-stream work (the copy) waits for it first.
Tensor read_back(const Tensor& device) {
  compute_stream_waits_for_comm();
  return device.to(Device::cpu);
}

TEST_F(Nccl, AllreduceEqualsTheExactSum) {
  const int n = nccl_->size();
  EXPECT_EQ(nccl_->backend(), "nccl");
  EXPECT_EQ(nccl_->device(), Device::cuda);
  for (int64_t count : {int64_t{1}, int64_t{7}, int64_t{1001}, int64_t{1000003}}) {
    Tensor data = rank_values(nccl_->rank(), count).to(Device::cuda);
    comm_stream_waits_for_compute();  // the upload ran on the compute stream
    nccl_->allreduce_sum(data.data(), static_cast<size_t>(count));
    const Tensor sum = read_back(data);
    int64_t wrong = 0;
    for (int64_t i = 0; i < count; ++i) wrong += sum[i] != expected_sum(n, i);
    EXPECT_EQ(wrong, 0) << count << " elements";
  }
}

TEST_F(Nccl, BroadcastAndSendRecvMoveDeviceBuffers) {
  const int n = nccl_->size(), rank = nccl_->rank();
  Tensor b = rank_values(rank, 100).to(Device::cuda);
  comm_stream_waits_for_compute();
  nccl_->broadcast(b.data(), 100 * sizeof(float), n - 1);
  const Tensor got = read_back(b), want = rank_values(n - 1, 100);
  for (int64_t i = 0; i < 100; ++i) ASSERT_EQ(got[i], want[i]);

  if (n == 1) GTEST_SKIP() << "send/recv needs a peer";  // NCCL's send to self waits for a receive never posted
  Tensor out = rank_values(rank, 50).to(Device::cuda), in({50}, Device::cuda);
  comm_stream_waits_for_compute();
  // Even ranks send first: NCCL point-to-point calls block the stream until their peer's call arrives.
  const int next = (rank + 1) % n, prev = (rank + n - 1) % n;
  if (rank % 2 == 0) {
    nccl_->send(out.data(), 50 * sizeof(float), next, 0);
    nccl_->recv(in.data(), 50 * sizeof(float), prev, 0);
  } else {
    nccl_->recv(in.data(), 50 * sizeof(float), prev, 0);
    nccl_->send(out.data(), 50 * sizeof(float), next, 0);
  }
  const Tensor received = read_back(in), sent = rank_values(prev, 50);
  for (int64_t i = 0; i < 50; ++i) ASSERT_EQ(received[i], sent[i]);
}

TEST_F(Nccl, EngineSumsAndFusesDeviceGradients) {
  Communicator& world = test::world();
  const int n = world.size(), rank = world.rank();
  std::ostringstream warnings;
  AllreduceEngine engine(world.split_off(), std::move(nccl_), {}, nullptr, warnings);
  constexpr int kTensors = 40;
  std::vector<Tensor> tensors;
  for (int t = 0; t < kTensors; ++t) {
    const int64_t count = t == 5 ? (1 << 19) : 1 + (t * 37) % 300;  // one of 2 MiB goes alone
    tensors.push_back(rank_values(rank, count).to(Device::cuda));
  }
  comm_stream_waits_for_compute();
  for (int k = 0; k < kTensors; ++k) {
    const int t = rank % 2 ? kTensors - 1 - k : k;
    engine.submit("t" + std::to_string(t), tensors[t].data(), static_cast<size_t>(tensors[t].numel()));
  }
  engine.wait();
  for (int t = 0; t < kTensors; ++t) {
    const Tensor sum = read_back(tensors[t]);
    for (int64_t i = 0; i < sum.numel(); ++i) ASSERT_EQ(sum[i], expected_sum(n, i)) << "t" << t << "[" << i << "]";
  }
  EXPECT_LT(engine.stats().allreduces, kTensors / 4) << "ready tensors should share the fusion buffer";
}

// Every rank posts a receive that no rank matches, then an exception unwinds through the communicator:
// ncclCommDestroy would wait for the receive forever; the communicator aborts instead, and returns.
TEST_F(Nccl, AnUnwindingCommunicatorAbortsInsteadOfWaitingForPeers) {
  Tensor buffer({16}, Device::cuda);
  bool posted = false;
  try {
    const std::unique_ptr<Communicator> lonely = make_nccl_communicator(test::world(), NcclStream::own);
    // From the next rank (on one rank, itself; NCCL may refuse that at once, and the same unwinding follows).
    lonely->irecv(buffer.data(), sizeof(float) * 16, (lonely->rank() + 1) % lonely->size(), 0);
    posted = true;
    throw std::runtime_error("a rank fails");
  } catch (const std::exception& e) {
    if (posted) EXPECT_STREQ(e.what(), "a rank fails");
    else EXPECT_NE(std::string(e.what()).find("NCCL error in ncclRecv"), std::string::npos) << e.what();
  }
  test::world().barrier();  // every rank got here: none hangs in a destroy
}

}  // namespace
}  // namespace ringtrain
