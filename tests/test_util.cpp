#include "test_util.hpp"

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/train/device_choice.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

namespace ringtrain::test {

TempDir::TempDir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "ringtrain";
  static int counter = 0;
  dir_ = std::filesystem::temp_directory_path() /
         ("ringtrain-test-" + std::to_string(::getpid()) + "-" + name + "-" + std::to_string(counter++));
  std::filesystem::remove_all(dir_);
  std::filesystem::create_directories(dir_);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

Tensor spaced_tensor(const Shape& shape, uint64_t seed) {
  Tensor t(shape);
  std::vector<int64_t> order(static_cast<size_t>(t.numel()));
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  Rng rng(seed);
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
  const float step = 2.0f / static_cast<float>(t.numel());
  for (int64_t i = 0; i < t.numel(); ++i)
    t[i] = -1.0f + step * (static_cast<float>(order[static_cast<size_t>(i)]) + 0.5f);
  return t;
}

Tensor random_tensor(const Shape& shape, uint64_t seed, float lo, float hi) {
  Tensor t(shape);
  Rng rng(seed);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = rng.uniform(lo, hi);
  return t;
}

void write_classification_shard(const std::string& path, int64_t samples, const Shape& sample_shape,
                                int64_t classes, uint64_t seed, int64_t first_label) {
  ShardMeta meta;
  meta.samples = samples;
  meta.sample_shape = sample_shape;
  meta.x_type = PixelType::f32;
  meta.num_classes = classes;
  ShardData data;
  Rng rng(seed);
  for (int64_t i = 0; i < samples * shape_numel(sample_shape); ++i) data.x_f32.push_back(rng.uniform(-1.0f, 1.0f));
  for (int64_t i = 0; i < samples; ++i) data.labels.push_back((first_label + i) % classes);
  write_shard(path, meta, data);
}

void write_token_shard(const std::string& path, int64_t samples, int64_t context, int64_t vocabulary,
                       uint64_t seed) {
  ShardMeta meta;
  meta.samples = samples;
  meta.sample_shape = {context};
  meta.tokens = context;
  meta.num_classes = vocabulary;
  // Byte ids where they fit, as prep --format text stores text; float32 ids above.
  meta.x_type = vocabulary <= 256 ? PixelType::u8 : PixelType::f32;
  Rng rng(seed);
  std::vector<int64_t> stream(static_cast<size_t>(samples * context + 1));
  for (int64_t& id : stream) id = static_cast<int64_t>(rng.below(static_cast<uint64_t>(vocabulary)));
  ShardData data;
  for (int64_t i = 0; i < samples * context; ++i) {
    const int64_t id = stream[static_cast<size_t>(i)];
    if (meta.x_type == PixelType::u8) data.x_u8.push_back(static_cast<uint8_t>(id));
    else data.x_f32.push_back(static_cast<float>(id));
    data.labels.push_back(stream[static_cast<size_t>(i + 1)]);
  }
  write_shard(path, meta, data);
}

Tensor samples_of(const Tensor& t, int64_t begin, int64_t count) {
  Shape shape = t.shape();
  shape[0] = count;
  Tensor out(shape);
  const int64_t per = t.numel() / t.dim(0);
  std::copy(t.data() + begin * per, t.data() + (begin + count) * per, out.data());
  return out;
}

double gradient_error(Layer& layer, Tensor& x, Param* param, Mode mode, float eps) {
  const Tensor& y0 = layer.forward(x, mode);
  const Tensor w = random_tensor(y0.shape(), 99);
  auto objective = [&]() {
    const Tensor& y = layer.forward(x, mode);
    double s = 0.0;
    for (int64_t i = 0; i < y.numel(); ++i) s += static_cast<double>(w[i]) * y[i];
    return s;
  };
  objective();
  if (param) param->grad.fill(0.0f);
  const Tensor dx = layer.backward(w);
  Tensor analytic = param ? param->grad : dx;
  Tensor& target = param ? param->value : x;
  double worst = 0.0;
  for (int64_t i = 0; i < target.numel(); ++i) {
    const float saved = target[i];
    target[i] = saved + eps;
    const double up = objective();
    target[i] = saved - eps;
    const double down = objective();
    target[i] = saved;
    const double numeric = (up - down) / (2.0 * eps);
    const double err = std::fabs(numeric - analytic[i]) / std::max(1.0, std::fabs(numeric) + std::fabs(analytic[i]));
    worst = std::max(worst, err);
  }
  return worst;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

int run_cli(const std::string& args, std::string* out, std::string* err, const std::string& env) {
  const std::string tag = std::to_string(::getpid()) + "-" + std::to_string(std::rand());
  const auto dir = std::filesystem::temp_directory_path();
  const std::string out_path = (dir / ("rt-out-" + tag)).string(), err_path = (dir / ("rt-err-" + tag)).string();
  // RINGTRAIN_BIN in the environment wins over the build tree's path: the GPU bundle runs these tests on a
  // machine where only the bundle's copy of the program exists.
  const char* bin = std::getenv("RINGTRAIN_BIN");
  const std::string cmd = env + (env.empty() ? "" : " ") + (bin && *bin ? bin : RINGTRAIN_BIN) + " " + args + " >" + out_path + " 2>" + err_path + " </dev/null";
  const int status = std::system(cmd.c_str());
  if (out) *out = read_text(out_path);
  if (err) *err = read_text(err_path);
  std::filesystem::remove(out_path);
  std::filesystem::remove(err_path);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

namespace {
std::unique_ptr<MpiCommunicator> the_world;
}

MpiCommunicator& world() {
  if (!the_world) the_world = std::make_unique<MpiCommunicator>(MPI_COMM_WORLD);
  return *the_world;
}

void release_world() { the_world.reset(); }

std::string gpu_per_rank_problem(const std::vector<std::string>& placements) {
  std::map<std::string, int> first_rank;  // placement -> the first rank there
  for (int r = 0; r < static_cast<int>(placements.size()); ++r) {
    if (placements[r].empty()) return "rank " + std::to_string(r) + " has no GPU of its own";
    const auto [at, fresh] = first_rank.emplace(placements[r], r);
    if (!fresh)
      return "ranks " + std::to_string(at->second) + " and " + std::to_string(r) + " would share the GPU at " +
             placements[r] + ": NCCL needs one GPU per rank";
  }
  return "";
}

std::string start_gpu_per_rank(Communicator& world) {
  // The trainer's own choice (start_device, no --gpu): GPU 0 when the launcher left this rank one GPU of its
  // own (srun --gpus-per-task=1 sets CUDA_VISIBLE_DEVICES per task), else the local rank's.
  std::string why_not, placement;
  try {
    start_device({DeviceKind::cuda, -1, Precision::fp32});
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    placement = std::string(host) + " " + cuda_gpu_pci_bus_id();
  } catch (const Error& e) {
    why_not = e.what();
  }
  const std::string problem = gpu_per_rank_problem(allgather_strings(world, placement));
  if (problem.empty()) return "";
  return why_not.empty() ? problem : why_not;  // a rank that failed says why
}

SharedDataset::SharedDataset(const Shape& sample_shape)
    : SharedDataset([&](const std::string& path, int64_t samples, uint64_t seed) {
        write_classification_shard(path, samples, sample_shape, 3, seed);
      }) {}

SharedDataset::SharedDataset(const TokenWindows& tokens)
    : SharedDataset([&](const std::string& path, int64_t samples, uint64_t seed) {
        write_token_shard(path, samples, tokens.context, tokens.vocabulary, seed);
      }) {}

SharedDataset::SharedDataset(const std::function<void(const std::string&, int64_t, uint64_t)>& write) {
  Communicator& comm = world();
  char path[512] = {};
  if (comm.rank() == 0) {
    dir_ = std::make_unique<TempDir>();
    write(dir_->path("train-00000.h5"), 150, 1);
    write(dir_->path("train-00001.h5"), 170, 2);
    write(dir_->path("test-00000.h5"), 50, 3);
    std::snprintf(path, sizeof path, "%s", dir_->path().c_str());
  }
  comm.broadcast(path, sizeof path, 0);
  path_ = path;
}

SharedDataset::~SharedDataset() { world().barrier(); }

TrainConfig train_config(const std::string& data_dir, const SmallRun& run) {
  TrainConfig c;
  c.model = run.model;
  c.data.dir = data_dir;
  c.batch = run.batch;
  c.epochs = run.epochs;
  c.max_steps = run.steps;
  c.lr = run.lr;
  c.optimizer.kind = run.optimizer;
  c.optimizer.momentum = run.momentum;
  c.optimizer.weight_decay = run.weight_decay;
  return c;
}

class PairedReplicas::Side final : public CrossReplicaSum {
 public:
  Side(PairedReplicas& pair, int index) : pair_(pair), index_(index) {}
  void sum(double* values, size_t count) override { pair_.sum(index_, values, count); }

 private:
  PairedReplicas& pair_;
  int index_;
};

PairedReplicas::PairedReplicas() : sides_{std::make_unique<Side>(*this, 0), std::make_unique<Side>(*this, 1)} {}
PairedReplicas::~PairedReplicas() = default;

CrossReplicaSum& PairedReplicas::side(int i) { return *sides_[i]; }

void PairedReplicas::hand_over(int side, std::unique_lock<std::mutex>& lock) {
  if (finished_[1 - side]) return;
  turn_ = 1 - side;
  turn_changed_.notify_all();
  turn_changed_.wait(lock, [&] { return turn_ == side; });
}

void PairedReplicas::sum(int side, double* values, size_t count) {
  std::unique_lock lock(mutex_);
  if (!waiting_) {  // the first to arrive: leave the values, let the other replica add its own
    pending_.assign(values, values + count);
    waiting_ = true;
    hand_over(side, lock);  // back when the other has added its values, or has finished without
    if (waiting_) {
      waiting_ = false;
      throw Error("replica " + std::to_string(side) + " waits at a sum the other replica never joined");
    }
  } else {  // the second: both replicas' values are here
    if (pending_.size() != count)  // the first replica, left waiting, throws too
      throw Error("the replicas sum " + std::to_string(pending_.size()) + " and " + std::to_string(count) + " values");
    waiting_ = false;
    for (size_t i = 0; i < count; ++i) pending_[i] += values[i];  // a + b == b + a: both get the same doubles
    std::copy(pending_.begin(), pending_.end(), values);  // before the first replica reuses pending_
    ++sums_;
    hand_over(side, lock);  // the first replica takes the sum and runs on to its next
    return;
  }
  std::copy(pending_.begin(), pending_.end(), values);
}

void PairedReplicas::run(const std::function<void()>& first, const std::function<void()>& second) {
  {
    std::lock_guard lock(mutex_);
    turn_ = 0, finished_[0] = finished_[1] = false, waiting_ = false;
  }
  std::exception_ptr errors[2];
  auto replica = [&](int side, const std::function<void()>& work) {
    {
      std::unique_lock lock(mutex_);
      turn_changed_.wait(lock, [&] { return turn_ == side; });
    }
    try {
      work();
    } catch (...) {
      errors[side] = std::current_exception();
    }
    std::lock_guard lock(mutex_);
    finished_[side] = true;
    turn_ = 1 - side;  // the other replica runs on (and finds any sum it waits at unjoined)
    turn_changed_.notify_all();
  };
  std::thread a(replica, 0, std::cref(first)), b(replica, 1, std::cref(second));
  a.join(), b.join();
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
}

std::vector<float> flat_weights(const std::vector<Param*>& params) {
  std::vector<float> out;
  for (Param* p : params) {
    const Tensor host = p->value.to(Device::cpu);
    out.insert(out.end(), host.data(), host.data() + host.numel());
  }
  return out;
}

double largest_difference(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  if (a.size() != b.size()) return INFINITY;
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(double(a[i]) - b[i]));
  return worst;
}

}  // namespace ringtrain::test
