// The communicator under mpirun (2, 3 and 4 ranks): allreduce equals the exact sum for every edge size, with
// the ring (flat and hierarchical, on every layout of emulated nodes the rank count allows; float32 or 16-bit
// floats on the wire) and with MPI_Allreduce; broadcast, allgather, point-to-point (blocking and not),
// splits and the agreement checks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>
#include <random>

#include "ringtrain/comm/agreement.hpp"
#include "ringtrain/comm/mpi_communicator.hpp"
#include "ringtrain/tensor/error.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

// Integer values, so every sum is exact in float whatever the order of additions.
float value(int rank, size_t i) { return static_cast<float>((rank + 1) * static_cast<int>(i % 13) - 6); }

void expect_exact_sums(Communicator& comm, size_t count) {
  const int n = comm.size();
  std::vector<float> buf(count);
  for (size_t i = 0; i < count; ++i) buf[i] = value(comm.rank(), i);
  comm.allreduce_sum(buf.data(), count);
  size_t wrong = 0;
  for (size_t i = 0; i < count; ++i) {
    float expect = 0;
    for (int r = 0; r < n; ++r) expect += value(r, i);
    wrong += buf[i] != expect;
  }
  EXPECT_EQ(wrong, 0u) << comm.backend() << ", " << count << " elements, " << n << " ranks";
}

std::vector<size_t> edge_counts(int n) {
  return {0, 1, 2, static_cast<size_t>(n) - 1, static_cast<size_t>(n), static_cast<size_t>(n) + 1, 7, 1001,
          262144 * 2 + 3, 1000003};
}

TEST(Allreduce, RingEqualsTheExactSumForEdgeSizes) {
  MpiCommunicator ring(MPI_COMM_WORLD, {AllreduceAlgorithm::ring});
  ASSERT_EQ(ring.backend(), "ring");
  for (size_t count : edge_counts(ring.size())) expect_exact_sums(ring, count);
}

TEST(Allreduce, RingWithTinySegmentsPipelinesCorrectly) {
  // 16-byte segments: every chunk crosses many segments and the receive window wraps many times.
  MpiCommunicatorConfig config;
  config.segment_bytes = 16;
  MpiCommunicator ring(MPI_COMM_WORLD, config);
  for (size_t count : {size_t{5}, size_t{63}, size_t{64}, size_t{1000}, size_t{4099}}) expect_exact_sums(ring, count);
}

// Every way of cutting the world into equal emulated nodes: 1 x n, ..., n x 1.
std::vector<int> ranks_per_node_choices(int n) {
  std::vector<int> out;
  for (int k = 1; k <= n; ++k)
    if (n % k == 0) out.push_back(k);
  return out;
}

MpiCommunicatorConfig hierarchical(int ranks_per_node, std::optional<HalfFormat> wire = std::nullopt) {
  MpiCommunicatorConfig config;
  config.allreduce = AllreduceAlgorithm::hierarchical;
  config.ranks_per_node = ranks_per_node;
  config.compress = wire;
  return config;
}

TEST(Allreduce, HierarchicalEqualsTheExactSumForEdgeSizes) {
  for (int per_node : ranks_per_node_choices(test::world().size())) {
    SCOPED_TRACE(std::to_string(per_node) + " ranks a node");
    MpiCommunicator comm(MPI_COMM_WORLD, hierarchical(per_node));
    ASSERT_EQ(comm.backend(), "hierarchical");
    for (size_t count : edge_counts(comm.size())) expect_exact_sums(comm, count);
  }
}

TEST(Allreduce, HierarchicalWithTinySegmentsPipelinesCorrectly) {
  for (int per_node : ranks_per_node_choices(test::world().size())) {
    MpiCommunicatorConfig config = hierarchical(per_node);
    config.segment_bytes = 16;
    MpiCommunicator comm(MPI_COMM_WORLD, config);
    for (size_t count : {size_t{5}, size_t{63}, size_t{1000}, size_t{4099}}) expect_exact_sums(comm, count);
  }
}

// auto takes the hierarchical allreduce where it moves fewer bytes across nodes: several nodes, the same
// number of ranks on each, at least two.
TEST(Allreduce, AutoChoosesHierarchicalOnlyForSeveralEvenNodesOfSeveralRanks) {
  const int n = test::world().size();
  for (int per_node = 1; per_node <= n; ++per_node) {
    MpiCommunicatorConfig config;
    config.ranks_per_node = per_node;
    MpiCommunicator comm(MPI_COMM_WORLD, config);
    const bool pays = n % per_node == 0 && per_node > 1 && n / per_node > 1;
    EXPECT_EQ(comm.backend(), pays ? "hierarchical" : "ring") << n << " ranks, " << per_node << " a node";
  }
}

