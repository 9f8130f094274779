// Helpers shared by the unit tests: temporary directories, random tensors, tiny shard writers and a
// central-difference gradient check.
#pragma once
#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ringtrain/comm/mpi_communicator.hpp"
#include "ringtrain/data/shard.hpp"
#include "ringtrain/nn/cross_replica_sum.hpp"
#include "ringtrain/nn/layer.hpp"
#include "ringtrain/nn/loss.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/rng.hpp"
#include "ringtrain/train/config.hpp"

namespace ringtrain::test {

// A fresh directory under the build tree's temp area, removed when the object goes.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  std::string path(const std::string& name = "") const { return (dir_ / name).string(); }

 private:
  std::filesystem::path dir_;
};

// The one-line message of the Error `f` throws, or "" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// The score of one forward of `loss` alone (anything still in its running score is dropped first).
inline Score score_of(Loss& loss, const Tensor& out, const Targets& targets) {
  loss.take_score();
  loss.forward(out, targets);
  return loss.take_score();
}

Tensor random_tensor(const Shape& shape, uint64_t seed, float lo = -1.0f, float hi = 1.0f);
// Distinct values evenly spaced over (-1, 1), shuffled and none at 0: for layers with kinks (ReLU, max
// pooling), so that a finite-difference step of less than half the spacing never crosses a kink.
Tensor spaced_tensor(const Shape& shape, uint64_t seed);

// A classification shard of `samples` float samples of shape `sample_shape` with labels i % classes.
void write_classification_shard(const std::string& path, int64_t samples, const Shape& sample_shape,
                                int64_t classes, uint64_t seed, int64_t first_label = 0);
// A token shard of `samples` windows of `context` token ids below `vocabulary`, cut from one random stream,
// each labelled with the next token at every position (y [samples, context]), as prep --format text writes.
void write_token_shard(const std::string& path, int64_t samples, int64_t context, int64_t vocabulary, uint64_t seed);

// Max relative error between the analytic gradient of L = sum(w .* f(x)) w.r.t. `wrt` and central
// differences, where f = the layer's forward and w is fixed random. Param gradients are compared when
// `param` is non-null, else the input gradient.
double gradient_error(Layer& layer, Tensor& x, Param* param, Mode mode = Mode::train, float eps = 1e-2f);
// The most gradient_error may be for a float32 layer: central differences in float32 carry about 1e-3.
constexpr double kGradientTolerance = 2e-3;

// Two replicas of a sync batchnorm (Layer::share_batch_statistics) in one process, for the tests that split a
// batch in halves: side(0) and side(1) are the two replicas' CrossReplicaSums, and each sum() returns both
// sides' values added. A sum is collective, so run() gives each replica a thread and lets one run at a time:
// replica 0 runs up to its first sum, replica 1 up to its first (which completes the sum for both), replica 0
// up to its next, and so on. The turns make it deterministic, and nothing runs concurrently (the CUDA
// layers' stream and buffers see one caller at a time).
class PairedReplicas {
 public:
  PairedReplicas();
  ~PairedReplicas();
  CrossReplicaSum& side(int i);
  // Runs `first` as replica 0 and `second` as replica 1 until both return, and rethrows the first exception
  // either threw. A sum the other replica never joins (it returned or threw first) throws Error, so a broken
  // layer fails the test instead of hanging it.
  void run(const std::function<void()>& first, const std::function<void()>& second);
  int sums() const { return sums_; }  // completed since construction

 private:
  class Side;
  void sum(int side, double* values, size_t count);
  // Hands the turn to the other replica and waits for it to come back; returns at once when the other has
  // finished. Called with mutex_ held (the lock).
  void hand_over(int side, std::unique_lock<std::mutex>& lock);

  std::unique_ptr<Side> sides_[2];
  std::mutex mutex_;
  std::condition_variable turn_changed_;
  int turn_ = 0;
  bool finished_[2] = {false, false};
  bool waiting_ = false;         // a replica has put its values in pending_ and waits for the other's
  std::vector<double> pending_;  // its values, then the sum
  int sums_ = 0;
};

