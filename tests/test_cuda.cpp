// The CUDA engine against the CPU engine. The CUDA build is compiled everywhere; these tests run where a GPU
// is present and skip, saying why, everywhere else. Every layer, loss and optimizer must agree with its CPU
// twin to 1e-4 relative (the scale being the largest CPU value), forward and backward.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <cmath>
#include <functional>
#include <optional>
#include <thread>
#include <tuple>

#include "ringtrain/data/device_batches.hpp"
#include "ringtrain/nn/batchnorm.hpp"
#include "ringtrain/nn/gradient_clip.hpp"
#include "ringtrain/nn/loss.hpp"
#include "ringtrain/nn/model.hpp"
#include "ringtrain/nn/optimizer.hpp"
#include "ringtrain/nn/per_batch_algorithms.hpp"
#include "ringtrain/nn/residual.hpp"
#include "ringtrain/parallel/nonfinite_guard.hpp"
#include "ringtrain/tensor/block_cache.hpp"
#include "ringtrain/tensor/device.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/train/device_choice.hpp"
#include "test_util.hpp"
#ifdef RINGTRAIN_HAVE_CUDA
#include "ringtrain/tensor/cuda_allocator.hpp"
#include "ringtrain/tensor/cuda_context.hpp"
#include "ringtrain/tensor/cuda_events.hpp"
#endif

namespace ringtrain {
namespace {

TEST(Cuda, ProbeReportsDevicesOrWhyNot) {
  const CudaProbe probe = probe_cuda();
  if (probe.device_count == 0) {
    EXPECT_EQ(probe.reason.rfind("no ", 0), 0u) << probe.reason;  // "no NVIDIA GPU driver ...", "no usable ..."
    EXPECT_TRUE(probe.devices.empty());
    GTEST_SKIP() << probe.reason;
  }
  EXPECT_TRUE(probe.reason.empty());
  EXPECT_EQ(static_cast<int>(probe.devices.size()), probe.device_count);
}

// Runs on every machine: what a rank does without a GPU, and how it picks one.
TEST(DeviceChoice, GpuFollowsTheLocalRankUnlessChosen) {
  EXPECT_EQ(choose_gpu(-1, -1, 4), 0);  // no launcher
  EXPECT_EQ(choose_gpu(-1, 3, 4), 3);
  EXPECT_EQ(choose_gpu(1, 3, 4), 1);
  try {
    choose_gpu(-1, 2, 2);
    ADD_FAILURE() << "a third rank on a two-GPU node must not share a GPU silently";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("start one rank per GPU"), std::string::npos) << e.what();
  }
  EXPECT_THROW(choose_gpu(5, 0, 2), Error);
  // srun --gpus-per-task=1: each task sees one GPU, its own, whatever its local rank.
  EXPECT_EQ(choose_gpu(-1, 3, 1, true), 0);
  EXPECT_THROW(choose_gpu(-1, 3, 1, false), Error);
  EXPECT_EQ(choose_gpu(0, 3, 1, true), 0);
}

TEST(DeviceChoice, LocalRankComesFromTheLauncher) {
  setenv("SLURM_LOCALID", "2", 1);
  EXPECT_EQ(local_rank_from_environment(), 2);
  unsetenv("SLURM_LOCALID");
  setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1", 1);
  EXPECT_EQ(local_rank_from_environment(), 1);
  unsetenv("OMPI_COMM_WORLD_LOCAL_RANK");
}

TEST(DeviceChoice, CpuNeedsNoGpuAndAutoFallsBack) {
  EXPECT_EQ(start_device({DeviceKind::cpu, -1, Precision::fp32}), Device::cpu);
  if (probe_cuda().device_count > 0) GTEST_SKIP() << "a GPU is present: auto picks it";
  EXPECT_EQ(start_device({DeviceKind::automatic, -1, Precision::fp32}), Device::cpu);
  try {
    start_device({DeviceKind::cuda, -1, Precision::fp32});
    ADD_FAILURE() << "--device cuda without a GPU must fail";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("--device cuda: no ", 0), 0u) << e.what();
    // Where no driver is installed, the runtime's "driver version is insufficient" must not stand alone (a
    // build without CUDA says that instead).
    const bool built_without_cuda = std::string(e.what()).find("RINGTRAIN_CUDA=OFF") != std::string::npos;
    if (!std::filesystem::exists("/proc/driver/nvidia/version") && !built_without_cuda)
      EXPECT_NE(std::string(e.what()).find("no NVIDIA GPU driver or device found"), std::string::npos) << e.what();
  }
  EXPECT_THROW(start_device({DeviceKind::cpu, -1, Precision::bf16}), Error);  // the CPU engine has no bf16
  // Under auto a GPU precision falls back on a CPU node, saying so: one script serves both kinds of node.
  std::string note;
  EXPECT_EQ(start_device({DeviceKind::automatic, -1, Precision::tf32}, &note), Device::cpu);
  EXPECT_NE(note.find("computing in fp32 on the CPU"), std::string::npos) << note;
}

// The NCCL tests' choice of GPUs (test::start_gpu_per_rank): under srun --gpus-per-task=1 every rank sees one
// GPU, index 0, and each is another physical GPU; two ranks on one GPU must skip, not fail in NCCL.
TEST(DeviceChoice, NcclTestsRunWhenEachRankHasAGpuOfItsOwn) {
  EXPECT_EQ(test::gpu_per_rank_problem({"n1 0000:1b:00.0", "n1 0000:1c:00.0", "n2 0000:1b:00.0"}), "");
  const std::string shared = test::gpu_per_rank_problem({"n1 0000:1b:00.0", "n2 0000:1b:00.0", "n1 0000:1b:00.0"});
  EXPECT_NE(shared.find("ranks 0 and 2 would share"), std::string::npos) << shared;
  const std::string missing = test::gpu_per_rank_problem({"n1 0000:1b:00.0", ""});
  EXPECT_NE(missing.find("rank 1 has no GPU"), std::string::npos) << missing;
}

// The caching allocator's bookkeeping (block_cache.hpp) with fake streams and events: streams are ints and an
// event is done when the test finishes its stream's work.
struct FakeEvents {
  using Stream = int;
  using Event = int;
  std::optional<int> record(int stream) {
    if (failing) return std::nullopt;
    events.push_back({stream, false});
    return static_cast<int>(events.size()) - 1;
  }
  bool done(int event) { return events[static_cast<size_t>(event)].second; }
  void recycle(int) { ++recycled; }
  void finish(int stream) {
    for (auto& [s, done] : events)
      if (s == stream) done = true;
  }
  std::vector<std::pair<int, bool>> events;  // (stream, done)
  int recycled = 0;
  bool failing = false;
};

class BlockCacheTest : public ::testing::Test {
 protected:
  static constexpr int kCompute = 0, kComm = 1;
  static constexpr size_t kSize = 1024;
  void* block(int i) { return memory_ + i * 2 * kSize; }  // blocks with gaps between them
  FakeEvents events_;
  BlockCache<FakeEvents> cache_{events_};

 private:
  alignas(64) char memory_[12 * kSize] = {};  // block(0) to block(5)
};

TEST_F(BlockCacheTest, ABlockFreedByItsStreamAloneGoesBackToThatStreamAtOnce) {
  cache_.add(block(0), kSize, kCompute);
  EXPECT_EQ(cache_.release(block(0)), kSize);
  EXPECT_TRUE(events_.events.empty()) << "a block one stream used needs no event";
  EXPECT_EQ(cache_.take(kSize, kComm), nullptr) << "its work may still be queued on the compute stream";
  EXPECT_EQ(cache_.take(2 * kSize, kCompute), nullptr) << "another size";
  EXPECT_EQ(cache_.take(kSize, kCompute), block(0));
  const DeviceMemoryStats s = cache_.stats();
  EXPECT_EQ(s.cuda_mallocs, 1);
  EXPECT_EQ(s.in_use_bytes, kSize);
  EXPECT_EQ(s.cached_bytes, 0u);
}