TEST(Allreduce, HierarchicalOnUnevenNodesIsRefusedOnEveryRank) {
  const int n = test::world().size();
  if (n != 3) GTEST_SKIP() << "needs 3 ranks (nodes of 2 and 1)";
  try {
    MpiCommunicator comm(MPI_COMM_WORLD, hierarchical(2));
    FAIL() << "an uneven layout was accepted";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "--allreduce hierarchical needs the same number of ranks on every node, and this job's 3 "
                           "ranks are spread unevenly over 2 nodes (use --allreduce ring)");
  }
}

// Small integers are exact in bf16 and fp16, and so are their partial sums here: the 16-bit wire must then
// give the exact sum, flat and hierarchical.
TEST(Allreduce, CompressedRingsSumExactlyWhatTheFormatHolds) {
  const int n = test::world().size();
  for (HalfFormat wire : {HalfFormat::bf16, HalfFormat::fp16}) {
    MpiCommunicatorConfig flat;
    flat.allreduce = AllreduceAlgorithm::ring;
    flat.compress = wire;
    flat.segment_bytes = 64;
    MpiCommunicator ring(MPI_COMM_WORLD, flat);
    EXPECT_EQ(ring.wire_bytes_per_float(), 2u);
    for (size_t count : edge_counts(n)) expect_exact_sums(ring, count);
    for (int per_node : ranks_per_node_choices(n)) {
      MpiCommunicator comm(MPI_COMM_WORLD, hierarchical(per_node, wire));
      for (size_t count : edge_counts(n)) expect_exact_sums(comm, count);
    }
  }
}

// Values that 16 bits cannot hold: every rank must still end with the same bits (each reduced chunk is
// rounded once, by its owner, and forwarded as it is), within the format's rounding of the float32 sum.
TEST(Allreduce, CompressedRingsLeaveEveryRankTheSameBitsNearTheSum) {
  Communicator& world = test::world();
  const int n = world.size();
  const size_t count = 100003;
  auto value = [](int rank, size_t i) {
    return std::sin(static_cast<float>(i) * 0.37f + static_cast<float>(rank)) * (1.0f + static_cast<float>(i % 5));
  };
  for (HalfFormat wire : {HalfFormat::bf16, HalfFormat::fp16}) {
    for (int per_node : ranks_per_node_choices(n)) {
      MpiCommunicator comm(MPI_COMM_WORLD, hierarchical(per_node, wire));
      std::vector<float> buf(count);
      for (size_t i = 0; i < count; ++i) buf[i] = value(comm.rank(), i);
      comm.allreduce_sum(buf.data(), count);
      std::vector<float> root = buf;
      world.broadcast(root.data(), count * sizeof(float), 0);
      EXPECT_EQ(std::memcmp(root.data(), buf.data(), count * sizeof(float)), 0) << "ranks differ";
      // Each of the ~n roundings of a partial sum errs by at most half a unit in the last place.
      const double unit = wire == HalfFormat::bf16 ? std::ldexp(1.0, -8) : std::ldexp(1.0, -11);
      double worst = 0;
      for (size_t i = 0; i < count; ++i) {
        double exact = 0, magnitude = 0;
        for (int r = 0; r < n; ++r) exact += value(r, i), magnitude += std::fabs(value(r, i));
        worst = std::max(worst, std::fabs(buf[i] - exact) / (magnitude * unit));
      }
      EXPECT_LE(worst, n + 1.0) << name_of(wire) << ", " << per_node << " ranks a node";
    }
  }
}

TEST(Allreduce, CompressionWithMpiAllreduceIsRefused) {
  MpiCommunicatorConfig config;
  config.allreduce = AllreduceAlgorithm::mpi;
  config.compress = HalfFormat::bf16;
  EXPECT_THROW(MpiCommunicator(MPI_COMM_WORLD, config), Error);
}

TEST(Allreduce, MpiAllreduceEqualsTheExactSum) {
  MpiCommunicator mpi(MPI_COMM_WORLD, {AllreduceAlgorithm::mpi});
  for (size_t count : edge_counts(mpi.size())) expect_exact_sums(mpi, count);
}

TEST(Allreduce, DoublesSum) {
  Communicator& world = test::world();
  double v[2] = {1.0 + world.rank(), 0.5};
  world.allreduce_sum(v, 2);
  const int n = world.size();
  EXPECT_DOUBLE_EQ(v[0], n * (n + 1) / 2.0);
  EXPECT_DOUBLE_EQ(v[1], 0.5 * n);
}

