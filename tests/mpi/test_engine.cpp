// The background allreduce engine under mpirun: many small tensors, submitted in a different order on each
// rank, come back summed and fused; mismatched sizes are a CollectiveError on every rank; a late rank is
// named by the stall warning.
#include <gtest/gtest.h>

#include <chrono>
#include <sstream>
#include <thread>

#include "ringtrain/comm/allreduce_engine.hpp"
#include "ringtrain/tensor/error.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

std::unique_ptr<AllreduceEngine> make_engine(EngineConfig config, std::ostream& warnings) {
  Communicator& world = test::world();
  return std::make_unique<AllreduceEngine>(world.split_off(), world.split_off(), config, nullptr, warnings);
}

TEST(Engine, ManySmallTensorsAreSummedAndFused) {
  Communicator& world = test::world();
  const int n = world.size(), rank = world.rank();
  std::ostringstream warnings;
  auto engine = make_engine({}, warnings);
  constexpr int kTensors = 60;
  std::vector<std::vector<float>> tensors(kTensors);
  for (int step = 0; step < 3; ++step) {
    for (int t = 0; t < kTensors; ++t) {
      tensors[t].assign(t % 7 == 0 ? 0 : 1 + (t * 37) % 300, 0.0f);  // sizes 0..300, some empty
      for (size_t i = 0; i < tensors[t].size(); ++i) tensors[t][i] = static_cast<float>((rank + 1) * (i % 5 + step));
    }
    // Odd ranks submit in reverse: ranks agree on readiness by name, not order.
    for (int k = 0; k < kTensors; ++k) {
      const int t = rank % 2 ? kTensors - 1 - k : k;
      engine->submit("t" + std::to_string(t), tensors[t].data(), tensors[t].size());
    }
    engine->wait();
    for (int t = 0; t < kTensors; ++t)
      for (size_t i = 0; i < tensors[t].size(); ++i)
        ASSERT_FLOAT_EQ(tensors[t][i], n * (n + 1) / 2.0f * static_cast<float>(i % 5 + step)) << "t" << t << "[" << i << "]";
  }
  const EngineStats stats = engine->stats();
  EXPECT_EQ(stats.tensors, 3 * kTensors);
  EXPECT_LT(stats.allreduces, stats.tensors / 4) << "tensors ready together should share a fusion buffer";
}

TEST(Engine, TensorsLargerThanTheFusionBufferGoAlone) {
  Communicator& world = test::world();
  std::ostringstream warnings;
  EngineConfig config;
  config.fusion_bytes = 1000;
  auto engine = make_engine(config, warnings);
  std::vector<float> big(10000, static_cast<float>(world.rank())), small(10, 1.0f), huge(300000, 2.0f);
  engine->submit("huge", huge.data(), huge.size());  // > 1 MiB: never fused, whatever --fusion-mb says
  engine->submit("big", big.data(), big.size());
  engine->submit("small", small.data(), small.size());
  engine->wait();
  const int n = world.size();
  EXPECT_FLOAT_EQ(big[9999], n * (n - 1) / 2.0f);
  EXPECT_FLOAT_EQ(small[0], static_cast<float>(n));
  EXPECT_FLOAT_EQ(huge[299999], 2.0f * n);
  EXPECT_EQ(engine->stats().allreduces, 3);
}

// The grouping the engine reduces by (and --shard-optimizer's buckets follow): big tensors alone at once,
// small ones packed in order across them, a group closed before it would pass the fusion size.
TEST(Engine, FusionGroups) {
  const size_t big = (1 << 20) / sizeof(float);
  EXPECT_EQ(fusion_groups({10, big, 20, 30, 50, 5}, 60 * sizeof(float)),
            (std::vector<std::vector<size_t>>{{1}, {0, 2, 3}, {4, 5}}));
  EXPECT_EQ(fusion_groups({10, 70, 20}, 60 * sizeof(float)), (std::vector<std::vector<size_t>>{{1}, {0, 2}}));
  EXPECT_EQ(fusion_groups({3, 4}, 1), (std::vector<std::vector<size_t>>{{0}, {1}}));  // below the smallest: alone
  EXPECT_TRUE(fusion_groups({}, 64 << 20).empty());
}

TEST(Engine, MismatchedSizesAreACollectiveError) {
  Communicator& world = test::world();
  std::ostringstream warnings;
  auto engine = make_engine({}, warnings);
  std::vector<float> w(world.rank() == 0 ? 10 : 11);
  engine->submit("linear1/weight", w.data(), w.size());
  try {
    engine->wait();
    FAIL() << "no error";
  } catch (const CollectiveError& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'linear1/weight' with different sizes: rank 0 has 10 elements"),
              std::string::npos)
        << e.what();
  }
}

TEST(Engine, StallWarningNamesTheLateRanksAndTensors) {
  Communicator& world = test::world();
  std::ostringstream warnings;
  EngineConfig config;
  config.stall_warn_s = 0.2;
  auto engine = make_engine(config, warnings);
  std::vector<float> g(4, 1.0f);
  if (world.rank() != 0) std::this_thread::sleep_for(std::chrono::milliseconds(700));
  engine->submit("conv2/weight", g.data(), g.size());
  engine->wait();
  if (world.rank() == 0) {
    std::string missing;
    for (int r = 1; r < world.size(); ++r) missing += (r > 1 ? "," : "") + std::to_string(r);
    EXPECT_NE(warnings.str().find("stall: rank(s) " + missing + " have not submitted conv2/weight"), std::string::npos)
        << warnings.str();
  } else {
    EXPECT_EQ(warnings.str(), "");
  }
}

}  // namespace
}  // namespace ringtrain
