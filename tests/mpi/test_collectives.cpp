// The communicator under mpirun (2, 3 and 4 ranks): allreduce equals the exact sum for every edge size, with
// the ring and with MPI_Allreduce; broadcast, allgather, point-to-point (blocking and not), splits and the
// agreement checks.
#include <gtest/gtest.h>

#include <numeric>

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
  for (size_t count : edge_counts(ring.size())) expect_exact_sums(ring, count);
}

TEST(Allreduce, RingWithTinySegmentsPipelinesCorrectly) {
  // 16-byte segments: every chunk crosses many segments and the receive window wraps many times.
  MpiCommunicatorConfig config;
  config.segment_bytes = 16;
  MpiCommunicator ring(MPI_COMM_WORLD, config);
  for (size_t count : {size_t{5}, size_t{63}, size_t{64}, size_t{1000}, size_t{4099}}) expect_exact_sums(ring, count);
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
