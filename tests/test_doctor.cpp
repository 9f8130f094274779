// ringtrain doctor's analysis on hand-made jobs: each warning from the facts that cause it, none for a healthy
// job, the facts' trip to rank 0 and back, and the choice of the interfaces MPI's TCP traffic would use.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ringtrain/train/doctor.hpp"

namespace ringtrain {
namespace {

// Rank `rank` of a `world`-rank mpirun job on `host` (8 CPUs), bound to `cpus`, one compute thread, no GPU.
RankFacts rank_on(const std::string& host, int rank, std::vector<int> cpus, int world = 2) {
  RankFacts f;
  f.rank = rank;
  f.world_size = world;
  f.host = host;
  f.host_cpus = 8;
  f.launch.launcher = Launch::mpirun;
  f.launch.tasks = world;
  f.launch.local_rank = rank;
  f.cpus = std::move(cpus);
  f.network = {"eth0 10.0.0.1"};
  return f;
}

// The one warning of `ranks`, or a failure naming how many there were.
std::string only_warning(const std::vector<RankFacts>& ranks) {
  const std::vector<std::string> warnings = doctor_warnings(ranks);
  EXPECT_EQ(warnings.size(), 1u) << testing::PrintToString(warnings);
  return warnings.empty() ? "" : warnings.front();
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(Doctor, HealthyJobHasNoWarnings) {
  // Two ranks on cores of their own on one host, two on another; one GPU each.
  std::vector<RankFacts> job{rank_on("a", 0, {0, 1, 2, 3}, 4), rank_on("a", 1, {4, 5, 6, 7}, 4),
                             rank_on("b", 2, {0, 1, 2, 3}, 4), rank_on("b", 3, {4, 5, 6, 7}, 4)};
  for (RankFacts& r : job) {
    r.threads = 4;
    r.gpu = r.rank % 2;
    r.gpu_bus_id = r.gpu == 0 ? "0000:1b:00.0" : "0000:3d:00.0";
  }
  EXPECT_TRUE(doctor_warnings(job).empty()) << testing::PrintToString(doctor_warnings(job));
}

TEST(Doctor, UnboundRanksWithinTheHostsCpusAreHealthy) {
  // Not bound (every CPU of the host): the kernel spreads them.
  std::vector<RankFacts> job{rank_on("a", 0, {0, 1, 2, 3, 4, 5, 6, 7}), rank_on("a", 1, {0, 1, 2, 3, 4, 5, 6, 7})};
  job[0].threads = job[1].threads = 4;
  EXPECT_TRUE(doctor_warnings(job).empty());
}

TEST(Doctor, RanksBoundToTheSameSetShareItAsAPool) {
  // mpirun's --bind-to socket: both on socket 0's CPUs, one thread each on 4 CPUs.
  std::vector<RankFacts> job{rank_on("a", 0, {0, 1, 2, 3}), rank_on("a", 1, {0, 1, 2, 3})};
  EXPECT_TRUE(doctor_warnings(job).empty());
  job[0].threads = job[1].threads = 3;  // 6 threads on 4 CPUs
  EXPECT_TRUE(contains(only_warning(job), "6 compute threads on 4 CPUs (0-3)"));
}

TEST(Doctor, MoreThreadsThanCpusIsOversubscribed) {
  // This machine's case: 3 unbound ranks of a thread each on a 2-CPU host.
  std::vector<RankFacts> job{rank_on("a", 0, {0, 1}, 3), rank_on("a", 1, {0, 1}, 3), rank_on("a", 2, {0, 1}, 3)};
  for (RankFacts& r : job) r.host_cpus = 2;
  const std::string w = only_warning(job);
  EXPECT_TRUE(contains(w, "oversubscribed: host a, ranks 0-2: 3 compute threads on 2 CPUs (0-1)")) << w;
}

TEST(Doctor, OneRankWithMoreThreadsThanItsCpusIsOversubscribed) {
  std::vector<RankFacts> job{rank_on("a", 0, {0, 1}), rank_on("a", 1, {2, 3})};
  job[1].threads = 4;
  EXPECT_TRUE(contains(only_warning(job), "host a, rank 1: 4 compute threads on 2 CPUs (2-3)"));
}

TEST(Doctor, ThreadsCountAgainstTheCpusTheirRanksShare) {
  // The host has 8 CPUs and the job uses 3 threads, but ranks 0 and 1 both sit on CPU 0.
  std::vector<RankFacts> job{rank_on("a", 0, {0}, 3), rank_on("a", 1, {0}, 3),
                             rank_on("a", 2, {1, 2, 3, 4, 5, 6, 7}, 3)};
  EXPECT_TRUE(contains(only_warning(job), "ranks 0-1: 2 compute threads on 1 CPU (0)"));
}

TEST(Doctor, OverlappingBindingsAreOversubscribed) {
  // Pinned to 2 of the host's 8 CPUs each, sharing CPU 2: enough CPUs in all, but a binding mistake.
  std::vector<RankFacts> job{rank_on("a", 0, {1, 2}), rank_on("a", 1, {2, 3})};
  const std::string w = only_warning(job);
  EXPECT_TRUE(contains(w, "host a, ranks 0-1 are bound to overlapping CPU sets (shared: 2)")) << w;
}

TEST(Doctor, HostsAreJudgedApart) {
  // The same CPU numbers on two hosts are different CPUs.
  std::vector<RankFacts> job{rank_on("a", 0, {0}), rank_on("b", 1, {0})};
  EXPECT_TRUE(doctor_warnings(job).empty());
}

TEST(Doctor, TwoRanksOnOneGpu) {
  std::vector<RankFacts> job{rank_on("a", 0, {0, 1}), rank_on("a", 1, {2, 3})};
  for (RankFacts& r : job) r.gpu_bus_id = "0000:1b:00.0";
  // Each sees its GPU as 0 (CUDA_VISIBLE_DEVICES) or they differ in index: the PCI address decides.
  job[0].gpu = 0;
  job[1].gpu = 1;
  const std::string w = only_warning(job);
  EXPECT_TRUE(contains(w, "shared GPU: host a, ranks 0-1 all use GPU 0000:1b:00.0")) << w;
  // The same address on another host is another GPU.
  job[1].host = "b";
  EXPECT_TRUE(doctor_warnings(job).empty());
}

TEST(Doctor, ARankWithoutItsGpu) {
  std::vector<RankFacts> job{rank_on("a", 0, {0, 1}), rank_on("a", 1, {2, 3})};
  job[0].gpu = 0;
  job[1].gpu_problem = "this rank is number 1 on its node, which has 1 CUDA device(s)";
  EXPECT_TRUE(contains(only_warning(job), "no GPU: rank 1: this rank is number 1 on its node"));
  EXPECT_TRUE(contains(facts_table(job), "none (see below)"));
}

TEST(Doctor, MpiWithoutThreadMultiple) {
  std::vector<RankFacts> job{rank_on("a", 0, {0, 1}), rank_on("a", 1, {2, 3})};
  for (RankFacts& r : job) r.mpi_threads = MpiThreadLevel::serialized;
  const std::string w = only_warning(job);
  EXPECT_TRUE(contains(w, "ranks 0-1: the MPI library provides MPI_THREAD_SERIALIZED, not MPI_THREAD_MULTIPLE")) << w;
}

TEST(Doctor, TasksThatMpiDidNotJoin) {
  // srun -n 2 without PMI: each task is a world of one, and prints its own one-row table.
  RankFacts task = rank_on("a", 0, {0, 1}, 1);
  task.launch.launcher = Launch::slurm;
  task.launch.tasks = 2;
  const std::string w = only_warning({task});
  EXPECT_TRUE(contains(w, "launch: srun started 2 tasks but MPI sees a world of 1 rank")) << w;
}

TEST(Doctor, EveryProblemAtOnce) {
  std::vector<RankFacts> job{rank_on("a", 0, {0}), rank_on("a", 1, {0})};
  for (RankFacts& r : job) {
    r.launch.tasks = 4;
    r.gpu = 0;
    r.gpu_bus_id = "0000:1b:00.0";
    r.mpi_threads = MpiThreadLevel::funneled;
  }
  // Oversubscribed, the shared GPU, the thread level and the launch.
  EXPECT_EQ(doctor_warnings(job).size(), 4u) << testing::PrintToString(doctor_warnings(job));
}

TEST(Doctor, FactsTravelAsText) {
  RankFacts f = rank_on("node-7", 3, {0, 2, 3}, 4);
  f.launch.launcher = Launch::slurm;
  f.gpu = 1;
  f.gpu_bus_id = "0000:3d:00.0";
  f.gpu_problem = "a = b";
  f.threads = 6;
  f.network = {"ib0 10.1.0.7", "eth0 192.0.2.7"};
  f.mpi_threads = MpiThreadLevel::funneled;
  const RankFacts back = parse_facts(serialize_facts(f));
  EXPECT_EQ(serialize_facts(back), serialize_facts(f));
  EXPECT_EQ(back.host, "node-7");
  EXPECT_EQ(back.launch.launcher, Launch::slurm);
  EXPECT_EQ(back.cpus, f.cpus);
  EXPECT_EQ(back.network, f.network);
  EXPECT_EQ(back.gpu_problem, "a = b");
  EXPECT_THROW(parse_facts("rank=x\n"), Error);
  EXPECT_THROW(parse_facts("colour=blue\n"), Error);
}

TEST(Doctor, TableHasARowPerRank) {
  std::vector<RankFacts> job{rank_on("a", 0, {0, 1, 2, 3}), rank_on("host-b", 1, {0, 2})};
  job[1].launch.local_rank = -1;
  job[1].gpu = 0;
  job[1].gpu_bus_id = "0000:1b:00.0";
  EXPECT_EQ(facts_table(job),
            "rank  host    local  gpu               cpus  threads  network\n"
            "0     a       0      none              0-3   1        eth0 10.0.0.1\n"
            "1     host-b  -      0 (0000:1b:00.0)  0,2   1        eth0 10.0.0.1\n");
}

TEST(Doctor, CompactLists) {
  EXPECT_EQ(compact_list({}), "");
  EXPECT_EQ(compact_list({5}), "5");
  EXPECT_EQ(compact_list({0, 1, 2, 3}), "0-3");
  EXPECT_EQ(compact_list({0, 2}), "0,2");
  EXPECT_EQ(compact_list({0, 1, 2, 3, 6, 8, 9}), "0-3,6,8-9");
}

TEST(Doctor, InterfacesMpiWouldUse) {
  const std::vector<NetInterface> host{{"lo", 0x7f000001, true, true},
                                       {"eth0", 0xc0000202, true, false},    // 192.0.2.2
                                       {"ib0", 0x0a010007, true, false},     // 10.1.0.7
                                       {"eth1", 0xc0a80101, false, false}};  // down
  auto names = [&](const std::string& include, const std::string& exclude) {
    std::string out;
    for (const NetInterface& i : mpi_tcp_interfaces(host, include, exclude)) out += i.name + " ";
    return out;
  };
  EXPECT_EQ(names("", ""), "eth0 ib0 ");                 // up, not loopback
  EXPECT_EQ(names("ib0", ""), "ib0 ");                   // as Open MPI's btl_tcp_if_include names them
  EXPECT_EQ(names("10.0.0.0/8", ""), "ib0 ");            // or a subnet
  EXPECT_EQ(names("lo,eth1", ""), "lo ");                // named loopback is used; a down one never
  EXPECT_EQ(names("", "eth0"), "ib0 ");                  // btl_tcp_if_exclude
  EXPECT_EQ(names("", "192.0.2.0/24,ib0"), "");
  EXPECT_EQ(ipv4_text(0xc0000202), "192.0.2.2");
}

}  // namespace
}  // namespace ringtrain