// Collective over `world`: starts the CUDA engine on every rank's own GPU, chosen as the trainer chooses
// (the one GPU a launcher left the rank, as srun --gpus-per-task=1 does, else its local rank's), and returns
// "", or returns why not (no GPU, or ranks that would share one: NCCL refuses two ranks on one GPU).
std::string start_gpu_per_rank(Communicator& world);
// The decision behind it: `placements` holds each rank's "<host> <PCI bus id>" of the GPU it started, or ""
// where it started none. "" when every rank has a GPU of its own, else why not.
std::string gpu_per_rank_problem(const std::vector<std::string>& placements);

// Every rank of the test program (MPI_COMM_WORLD, ring allreduce); release_world() before MPI_Finalize.
MpiCommunicator& world();
void release_world();

// Token windows for the language-model tests: `context` ids below `vocabulary` per sample.
struct TokenWindows {
  int64_t context = 8;
  int64_t vocabulary = 16;
};

// A dataset every rank can read (train 320 samples in two shards, test 50): rank 0 writes it, the path is
// broadcast, rank 0 removes it at the end. Collective. Samples of `sample_shape` in 3 classes, or token windows.
class SharedDataset {
 public:
  explicit SharedDataset(const Shape& sample_shape);
  explicit SharedDataset(const TokenWindows& tokens);
  ~SharedDataset();
  const std::string& path() const { return path_; }

 private:
  // Rank 0 writes each shard with write(path, samples, seed).
  explicit SharedDataset(const std::function<void(const std::string&, int64_t, uint64_t)>& write);

  std::unique_ptr<TempDir> dir_;
  std::string path_;
};

// Samples [begin, begin + count) of a host batch.
Tensor samples_of(const Tensor& t, int64_t begin, int64_t count);

// A small residual network for [2, 6, 6] samples, for the N-ranks-equal-one-rank tests of every mode: an
// identity block with a ReLU folded into its sum and a strided block with a projection shortcut; no
// batchnorm, whose statistics are each rank's own batch's.
inline constexpr const char* kResidualNet =
    "conv(4,3,pad=1),relu,residual(conv(4,3,pad=1),relu,conv(4,3,pad=1)),relu,"
    "residual(conv(6,3,stride=2,pad=1),tanh,conv(6,3,pad=1),shortcut=conv(6,1,stride=2)),globalavgpool,linear(out)";

// A small GPT for TokenWindows{} (context 8): two pre-LayerNorm blocks of 2 heads, each a layer of its own to
// the pipeline's balancer, and a head per position. kTinyTiedGpt reads its output weights from the embedding.
inline constexpr const char* kTinyGpt =
    "embedding(out,8,context=8),block(2),block(2),layernorm,linear(out,per_token=1)";
inline constexpr const char* kTinyTiedGpt =
    "embedding(out,8,context=8),block(2),block(2),layernorm,linear(out,per_token=1,bias=0,tied=1)";

// What the training tests vary; the rest of their TrainConfig is the same small run.
struct SmallRun {
  std::string model = "flatten,linear(8),relu,linear(out)";
  int64_t batch = 4;  // per rank
  int64_t epochs = 1;
  int64_t steps = 0;  // --steps; 0: every epoch
  float lr = 0.05f;
  OptimizerKind optimizer = OptimizerKind::sgd;
  float momentum = 0.9f;
  float weight_decay = 0.0f;
};
// A TrainConfig of `run` on the shards in `data_dir`; each test then sets what it is about.
TrainConfig train_config(const std::string& data_dir, const SmallRun& run = {});

// The whole file; "" when it cannot be read.
std::string read_text(const std::string& path);
// Runs the ringtrain binary with arguments (and `env`, shell assignments such as "RINGTRAIN_CPU=portable",
// in its environment); returns the exit code and fills stdout/stderr text.
int run_cli(const std::string& args, std::string* out, std::string* err, const std::string& env = "");

// Every parameter's values, in model order, as one host vector (from any device).
std::vector<float> flat_weights(const std::vector<Param*>& params);
// The largest element-wise difference of two such vectors (a failed expectation, and infinity, when their
// sizes differ).
double largest_difference(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace ringtrain::test