// The fusion buffer's case: the comm stream used it, and it is freed (grown, or the engine goes) while the
// comm stream may still be reducing in it.
TEST_F(BlockCacheTest, ABlockAnotherStreamUsedStaysPendingUntilThatStreamsWorkHasRun) {
  cache_.add(block(0), kSize, kCompute);
  EXPECT_EQ(cache_.record_use(static_cast<char*>(block(0)) + 100, kComm), std::nullopt)
      << "a fresh block: no earlier owner to wait for";
  cache_.release(block(0));
  EXPECT_EQ(events_.events.size(), 2u) << "an event on each stream that used it";
  EXPECT_EQ(cache_.stats().cached_bytes, kSize);
  EXPECT_EQ(cache_.take(kSize, kCompute), nullptr) << "the comm stream may still use it";
  events_.finish(kComm);
  EXPECT_EQ(cache_.take(kSize, kComm), nullptr) << "compute work queued before the free may still use it";
  EXPECT_EQ(cache_.take(kSize, kCompute), block(0)) << "only the compute stream's own work may be left";
  EXPECT_EQ(events_.recycled, 2);
  EXPECT_EQ(cache_.record_use(block(0), kComm), std::optional<int>(kCompute)) << "handed on in queue order";
}

TEST_F(BlockCacheTest, ABlockWhoseStreamsHaveAllRunIsAnyStreamsAtOnce) {
  cache_.add(block(0), kSize, kCompute);
  cache_.record_use(block(0), kComm);
  cache_.release(block(0));
  events_.finish(kComm), events_.finish(kCompute);
  EXPECT_EQ(cache_.take(kSize, 2), block(0));
  EXPECT_EQ(cache_.record_use(block(0), kComm), std::nullopt) << "settled: nothing to wait for";
}

TEST_F(BlockCacheTest, AnotherStreamsFirstUseWaitsForThePreviousOwnersWork) {
  cache_.add(block(0), kSize, kCompute);
  cache_.release(block(0));
  ASSERT_EQ(cache_.take(kSize, kCompute), block(0));  // by queue order: the last owner's kernels may still run
  EXPECT_EQ(cache_.record_use(block(0), kComm), std::optional<int>(kCompute));
  EXPECT_EQ(cache_.record_use(block(0), kComm), std::nullopt) << "once per stream";
  EXPECT_EQ(cache_.record_use(block(0), kCompute), std::nullopt) << "its own stream";
  EXPECT_EQ(cache_.record_use(static_cast<char*>(block(0)) + kSize, 2), std::nullopt) << "past its end";
  EXPECT_EQ(cache_.record_use(block(5), 2), std::nullopt) << "not a block of the cache";
}

// A destroyed stream (a pipeline communicator's, at exit the context's) gets no event after it is retired:
// its last work on each block is marked then, without waiting for it.
TEST_F(BlockCacheTest, ARetiredStreamsWorkIsMarkedWhenItIsRetired) {
  cache_.add(block(0), kSize, kCompute);
  cache_.record_use(block(0), kComm);
  cache_.retire(kComm);
  ASSERT_EQ(events_.events.size(), 1u) << "one last event on the retired stream";
  cache_.release(block(0));
  ASSERT_EQ(events_.events.size(), 2u);
  EXPECT_EQ(events_.events[1].first, kCompute) << "the live stream's event; none on the retired one";
  EXPECT_EQ(cache_.take(kSize, kCompute), nullptr) << "the retired stream's work may still run";
  events_.finish(kComm);
  EXPECT_EQ(cache_.take(kSize, kCompute), block(0));

  cache_.add(block(1), kSize, kCompute);
  cache_.release(block(1));  // freed by the compute stream's work alone
  cache_.retire(kCompute);
  EXPECT_EQ(cache_.take(kSize, kComm), nullptr);
  events_.finish(kCompute);
  EXPECT_EQ(cache_.take(kSize, kComm), block(1)) << "nothing of the retired stream's can still run";
}

TEST_F(BlockCacheTest, ANewStreamAtARetiredOnesAddressIsAStranger) {
  cache_.add(block(0), kSize, kCompute);
  cache_.record_use(block(0), kComm);
  cache_.release(block(0));
  events_.finish(kCompute);
  cache_.retire(kComm);
  EXPECT_EQ(cache_.take(kSize, kComm), nullptr) << "the old stream's work is not this one's to run first";
  events_.finish(kComm);
  EXPECT_EQ(cache_.take(kSize, kComm), block(0));
}

TEST_F(BlockCacheTest, DrainingEmptiesTheCachePendingBlocksIncluded) {
  for (int i = 0; i < 3; ++i) cache_.add(block(i), kSize, kCompute);
  cache_.record_use(block(1), kComm);
  cache_.release(block(0)), cache_.release(block(1));
  const std::vector<void*> drained = cache_.drain();
  EXPECT_EQ(drained.size(), 2u);
  EXPECT_EQ(cache_.stats().cached_bytes, 0u);
  EXPECT_EQ(cache_.stats().in_use_bytes, kSize);
  EXPECT_EQ(cache_.take(kSize, kCompute), nullptr);
}

TEST_F(BlockCacheTest, ABlockWhoseEventCannotBeRecordedIsNeverHandedOutAgain) {
  cache_.add(block(0), kSize, kCompute);
  cache_.record_use(block(0), kComm);
  events_.failing = true;
  cache_.release(block(0));
  events_.finish(kComm), events_.finish(kCompute);
  EXPECT_EQ(cache_.take(kSize, kCompute), nullptr);
  EXPECT_EQ(cache_.stats().cached_bytes, 0u);
}

// The convolution's algorithm cache (src/nn/cuda/conv2d.cpp): a training batch size, the evaluation batch
// and an epoch's short last batch each measured once, and backward only where a backward runs.
TEST(PerBatchAlgorithms, EachSizeIsMeasuredOnceAndBackwardOnlyWhenItRuns) {
  PerBatchAlgorithms<std::string, std::string> cache;
  int forward_searches = 0, backward_searches = 0;
  auto forward = [&](int64_t batch) -> const std::string& {
    return cache.forward(batch, [&] {
      ++forward_searches;
      return "fwd" + std::to_string(batch);
    });
  };
  auto backward = [&](int64_t batch) -> const std::string& {
    return cache.backward(batch, [&] {
      ++backward_searches;
      return "bwd" + std::to_string(batch);
    });
  };
  const std::string* first = &forward(64);
  for (int epoch = 0; epoch < 2; ++epoch) {
    for (int step = 0; step < 3; ++step) forward(64), backward(64);
    forward(17), backward(17);                // the short last batch
    forward(256), forward(256), forward(32);  // evaluation, with its own short last batch
  }
  EXPECT_EQ(forward_searches, 4);
  EXPECT_EQ(backward_searches, 2) << "evaluation-only sizes never search backward";
  EXPECT_EQ(cache.searches(), 6);
  EXPECT_EQ(&forward(64), first) << "a size's choice stays where it was, whatever sizes came later";
  EXPECT_EQ(*first, "fwd64");
  EXPECT_EQ(backward(17), "bwd17");
}

TEST(PerBatchAlgorithms, AFailedSearchIsTriedAgain) {
  PerBatchAlgorithms<int, int> cache;
  EXPECT_THROW(cache.forward(8, []() -> int { throw Error("out of memory"); }), Error);
  EXPECT_EQ(cache.forward(8, [] { return 3; }), 3);
  EXPECT_EQ(cache.searches(), 1);
}

class CudaEngine : public ::testing::Test {
 protected:
  void SetUp() override {
    const CudaProbe probe = probe_cuda();
    if (probe.device_count == 0) GTEST_SKIP() << probe.reason;
    use_cuda_device(0, Precision::fp32);
  }
  void TearDown() override {
    if (cuda_device_in_use()) use_cuda_device(0, Precision::fp32);
  }
};

double host_relative_error(const Tensor& g, const Tensor& cpu);

// max |gpu - cpu| / max |cpu|: errors relative to the tensor's scale.
double relative_error(const Tensor& gpu, const Tensor& cpu) {
  EXPECT_EQ(gpu.device(), Device::cuda);
  return host_relative_error(gpu.to(Device::cpu), cpu);
}