TEST(Collectives, BroadcastMakesEveryRankIdentical) {
  Communicator& world = test::world();
  const int root = world.size() - 1;
  std::vector<float> data(1000);
  std::iota(data.begin(), data.end(), static_cast<float>(world.rank() * 10000));
  world.broadcast(data.data(), data.size() * sizeof(float), root);
  for (size_t i = 0; i < data.size(); ++i) ASSERT_EQ(data[i], static_cast<float>(root * 10000 + i));
}

TEST(Collectives, AllgatherStringsOfDifferentLengths) {
  Communicator& world = test::world();
  const auto all = allgather_strings(world, std::string(world.rank() * 3, 'a' + world.rank()));
  ASSERT_EQ(static_cast<int>(all.size()), world.size());
  for (int r = 0; r < world.size(); ++r) EXPECT_EQ(all[r], std::string(r * 3, 'a' + r));
}

TEST(Collectives, SendRecvAroundTheRing) {
  Communicator& world = test::world();
  const int n = world.size(), next = (world.rank() + 1) % n, prev = (world.rank() + n - 1) % n;
  int got = -1;
  const int mine = world.rank();
  if (world.rank() % 2 == 0) {
    world.send(&mine, sizeof mine, next, 3);
    world.recv(&got, sizeof got, prev, 3);
  } else {
    world.recv(&got, sizeof got, prev, 3);
    world.send(&mine, sizeof mine, next, 3);
  }
  EXPECT_EQ(got, prev);
}

// Non-blocking both ways at once, as pipeline stages do: every rank posts its receives first, sends to both
// neighbours, and only then waits; tags keep the two messages from each neighbour apart.
TEST(Collectives, NonBlockingSendAndReceiveBothWays) {
  Communicator& world = test::world();
  const int n = world.size(), rank = world.rank();
  const int next = (rank + 1) % n, prev = (rank + n - 1) % n;
  std::vector<float> from_prev(1000), from_next(1000), mine(1000, static_cast<float>(rank));
  auto a = world.irecv(from_prev.data(), sizeof(float) * 1000, prev, 1);
  auto b = world.irecv(from_next.data(), sizeof(float) * 1000, next, 2);
  auto c = world.isend(mine.data(), sizeof(float) * 1000, next, 1);
  auto d = world.isend(mine.data(), sizeof(float) * 1000, prev, 2);
  for (auto* t : {a.get(), b.get(), c.get(), d.get()}) t->wait();
  EXPECT_EQ(from_prev[999], static_cast<float>(prev));
  EXPECT_EQ(from_next[0], static_cast<float>(next));
}

// split(color, key): the pipeline's groups. Even and odd ranks form two groups, ranked by descending key.
TEST(Collectives, SplitFormsGroupsRankedByKey) {
  Communicator& world = test::world();
  const int rank = world.rank();
  const std::unique_ptr<Communicator> group = world.split(rank % 2, -rank);
  const int members = (world.size() + 1 - rank % 2) / 2;
  EXPECT_EQ(group->size(), members);
  EXPECT_EQ(group->rank(), members - 1 - rank / 2);
  float sum = static_cast<float>(rank);
  group->allreduce_sum(&sum, 1);
  float expect = 0.0f;
  for (int r = rank % 2; r < world.size(); r += 2) expect += static_cast<float>(r);
  EXPECT_EQ(sum, expect);
}

TEST(Agreement, OneFailedRankIsNamedOnEveryRank) {
  Communicator& world = test::world();
  EXPECT_NO_THROW(raise_if_any_failed(world, ""));
  try {
    raise_if_any_failed(world, world.rank() == 1 ? "cannot open 'x.h5'" : "");
    FAIL() << "no error";
  } catch (const CollectiveError& e) {
    EXPECT_STREQ(e.what(), "rank 1: cannot open 'x.h5'");
  }
  try {
    raise_if_any_failed(world, "no training data");  // every rank alike: no rank prefix
    FAIL() << "no error";
  } catch (const CollectiveError& e) {
    EXPECT_STREQ(e.what(), "no training data");
  }
}

TEST(Agreement, DifferingSettingIsNamedWithBothValues) {
  Communicator& world = test::world();
  EXPECT_NO_THROW(check_same_on_all_ranks(world, {{"--batch", "64"}, {"--lr", "0.05"}}));
  const std::string lr = world.rank() == world.size() - 1 ? "0.1" : "0.05";
  try {
    check_same_on_all_ranks(world, {{"--batch", "64"}, {"--lr", lr}, {"--seed", "0"}});
    FAIL() << "no error";
  } catch (const CollectiveError& e) {
    EXPECT_NE(std::string(e.what()).find("ranks disagree on --lr: rank 0 has '0.05', rank " +
                                         std::to_string(world.size() - 1) + " has '0.1'"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace ringtrain