// The same of a GPU result already copied to the host.
double host_relative_error(const Tensor& g, const Tensor& cpu) {
  EXPECT_EQ(g.shape(), cpu.shape());
  if (g.numel() != cpu.numel()) return INFINITY;
  double worst = 0.0, scale = 1e-30;
  for (int64_t i = 0; i < cpu.numel(); ++i) {
    worst = std::max(worst, std::fabs(static_cast<double>(g[i]) - cpu[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(cpu[i])));
  }
  return worst / scale;
}

Shape batch_of(int64_t batch, const Shape& sample) {
  Shape s{batch};
  s.insert(s.end(), sample.begin(), sample.end());
  return s;
}

// Both models run a training forward and backward through every layer (input gradients included) on the
// same input of `batch` samples and output gradient, then an evaluation forward, and must agree on outputs,
// input gradients, parameter gradients and buffers.
// On input x: the same, where x is the models' input (token ids for a language model).
void expect_models_agree_on(Model& cpu, Model& gpu, const Tensor& x, double tol) {
  const Tensor x_gpu = x.to(Device::cuda);  // named: layers keep a pointer to their input until backward
  auto forward = [&](Mode mode) {
    const Tensor *hc = &x, *hg = &x_gpu;
    for (size_t i = 0; i < cpu.size(); ++i) hc = &cpu.layer(i).forward(*hc, mode), hg = &gpu.layer(i).forward(*hg, mode);
    EXPECT_LT(relative_error(*hg, *hc), tol) << (mode == Mode::train ? "train" : "eval") << " forward";
    return hc->shape();
  };
  cpu.zero_grad(), gpu.zero_grad();
  const Tensor dy = test::random_tensor(forward(Mode::train), 13);
  const Tensor dy_gpu = dy.to(Device::cuda);
  const Tensor *gc = &dy, *gg = &dy_gpu;
  for (size_t i = cpu.size(); i-- > 0;) gc = &cpu.layer(i).backward(*gc), gg = &gpu.layer(i).backward(*gg);
  if (gc->numel() > 0)
    EXPECT_LT(relative_error(*gg, *gc), tol) << "input gradient";
  else
    EXPECT_EQ(gg->numel(), 0) << "an embedding computes no input gradient";  // token ids have none
  const auto pc = cpu.named_params(), pg = gpu.named_params();
  ASSERT_EQ(pc.size(), pg.size());
  for (size_t i = 0; i < pc.size(); ++i) {
    EXPECT_EQ(pg[i].name, pc[i].name);
    EXPECT_LT(relative_error(pg[i].param->grad, pc[i].param->grad), tol) << pc[i].name << " gradient";
  }
  const auto bc = cpu.named_buffers(), bg = gpu.named_buffers();
  ASSERT_EQ(bc.size(), bg.size());
  for (size_t i = 0; i < bc.size(); ++i) EXPECT_LT(relative_error(*bg[i].tensor, *bc[i].tensor), tol) << bc[i].name;
  forward(Mode::eval);  // BatchNorm on its running statistics, dropout as identity
}

void expect_models_agree(Model& cpu, Model& gpu, const Shape& sample, int64_t batch, double tol) {
  SCOPED_TRACE("batch " + std::to_string(batch));
  expect_models_agree_on(cpu, gpu, test::spaced_tensor(batch_of(batch, sample), 11), tol);  // no ties at kinks
}

// The same spec built twice from one seed, once moved to the GPU, every input gradient switched on; `prepare`
// changes both alike before the move.
struct CpuGpuModels {
  CpuGpuModels(const std::string& spec, const Shape& sample, int64_t outputs = 0,
            const std::function<void(Model&)>& prepare = nullptr)
      : cpu(spec, sample, outputs, 7), gpu(spec, sample, outputs, 7) {
    for (Model* m : {&cpu, &gpu}) {
      for (size_t i = 0; i < m->size(); ++i) m->layer(i).set_input_grad_needed(true);
      if (prepare) prepare(*m);
    }
    gpu.to(Device::cuda);
  }
  Model cpu, gpu;
};

void expect_devices_agree(const std::string& spec, const Shape& sample, int64_t batch = 6, double tol = 1e-4,
                          int64_t outputs = 0) {
  SCOPED_TRACE(spec);
  CpuGpuModels m(spec, sample, outputs);
  expect_models_agree(m.cpu, m.gpu, sample, batch, tol);
}

TEST_F(CudaEngine, TensorsRoundTripAndTheAllocatorReusesBlocks) {
  const Tensor host = test::random_tensor({3, 5, 7}, 1);
  Tensor dev = host.to(Device::cuda);
  EXPECT_EQ(relative_error(dev, host), 0.0);
  dev.fill(2.5f);
  const Tensor back = dev.to(Device::cpu);
  for (int64_t i = 0; i < back.numel(); ++i) ASSERT_EQ(back[i], 2.5f);
  const int64_t mallocs = [] {
    Tensor a({1 << 20}, Device::cuda);  // freed at once: its block goes to the cache
    return device_memory_stats().cuda_mallocs;
  }();
  Tensor b({1 << 20}, Device::cuda);  // the same size again: served from the cache
  EXPECT_EQ(device_memory_stats().cuda_mallocs, mallocs);
  EXPECT_GE(device_memory_stats().in_use_bytes, size_t{4} << 20);
}

TEST_F(CudaEngine, LinearAgrees) {
  expect_devices_agree("linear(7)", {5});
  expect_devices_agree("linear(9,bias=0)", {2, 3, 4}, 4);
  expect_devices_agree("linear(7),relu", {5});  // the ReLU folded into the GEMM's epilogue
}

TEST_F(CudaEngine, ConvAgrees) {
  expect_devices_agree("conv(4,3,pad=1)", {3, 8, 8});
  expect_devices_agree("conv(5,3,stride=2),relu", {2, 9, 9});
  expect_devices_agree("conv(6,5,pad=2,bias=0)", {1, 7, 7});
}

// Training, evaluation and a short last batch alternate on the same layers: each batch size has its own
// descriptors and measured algorithms, and a backward uses its forward's.
TEST_F(CudaEngine, ConvAgreesAcrossAlternatingBatchSizes) {
  const Shape sample{2, 9, 9};
  CpuGpuModels m("conv(4,3,pad=1),relu,conv(3,3,stride=2),maxpool(2),batchnorm", sample);
  for (int64_t batch : {6, 4, 6, 2, 4}) expect_models_agree(m.cpu, m.gpu, sample, batch, 1e-4);
}

TEST_F(CudaEngine, PoolingAgrees) {
  expect_devices_agree("maxpool(2)", {3, 8, 8});
  expect_devices_agree("avgpool(2)", {3, 8, 8});
  expect_devices_agree("maxpool(3,stride=2)", {2, 9, 9});
}

// Padding: max pooling never picks a padded position (the CPU pads with -infinity), average pooling divides
// by the whole window, padding included (count_include_pad). Corner windows of a 2x2 kernel padded by 1
// hold a single input; torchvision's ResNet stem pools 3x3, stride 2, padded by 1.
TEST_F(CudaEngine, PaddedPoolingAgrees) {
  expect_devices_agree("maxpool(3,stride=2,pad=1)", {2, 9, 9});
  expect_devices_agree("avgpool(3,stride=2,pad=1)", {2, 9, 9});
  expect_devices_agree("maxpool(2,pad=1)", {3, 6, 6});
  expect_devices_agree("avgpool(2,pad=1)", {3, 7, 7});
  // Stride 3 over 6 padded by 1: the last input row and column are in no window.
  expect_devices_agree("maxpool(3,pad=1)", {2, 6, 6}, 3);
  expect_devices_agree("avgpool(3,pad=1)", {2, 6, 6}, 3);
}

TEST_F(CudaEngine, GlobalAvgPoolAgrees) {
  expect_devices_agree("globalavgpool", {3, 5, 5});
  expect_devices_agree("globalavgpool", {2, 1, 1}, 4);  // a plane of one value: one lane of the warp sums
  expect_devices_agree("globalavgpool", {5, 7, 9}, 3);  // 63 values: a lane sums two, the last lane one
  expect_devices_agree("conv(4,3,pad=1),globalavgpool,linear(3)", {2, 6, 6});
}

TEST_F(CudaEngine, ActivationsDropoutFlattenAgree) {
  expect_devices_agree("tanh", {10});
  expect_devices_agree("sigmoid", {10});
  expect_devices_agree("relu", {3, 4, 4});
  expect_devices_agree("leakyrelu(0.2)", {10});
  expect_devices_agree("elu(0.7)", {10});
  expect_devices_agree("gelu", {3, 4, 4});
  expect_devices_agree("dropout(0.3)", {50});  // counter-based masks: the same elements dropped on both
  expect_devices_agree("flatten", {2, 3, 4});
}

TEST_F(CudaEngine, BatchNormAgrees) {
  expect_devices_agree("batchnorm", {6}, 8);
  expect_devices_agree("batchnorm", {3, 4, 4}, 5);
}

// A ReLU after a batchnorm is folded into it (BatchNorm::fold_relu): the batchnorm clamps its output and
// masks its gradient, and the ReLU layer passes values through, on both devices. Forward in both modes.
TEST_F(CudaEngine, BatchNormWithFoldedReluAgrees) {
  using Case = std::tuple<std::string, Shape, int64_t, size_t>;  // spec, sample, batch, the batchnorm's index
  for (const auto& [spec, sample, batch, bn] : {Case{"batchnorm,relu", {6}, 8, 0},
                                                Case{"batchnorm,relu", {3, 4, 4}, 5, 0},
                                                Case{"conv(4,3,pad=1,bias=0),batchnorm,relu,conv(3,3,pad=1)", {2, 6, 6}, 4, 1}}) {
    SCOPED_TRACE(spec);
    CpuGpuModels m(spec, sample);
    const auto* folded = dynamic_cast<const BatchNorm*>(&m.cpu.layer(bn));
    ASSERT_NE(folded, nullptr);
    ASSERT_TRUE(folded->relu_folded()) << "the model did not fold the ReLU into its batchnorm";
    expect_models_agree(m.cpu, m.gpu, sample, batch, 1e-4);
  }
}

using test::samples_of;

// Sync batchnorm on the GPU (a CudaBatchNorm with a CrossReplicaSum runs our kernels, not cuDNN): two CUDA
// batchnorms on the two halves of a batch, paired as two replicas (test::PairedReplicas: a thread each, one
// running at a time), against one CPU batchnorm on the whole batch: outputs and input gradients of each
// half's samples, gamma's and beta's gradients added over the halves, the running statistics, and the
// evaluation forward on them. The halves are offset from each other, so either half's own statistics are
// far from the whole batch's. Replica 0's layer gets its sum on the CPU before the move (its CUDA twin takes
// it over), replica 1's after. A second training forward of the same halves must give bitwise the same
// output: the per-channel sums are deterministic.
TEST_F(CudaEngine, SyncBatchNormOnTwoHalvesAgreesWithTheWholeBatch) {
  using Case = std::tuple<std::string, Shape, int64_t>;  // spec, sample, samples per half
  for (const auto& [spec, sample, half] : {Case{"batchnorm", {6}, 4}, Case{"batchnorm", {3, 4, 5}, 3},
                                           Case{"batchnorm,relu", {6}, 4}, Case{"batchnorm,relu", {3, 4, 5}, 3}}) {
    SCOPED_TRACE(spec + " on " + shape_str(sample));
    Model whole(spec, sample, 0, 7), a(spec, sample, 0, 7), b(spec, sample, 0, 7);
    const int64_t channels = sample[0];
    const Tensor gamma = test::random_tensor({channels}, 3, 0.5f, 1.5f), beta = test::random_tensor({channels}, 4);
    for (Model* m : {&whole, &a, &b}) {
      for (size_t i = 0; i < m->size(); ++i) m->layer(i).set_input_grad_needed(true);
      m->params()[0]->value.copy_from(gamma);
      m->params()[1]->value.copy_from(beta);
    }
    const auto* bn = dynamic_cast<const BatchNorm*>(&whole.layer(0));
    ASSERT_NE(bn, nullptr);
    ASSERT_EQ(bn->relu_folded(), spec == "batchnorm,relu");
    test::PairedReplicas pair;
    a.layer(0).share_batch_statistics(&pair.side(0));
    a.to(Device::cuda), b.to(Device::cuda);
    b.layer(0).share_batch_statistics(&pair.side(1));

    Tensor x = test::spaced_tensor(batch_of(2 * half, sample), 11);
    const int64_t per_sample = x.numel() / x.dim(0), offset = half * per_sample;
    for (int64_t i = 0; i < x.numel(); ++i) x[i] = 3.0f + x[i] + (i < offset ? 0.0f : 1.5f);
    const Tensor dy = test::random_tensor(x.shape(), 12);
    // Only the batchnorms run: a folded ReLU's layer passes values through.
    const Tensor y = whole.layer(0).forward(x, Mode::train);
    const Tensor dx = whole.layer(0).backward(dy);
    const Tensor xa = samples_of(x, 0, half).to(Device::cuda), xb = samples_of(x, half, half).to(Device::cuda);
    const Tensor dya = samples_of(dy, 0, half).to(Device::cuda), dyb = samples_of(dy, half, half).to(Device::cuda);
    Tensor ya, yb, dxa, dxb;  // host copies
    auto step = [](Layer& layer, const Tensor& x, const Tensor& dy, Tensor& y, Tensor& dx) {
      y = layer.forward(x, Mode::train).to(Device::cpu);
      dx = layer.backward(dy).to(Device::cpu);
    };
    pair.run([&] { step(a.layer(0), xa, dya, ya, dxa); }, [&] { step(b.layer(0), xb, dyb, yb, dxb); });
    EXPECT_EQ(pair.sums(), 3) << "forward's two passes and backward's gradient sums";

    EXPECT_LT(host_relative_error(ya, samples_of(y, 0, half)), 1e-4) << "first half's output";
    EXPECT_LT(host_relative_error(yb, samples_of(y, half, half)), 1e-4) << "second half's output";
    EXPECT_LT(host_relative_error(dxa, samples_of(dx, 0, half)), 1e-4) << "first half's input gradient";
    EXPECT_LT(host_relative_error(dxb, samples_of(dx, half, half)), 1e-4) << "second half's input gradient";
    for (size_t p = 0; p < 2; ++p) {
      Tensor added = a.params()[p]->grad.to(Device::cpu);
      const Tensor other = b.params()[p]->grad.to(Device::cpu);
      for (int64_t c = 0; c < channels; ++c) added[c] += other[c];
      EXPECT_LT(host_relative_error(added, whole.params()[p]->grad), 1e-4) << whole.params()[p]->name << " gradient";
    }
    const auto want = whole.named_buffers();
    for (Model* m : {&a, &b}) {
      const auto got = m->named_buffers();
      ASSERT_EQ(got.size(), want.size());
      for (size_t k = 0; k < want.size(); ++k)
        EXPECT_LT(relative_error(*got[k].tensor, *want[k].tensor), 1e-4) << want[k].name;
    }
    // Evaluation sums nothing: cuDNN's inference on the running statistics, on this thread.
    const Tensor y_eval = whole.layer(0).forward(x, Mode::eval);
    EXPECT_LT(relative_error(a.layer(0).forward(xa, Mode::eval), samples_of(y_eval, 0, half)), 1e-4) << "evaluation";
    EXPECT_LT(relative_error(b.layer(0).forward(xb, Mode::eval), samples_of(y_eval, half, half)), 1e-4) << "evaluation";
    EXPECT_EQ(pair.sums(), 3);

    Tensor ya2, yb2;
    pair.run([&] { ya2 = a.layer(0).forward(xa, Mode::train).to(Device::cpu); },
             [&] { yb2 = b.layer(0).forward(xb, Mode::train).to(Device::cpu); });
    EXPECT_EQ(pair.sums(), 5);
    for (int64_t i = 0; i < ya.numel(); ++i) ASSERT_EQ(ya2[i], ya[i]) << "first half, element " << i;
    for (int64_t i = 0; i < yb.numel(); ++i) ASSERT_EQ(yb2[i], yb[i]) << "second half, element " << i;
  }
}

// Residual blocks, each the CPU's Residual (forward, backward, state) over CUDA parts: an identity shortcut,
// a projection shortcut (strided 1x1 conv and batchnorm), each with the ReLU after it folded into the block;
// a block without a ReLU after it, and one of linear layers (the ReLU inside folded into the first).
TEST_F(CudaEngine, ResidualBlocksAgree) {
  struct Case {
    std::string spec;
    Shape sample;
    bool relu;
  };
  const Case cases[] = {
      {"residual(conv(3,3,pad=1,bias=0),batchnorm,relu,conv(3,3,pad=1,bias=0),batchnorm),relu", {3, 6, 6}, true},
      {"residual(conv(4,3,stride=2,pad=1,bias=0),batchnorm,relu,conv(4,3,pad=1,bias=0),batchnorm,"
       "shortcut=conv(4,1,stride=2,bias=0),batchnorm),relu",
       {3, 7, 7},
       true},
      {"residual(conv(3,3,pad=1),tanh)", {3, 5, 5}, false},
      {"residual(linear(6),relu,linear(6))", {6}, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.spec);
    CpuGpuModels m(c.spec, c.sample);
    const auto* block = dynamic_cast<const Residual*>(&m.gpu.layer(0));
    ASSERT_NE(block, nullptr) << "the CUDA twin of a residual block is a Residual";
    const Layer& source = m.cpu.layer(0);
    EXPECT_EQ(block->kind(), "residual");
    EXPECT_EQ(block->spec(), source.spec());
    EXPECT_EQ(block->flops_per_sample(), source.flops_per_sample());
    EXPECT_EQ(block->relu_folded(), c.relu);
    EXPECT_EQ(block->identity_shortcut(), c.spec.find("shortcut=") == std::string::npos);
    expect_models_agree(m.cpu, m.gpu, c.sample, 4, 1e-4);
  }
}

TEST_F(CudaEngine, PresetModelsAgree) {
  expect_devices_agree("mlp", {1, 28, 28}, 16, 1e-4, 10);
  expect_devices_agree("cnn", {1, 28, 28}, 4, 1e-4, 10);
}

TEST_F(CudaEngine, LossesAgree) {
  // Cross-entropy without and with label smoothing, and MSE.
  for (const auto& [classification, smoothing] :
       {std::pair{true, 0.0f}, std::pair{true, 0.1f}, std::pair{false, 0.0f}}) {
    SCOPED_TRACE("label smoothing " + std::to_string(smoothing));
    auto cpu = make_loss(TargetSpace{classification}, Device::cpu, smoothing);
    auto gpu = make_loss(TargetSpace{classification}, Device::cuda, smoothing);
    const Tensor out = test::random_tensor({9, 10}, 3, -4.0f, 4.0f);
    Targets t, t_gpu;
    if (classification) {
      for (int i = 0; i < 9; ++i) t.labels.push_back((i * 7) % 10);
      t_gpu.labels = t.labels;  // uploaded by the loss itself (no device_labels)
    } else {
      t.values = test::random_tensor({9, 10}, 4);
      t_gpu.values = t.values.to(Device::cuda);
    }
    for (int step = 0; step < 2; ++step) {  // the running score adds batches until taken
      cpu->forward(out, t);
      gpu->forward(out.to(Device::cuda), t_gpu);
    }
    const Score sc = cpu->take_score(), sg = gpu->take_score();
    EXPECT_EQ(sg.samples, 18);
    EXPECT_NEAR(sg.loss_sum, sc.loss_sum, 1e-4 * std::fabs(sc.loss_sum));
    EXPECT_NEAR(sg.metric_sum, sc.metric_sum, 1e-4 * std::max(1.0, std::fabs(sc.metric_sum)));
    EXPECT_LT(relative_error(gpu->backward(0.5f), cpu->backward(0.5f)), 1e-5) << cpu->name();
    EXPECT_EQ(gpu->take_score().samples, 0);  // taking starts a new score
  }
}

TEST_F(CudaEngine, CrossEntropyRejectsLabelsOutOfRangeOnTheHost) {
  auto loss = make_loss(true, Device::cuda);
  Targets t;
  t.labels = {0, 3};
  EXPECT_THROW(loss->forward(Tensor({2, 3}, Device::cuda), t), Error);
}

TEST_F(CudaEngine, FusedOptimizersAgree) {
  OptimizerConfig sgd, nesterov, adam, adamw, rmsprop;
  sgd.weight_decay = 0.01f;
  nesterov.nesterov = true;
  adam.kind = OptimizerKind::adam;
  adam.weight_decay = 0.01f;
  adamw.kind = OptimizerKind::adamw;  // decoupled decay: on the kernel (the long tensor) alone
  adamw.weight_decay = 0.5f;
  rmsprop.kind = OptimizerKind::rmsprop;
  for (OptimizerConfig* c : {&sgd, &nesterov, &adam, &adamw, &rmsprop}) c->l1 = 0.02f;
  for (const OptimizerConfig& c : {sgd, nesterov, adam, adamw, rmsprop}) {
    SCOPED_TRACE(name_of(c.kind) + (c.nesterov ? " nesterov" : ""));
    // Two tensors, one spanning several of the kernel's chunks: that one a kernel, which --l1 penalises.
    std::vector<Param> cpu, gpu;
    for (int64_t n : {int64_t{37}, int64_t{200003}}) {
      cpu.push_back({"w", test::random_tensor({n}, n), Tensor({n}), n > 37});
      gpu.push_back({"w", cpu.back().value.to(Device::cuda), Tensor({n}, Device::cuda), n > 37});
    }
    std::vector<Param*> pc{&cpu[0], &cpu[1]}, pg{&gpu[0], &gpu[1]};
    auto oc = make_optimizer(c), og = make_optimizer(c, Device::cuda);
    for (int step = 0; step < 3; ++step) {
      for (size_t i = 0; i < cpu.size(); ++i) {
        cpu[i].grad = test::random_tensor(cpu[i].value.shape(), 100 + step * 10 + i);
        gpu[i].grad.copy_from(cpu[i].grad);
      }
      oc->step(pc, 0.01f);
      og->step(pg, 0.01f);
    }
    for (size_t i = 0; i < cpu.size(); ++i) EXPECT_LT(relative_error(gpu[i].value, cpu[i].value), 1e-5);
    ASSERT_EQ(oc->state_names(), og->state_names());
    EXPECT_EQ(oc->steps(), og->steps());
    const auto sc = oc->state(pc), sg = og->state(pg);
    for (size_t i = 0; i < sc.size(); ++i)
      for (size_t k = 0; k < sc[i].size(); ++k)
        EXPECT_LT(relative_error(*sg[i][k], *sc[i][k]), 1e-5) << oc->state_names()[k] << " of parameter " << i;
  }
}

// Clipping by global norm on the device (the sum of squares kept there) scales as the CPU's does, over
// tensors spanning several chunks; a norm within the bound leaves the gradients as they are.
TEST_F(CudaEngine, GradientClipAgrees) {
  for (float max_norm : {0.5f, 1e6f}) {
    SCOPED_TRACE(max_norm);
    std::vector<Tensor> cpu, gpu;
    for (int64_t n : {int64_t{37}, int64_t{200003}}) {
      cpu.push_back(test::random_tensor({n}, n));
      gpu.push_back(cpu.back().to(Device::cuda));
    }
    const std::vector<GradSpan> sc{{cpu[0].data(), 37}, {cpu[1].data(), 200003}},
        sg{{gpu[0].data(), 37}, {gpu[1].data(), 200003}};
    auto hc = make_gradient_clip(Device::cpu), hg = make_gradient_clip(Device::cuda);
    hc->measure(sc);
    hg->measure(sg);
    float sum_gpu = 0.0f;
    copy_bytes(&sum_gpu, Device::cpu, hg->sum_squares(), Device::cuda, sizeof sum_gpu);
    EXPECT_NEAR(sum_gpu, *hc->sum_squares(), 1e-5 * *hc->sum_squares());
    hc->clip(sc, max_norm);
    hg->clip(sg, max_norm);
    for (size_t i = 0; i < cpu.size(); ++i) EXPECT_LT(relative_error(gpu[i], cpu[i]), 1e-5) << i;
  }
}

// A checkpoint's optimizer state (taken on the CPU) loaded into a fresh GPU optimizer continues as the CPU
// one does; and the GPU's state reads back under the CPU's names.
TEST_F(CudaEngine, OptimizerStateMovesBetweenDevices) {
  OptimizerConfig c;
  c.kind = OptimizerKind::adam;
  Model cpu("flatten,linear(7),relu,linear(out)", {5}, 3, 2), gpu("flatten,linear(7),relu,linear(out)", {5}, 3, 2);
  auto oc = make_optimizer(c);
  for (Param* p : cpu.params()) p->grad = test::random_tensor(p->value.shape(), 3);
  oc->step(cpu.params(), 0.01f);
  OptimizerState state = zero_optimizer_state(oc->state_names(), cpu.params());
  copy_optimizer_state_out(*oc, cpu.params(), state);
  for (size_t i = 0; i < cpu.params().size(); ++i) gpu.params()[i]->value.copy_from(cpu.params()[i]->value);
  gpu.to(Device::cuda);
  auto og = make_optimizer(c, Device::cuda);
  copy_optimizer_state_in(state, 0, *og, gpu.params());
  for (size_t i = 0; i < cpu.params().size(); ++i) {
    cpu.params()[i]->grad = test::random_tensor(cpu.params()[i]->value.shape(), 10 + i);
    gpu.params()[i]->grad.copy_from(cpu.params()[i]->grad);
  }
  oc->step(cpu.params(), 0.01f);
  og->step(gpu.params(), 0.01f);
  OptimizerState back = zero_optimizer_state(og->state_names(), gpu.params());
  copy_optimizer_state_out(*og, gpu.params(), back);
  EXPECT_EQ(back.steps, 2);
  for (size_t i = 0; i < cpu.params().size(); ++i) {
    EXPECT_LT(relative_error(gpu.params()[i]->value, cpu.params()[i]->value), 1e-5) << i;
    for (size_t k = 0; k < 2; ++k) EXPECT_LT(relative_error(back.tensors[i][k], *oc->state(cpu.params())[i][k]), 1e-5);
  }
}

// The verdict stays on the device: the optimizer skips the bad step's update there (Adam's step count
// too), and the host learns of it when it reads the findings.
TEST_F(CudaEngine, NonFiniteGradientsSkipTheUpdateOnTheGpu) {
  Model model("flatten,linear(3),relu,linear(out)", {2}, 2, 1);
  model.to(Device::cuda);
  OptimizerConfig adam;
  adam.kind = OptimizerKind::adam;
  auto optimizer = make_optimizer(adam, Device::cuda);
  NonfiniteGuard guard(Device::cuda, true, NonfiniteGuard::Verdict::every_rank, model.named_params(), nullptr,
                       nullptr);
  optimizer->skip_update_when(guard.skip_flag());
  model.zero_grad();
  EXPECT_TRUE(guard.allow_update(1));
  optimizer->step(model.params(), 0.1f);
  const Tensor before = model.params()[3]->value.to(Device::cpu);
  Tensor bad({2});
  bad[1] = std::numeric_limits<float>::quiet_NaN();
  model.params()[3]->grad.copy_from(bad);
  EXPECT_TRUE(guard.allow_update(2));  // the optimizer reads the verdict itself
  optimizer->step(model.params(), 0.1f);
  const Tensor after = model.params()[3]->value.to(Device::cpu);
  for (int64_t i = 0; i < 2; ++i) EXPECT_EQ(after[i], before[i]);
  EXPECT_EQ(optimizer->steps(), 1);
  guard.settle();
  EXPECT_EQ(guard.skipped(), 1);

  NonfiniteGuard stopping(Device::cuda, false, NonfiniteGuard::Verdict::every_rank, model.named_params(), nullptr,
                          nullptr);
  EXPECT_TRUE(stopping.allow_update(3));
  try {
    stopping.settle();
    ADD_FAILURE() << "a non-finite gradient must stop the run";
  } catch (const CollectiveError& e) {
    EXPECT_NE(std::string(e.what()).find("in linear2/bias at step 3"), std::string::npos) << e.what();
  }
}

// Five SGD steps of the cnn preset: forward, backward and update on each device from the same start.
TEST_F(CudaEngine, TrainingStepsAgree) {
  const Shape sample{1, 28, 28};
  Model cpu("cnn", sample, 10, 3), gpu("cnn", sample, 10, 3);
  gpu.to(Device::cuda);
  auto lc = make_loss(true), lg = make_loss(true, Device::cuda);
  OptimizerConfig c;
  auto oc = make_optimizer(c), og = make_optimizer(c, Device::cuda);
  for (int step = 0; step < 5; ++step) {
    const Tensor x = test::random_tensor(batch_of(8, sample), 50 + step);
    Targets t;
    for (int i = 0; i < 8; ++i) t.labels.push_back((i + step) % 10);
    cpu.zero_grad(), gpu.zero_grad();
    lc->forward(cpu.forward(x, Mode::train), t);
    const Tensor x_gpu = x.to(Device::cuda);  // alive until backward: the first conv keeps a pointer to it
    lg->forward(gpu.forward(x_gpu, Mode::train), t);
    cpu.backward(lc->backward(1.0f));
    gpu.backward(lg->backward(1.0f));
    oc->step(cpu.params(), 0.05f);
    og->step(gpu.params(), 0.05f);
  }
  const auto pc = cpu.named_params(), pg = gpu.named_params();
  for (size_t i = 0; i < pc.size(); ++i) EXPECT_LT(relative_error(pg[i].param->value, pc[i].param->value), 1e-4) << pc[i].name;
  const double cpu_loss = lc->take_score().loss_sum;
  EXPECT_NEAR(lg->take_score().loss_sum, cpu_loss, 1e-4 * cpu_loss);
}

// One training step of the resnet20 preset (a batchnorm+ReLU stem, nine residual blocks, two with projection
// shortcuts, a global average pool, a linear head) on 28x28 images: forward, loss, backward and an SGD step
// with momentum from the same weights. Outputs, the loss, every parameter gradient, the updated weights and
// the running statistics agree.
// A ReLU input within rounding of 0 may fall on different sides on the two devices, and then its whole
// gradient differs (a few percent of a weight gradient's scale here). So the batch is small (2 samples,
// 290k ReLU inputs) and the seeds were picked on the CPU, the best of 40 x 40 pairs: no ReLU input of this
// training forward is within 3.5e-5 of 0, where a typical pair's closest is 4e-6. On the CPU, weights
// perturbed by 1e-6 of themselves (more than fp32 rounding differences) move no input across and every
// gradient by at most 2e-5.
TEST_F(CudaEngine, Resnet20TrainingStepAgrees) {
  const Shape sample{1, 28, 28};
  constexpr int64_t kBatch = 2;
  Model cpu("resnet20", sample, 10, 30), gpu("resnet20", sample, 10, 30);
  gpu.to(Device::cuda);
  auto lc = make_loss(true), lg = make_loss(true, Device::cuda);
  OptimizerConfig c;
  auto oc = make_optimizer(c), og = make_optimizer(c, Device::cuda);
  const Tensor x = test::spaced_tensor(batch_of(kBatch, sample), 87);
  const Tensor x_gpu = x.to(Device::cuda);  // alive until backward: the first conv keeps a pointer to it
  Targets t;
  for (int64_t i = 0; i < kBatch; ++i) t.labels.push_back(static_cast<int32_t>((3 * i + 1) % 10));
  cpu.zero_grad(), gpu.zero_grad();
  const Tensor& yc = cpu.forward(x, Mode::train);
  const Tensor& yg = gpu.forward(x_gpu, Mode::train);
  EXPECT_LT(relative_error(yg, yc), 1e-4) << "output";
  lc->forward(yc, t);
  lg->forward(yg, t);
  cpu.backward(lc->backward(1.0f));
  gpu.backward(lg->backward(1.0f));
  const auto pc = cpu.named_params(), pg = gpu.named_params();
  ASSERT_EQ(pc.size(), pg.size());
  ASSERT_EQ(pc.size(), size_t{65});  // 21 convs without bias, 21 batchnorms' weight and bias, the head's 2
  for (size_t i = 0; i < pc.size(); ++i) {
    EXPECT_EQ(pg[i].name, pc[i].name);
    EXPECT_LT(relative_error(pg[i].param->grad, pc[i].param->grad), 1e-4) << pc[i].name << " gradient";
  }
  oc->step(cpu.params(), 0.05f);
  og->step(gpu.params(), 0.05f);
  for (size_t i = 0; i < pc.size(); ++i)
    EXPECT_LT(relative_error(pg[i].param->value, pc[i].param->value), 1e-4) << pc[i].name << " after the step";
  const auto bc = cpu.named_buffers(), bg = gpu.named_buffers();
  ASSERT_EQ(bc.size(), bg.size());
  for (size_t i = 0; i < bc.size(); ++i) EXPECT_LT(relative_error(*bg[i].tensor, *bc[i].tensor), 1e-4) << bc[i].name;
  const double cpu_loss = lc->take_score().loss_sum;
  EXPECT_NEAR(lg->take_score().loss_sum, cpu_loss, 1e-4 * cpu_loss);
}

TEST_F(CudaEngine, Tf32AndBf16StayCloseToFp32) {
  for (Precision p : {Precision::tf32, Precision::bf16}) {
    use_cuda_device(0, p);  // layers made from now on compute in p
    SCOPED_TRACE(name_of(p));
    expect_devices_agree("linear(64),relu,linear(10)", {256}, 32, 2e-2);
    expect_devices_agree("conv(8,3,pad=1),relu", {4, 12, 12}, 4, 2e-2);
    expect_devices_agree("block(4),layernorm,linear(10,per_token=1)", {32, 64}, 4, 2e-2);  // attention's too
  }
}

// A pipeline stage's pattern with micro-batches of two sizes: both forwards, each one's state traded into a
// fresh stash (empty tensors), then the backwards in the opposite order. Returns the input gradients (the
// second micro-batch's first) and then every parameter gradient. The model ends in 4 outputs.
std::vector<Tensor> stashed_round_trip(Model& model, Device device, const Shape& sample) {
  Tensor input({0}, device);  // one object every micro-batch enters through, as a stage's
  ForwardState state;
  state.tensors.push_back(&input);
  state.append(model.forward_state(model.all_layers()));
  ForwardStash stash[2] = {ForwardStash(state), ForwardStash(state)};
  const int64_t rows[2] = {3, 5};
  model.zero_grad();
  for (int k = 0; k < 2; ++k) {
    input.copy_from(test::spaced_tensor(batch_of(rows[k], sample), 20 + k));
    model.forward(input, Mode::train);
    trade(state, stash[k]);
  }
  std::vector<Tensor> out;
  for (int k = 1; k >= 0; --k) {
    trade(state, stash[k]);
    const Tensor dy = test::random_tensor({rows[k], 4}, 30 + k).to(device);
    out.push_back(model.backward(dy, model.all_layers()));
  }
  for (Param* p : model.params()) out.push_back(p->grad);
  return out;
}

void expect_stashed_round_trips_agree(const std::string& spec, const Shape& sample) {
  SCOPED_TRACE(spec);
  CpuGpuModels m(spec, sample, 4);
  const std::vector<Tensor> cpu = stashed_round_trip(m.cpu, Device::cpu, sample),
                            gpu = stashed_round_trip(m.gpu, Device::cuda, sample);
  ASSERT_EQ(cpu.size(), gpu.size());
  for (size_t i = 0; i < cpu.size(); ++i) EXPECT_LT(relative_error(gpu[i], cpu[i]), 1e-4) << "result " << i;
}

// BatchNorm's saved statistics must be sized again when they come from a stash, and every cuDNN descriptor
// must describe the micro-batch that is backpropagated, not the last forward's. The GPU must agree with the
// CPU doing the same.
TEST_F(CudaEngine, StashedMicroBatchesOfTwoSizesAgree) {
  expect_stashed_round_trips_agree("conv(3,3,pad=1),batchnorm,relu,maxpool(2),batchnorm,linear(out)", {2, 6, 6});
}

// The same through residual blocks (identity and projection shortcuts, folded ReLUs), a padded max pool and a
// global average pool: a block's forward state is its parts' and its own output (its folded ReLU's mask), and
// a batchnorm's folded ReLU masks with the output of the micro-batch it backpropagates.
TEST_F(CudaEngine, StashedMicroBatchesThroughResidualBlocksAgree) {
  expect_stashed_round_trips_agree(
      "conv(4,3,pad=1,bias=0),batchnorm,relu,"
      "residual(conv(4,3,pad=1,bias=0),batchnorm,relu,conv(4,3,pad=1,bias=0),batchnorm),relu,"
      "residual(conv(6,3,stride=2,pad=1,bias=0),batchnorm,relu,conv(6,3,pad=1,bias=0),batchnorm,"
      "shortcut=conv(6,1,stride=2,bias=0),batchnorm),relu,"
      "maxpool(3,stride=2,pad=1),globalavgpool,linear(out)",
      {2, 8, 8});
}

// ---- the GPT layers ----

// Token ids in [0, vocabulary) as a language model reads them: floats, [batch, T].
Tensor token_batch(int64_t batch, int64_t t_len, int64_t vocabulary, uint64_t seed) {
  Rng rng(seed);
  Tensor x({batch, t_len});
  for (int64_t i = 0; i < x.numel(); ++i) x[i] = static_cast<float>(rng.below(static_cast<uint64_t>(vocabulary)));
  return x;
}

// GPT-2's N(0, 0.02) weights scaled up (attention far from uniform, so that its softmax matters), and norms and
// biases moved off 1 and 0 by varying amounts.
void sharpen(Model& model) {
  for (Param* p : model.params())
    for (int64_t i = 0; i < p->value.numel(); ++i)
      p->value[i] = p->kernel ? 10.0f * p->value[i] : p->value[i] + 0.05f * static_cast<float>(i % 7 - 3);
}

void expect_token_models_agree(CpuGpuModels& m, int64_t batch, int64_t t_len, int64_t vocabulary) {
  expect_models_agree_on(m.cpu, m.gpu, token_batch(batch, t_len, vocabulary, 5), 1e-4);
}

// Each GPT layer alone against the CPU's on the same weights: outputs, input gradients and every parameter
// gradient. 37 tokens: causal rows longer than a warp, and not a multiple of it; 3 heads of 4 channels.
TEST_F(CudaEngine, TransformerLayersAgree) {
  for (const char* spec : {"embedding(50,12,context=40)"}) {
    SCOPED_TRACE(spec);
    CpuGpuModels m(spec, {37}, 0, sharpen);
    expect_token_models_agree(m, 3, 37, 50);
  }
  const Shape sample{37, 12};
  for (const char* spec : {"layernorm", "attention(3)", "attention(3,dropout=0.3)", "linear(7,per_token=1)",
                           "linear(5,per_token=1,bias=0)", "block(3)", "block(3,dropout=0.2)"}) {
    SCOPED_TRACE(spec);
    CpuGpuModels m(spec, sample, 0, sharpen);
    expect_models_agree(m.cpu, m.gpu, sample, 3, 1e-4);
  }
}

// The output head tied to the embedding's token table: on the GPU it reads the embedding twin's table (Model::to
// links them again), lists no weight of its own, and adds its gradient into the table's.
TEST_F(CudaEngine, TiedHeadReadsAndTrainsTheEmbeddingTwinsTable) {
  const std::string spec = "embedding(out,12,context=16),block(2),layernorm,linear(out,per_token=1,bias=0,tied=1)";
  CpuGpuModels m(spec, {9}, 13, sharpen);
  ASSERT_TRUE(m.gpu.has_tied_weights());
  EXPECT_EQ(m.gpu.parameter_count(), m.cpu.parameter_count());
  expect_token_models_agree(m, 2, 9, 13);  // the table's gradient: the embedding's scatter and the head's GEMM
  Param* table = m.gpu.named_params().front().param;
  ASSERT_EQ(m.gpu.named_params().front().name, "embedding1/token");
  EXPECT_EQ(relative_error(table->value, m.cpu.named_params().front().param->value), 0.0) << "round trip";
  // A table changed on the device changes the head's output: it reads the twin's table, not a copy.
  const Tensor x = token_batch(2, 9, 13, 6).to(Device::cuda);
  const Tensor before = m.gpu.forward(x, Mode::eval).to(Device::cpu);
  Tensor doubled = table->value.to(Device::cpu);
  for (int64_t i = 0; i < doubled.numel(); ++i) doubled[i] *= 2.0f;
  table->value.copy_from(doubled);
  const Tensor after = m.gpu.forward(x, Mode::eval).to(Device::cpu);
  double change = 0.0;
  for (int64_t i = 0; i < after.numel(); ++i)
    change = std::max(change, std::fabs(static_cast<double>(after[i]) - before[i]));
  EXPECT_GT(change, 1e-3);
}

// A model built for 9 tokens on windows of 5 (generation's shorter prompts), forward and backward, dropout
// masks included (their counters index [batch, H, 5, 5]).
TEST_F(CudaEngine, ShorterWindowsAgree) {
  CpuGpuModels m("embedding(out,12,context=16),block(3,dropout=0.2),layernorm,linear(out,per_token=1)", {9}, 13,
                 sharpen);
  expect_token_models_agree(m, 2, 5, 13);
}

TEST_F(CudaEngine, EmbeddingRefusesTokensOutsideTheVocabularyWithTheCpusLine) {
  Model model("embedding(256,4,context=8)", {8}, 0, 1);
  model.to(Device::cuda);
  Tensor x = token_batch(2, 8, 256, 1);
  x[13] = 300.0f;
  const Tensor x_gpu = x.to(Device::cuda);
  EXPECT_EQ(test::error_of([&] { model.forward(x_gpu, Mode::train); }),
            "token id 300 at position 5 is outside the vocabulary of 256");
  x[13] = 2.5f;
  x[14] = -1.0f;
  const Tensor x2_gpu = x.to(Device::cuda);
  EXPECT_EQ(test::error_of([&] { model.forward(x2_gpu, Mode::train); }),
            "token id 2.5 at position 5 is outside the vocabulary of 256") << "the first bad id";
}

// gpt-tiny (4 blocks, 4 heads, 128 channels) on a [2, 32] batch of bytes: logits, the cross-entropy over every
// position, and every parameter gradient of that loss.
TEST_F(CudaEngine, GptTinyForwardBackwardAndLossAgree) {
  constexpr int64_t kBatch = 2, kTime = 32, kVocabulary = 256;
  Model cpu("gpt-tiny", {kTime}, kVocabulary, 3), gpu("gpt-tiny", {kTime}, kVocabulary, 3);
  gpu.to(Device::cuda);
  const Tensor x = token_batch(kBatch, kTime, kVocabulary, 8);
  const Tensor x_gpu = x.to(Device::cuda);
  Targets t;
  const Tensor next = token_batch(kBatch, kTime, kVocabulary, 9);
  for (int64_t i = 0; i < next.numel(); ++i) t.labels.push_back(static_cast<int32_t>(next[i]));
  auto lc = make_loss(true), lg = make_loss(true, Device::cuda);
  cpu.zero_grad(), gpu.zero_grad();
  const Tensor& yc = cpu.forward(x, Mode::train);
  const Tensor& yg = gpu.forward(x_gpu, Mode::train);
  ASSERT_EQ(yg.shape(), (Shape{kBatch, kTime, kVocabulary}));
  EXPECT_LT(relative_error(yg, yc), 1e-4) << "logits";
  lc->forward(yc, t);
  lg->forward(yg, t);
  cpu.backward(lc->backward(1.0f));
  gpu.backward(lg->backward(1.0f));
  const Score sc = lc->take_score(), sg = lg->take_score();
  EXPECT_EQ(sg.samples, kBatch * kTime) << "tokens are the samples";
  EXPECT_NEAR(sg.loss_sum, sc.loss_sum, 1e-4 * sc.loss_sum);
  const auto pc = cpu.named_params(), pg = gpu.named_params();
  ASSERT_EQ(pc.size(), pg.size());
  for (size_t i = 0; i < pc.size(); ++i) {
    EXPECT_EQ(pg[i].name, pc[i].name);
    EXPECT_LT(relative_error(pg[i].param->grad, pc[i].param->grad), 1e-4) << pc[i].name << " gradient";
  }
}

// A pipeline stage's micro-batches through blocks with dropout: each backward follows its own forward's masks,
// probabilities and statistics.
TEST_F(CudaEngine, StashedMicroBatchesThroughTransformerBlocksAgree) {
  expect_stashed_round_trips_agree("block(2,dropout=0.2),layernorm,block(2),linear(4)", {6, 8});
}

#ifdef RINGTRAIN_HAVE_CUDA
// Holds a stream on a host function until the object goes: work queued on it after that has not run.
class StalledStream {
 public:
  explicit StalledStream(cudaStream_t stream) : stream_(stream) {
    cuda::check(cudaLaunchHostFunc(stream, wait_for_go, &go_), "cudaLaunchHostFunc");
  }
  ~StalledStream() {
    go_ = true;
    cudaStreamSynchronize(stream_);
  }

 private:
  static void wait_for_go(void* go) {  // on CUDA's host-function thread; it must call no CUDA function
    while (!static_cast<std::atomic<bool>*>(go)->load()) std::this_thread::yield();
  }

  cudaStream_t stream_;
  std::atomic<bool> go_{false};
};
#endif

// The fusion buffer's case on the device: a buffer the comm stream uses is freed while that stream is still
// busy; its block goes to no one until the comm stream's work has run, and nobody waited on the host.
TEST_F(CudaEngine, AFreedBlockWaitsForTheOtherStreamThatUsedIt) {
#ifdef RINGTRAIN_HAVE_CUDA
  constexpr size_t kBytes = size_t{37} << 20;  // a size no other test leaves in the cache
  const void* used = nullptr;
  int64_t mallocs = 0;
  {
    const StalledStream stalled(cuda::context().comm());
    {
      DeviceBuffer fusion(kBytes);
      used = fusion.get();
      cuda::record_stream(fusion.get(), cuda::context().comm());
    }  // freed: the stalled comm stream may still reduce in it
    mallocs = device_memory_stats().cuda_mallocs;
    DeviceBuffer next(kBytes);
    EXPECT_NE(next.get(), used) << "handed out while the comm stream may still use it";
    EXPECT_EQ(device_memory_stats().cuda_mallocs, mallocs + 1);
  }  // the comm stream runs
  DeviceBuffer a(kBytes), b(kBytes);
  EXPECT_TRUE(a.get() == used || b.get() == used) << "settled once the comm stream's work has run";
  EXPECT_EQ(device_memory_stats().cuda_mallocs, mallocs + 1);
#endif
}

// cudaEventQuery's "not ready" is the thread's last runtime error until cleared: a query of a busy stream's
// event (a pipeline's Transfer::test, the allocator's pending blocks) must not make the next kernel's launch
// check fail.
TEST_F(CudaEngine, ABusyEventLeavesNoErrorForTheNextLaunch) {
#ifdef RINGTRAIN_HAVE_CUDA
  const StalledStream stalled(cuda::context().upload());
  const cuda::Event busy;
  cuda::check(cudaEventRecord(busy, cuda::context().upload()), "cudaEventRecord");
  EXPECT_FALSE(cuda::event_done(busy));
  Tensor t({100}, Device::cuda);
  EXPECT_NO_THROW(t.fill(1.5f));  // a kernel launch, checked
#endif
}

TEST_F(CudaEngine, BatchesArriveOnTheDeviceIntact) {
  test::TempDir dir;
  const std::string path = dir.path("train-00000.h5");
  test::write_classification_shard(path, 50, {2, 3}, 4, 9);
  const ShardSet set = ShardSet::open(path);
  LoaderConfig c;
  c.batch = 8;
  c.shuffle = false;
  c.drop_last = false;
  BatchLoader host_loader(set, c), device_loader(set, c);
  DeviceBatches host(host_loader, Device::cpu), device(device_loader, Device::cuda);
  host.start_epoch(0), device.start_epoch(0);
  int batches = 0;
  while (const Batch* h = host.next()) {
    const Batch* d = device.next();
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(relative_error(d->x, h->x), 0.0);
    EXPECT_EQ(d->y.labels, h->y.labels);
    std::vector<int32_t> labels(h->y.labels.size());
    copy_bytes(labels.data(), Device::cpu, d->y.device_labels.get(), Device::cuda, labels.size() * sizeof(int32_t));
    EXPECT_EQ(labels, h->y.labels);
    ++batches;
  }
  EXPECT_EQ(device.next(), nullptr);
  EXPECT_EQ(batches, 7);  // 6 of 8 and the last 2
}

}  // namespace
}  // namespace ringtrain
