// The slow-link verdict (comm/link_watch.hpp) on hand-made probe times, and when the watch asks for a probe.
#include <gtest/gtest.h>

#include "ringtrain/comm/link_watch.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

// seconds[r]: the link from rank r-1 into rank r. Ranks 0,1 on node1, 2,3 on node2: links 1->2 and 3->0
// cross between the nodes, 0->1 and 2->3 stay inside them.
const std::vector<std::string> kHosts = {"node1", "node1", "node2", "node2"};
const std::vector<double> kHealthy = {0.002, 0.0002, 0.002, 0.0002};

TEST(LinkWatch, NamesTheNodeThatEverySlowLinkTouches) {
  EXPECT_EQ(slow_link_warning({0.16, 0.0002, 0.16, 0.0003}, kHealthy, kHosts, 256 << 10),
            "slow links: rank 3 (node2) -> rank 0 (node1) carried 256 KiB in 160 ms (1.6 MB/s), 80x its time at "
            "the start; rank 1 (node1) -> rank 2 (node2) carried 256 KiB in 160 ms (1.6 MB/s), 80x its time at the "
            "start (every slow link touches node node2: a degraded network link or NIC there?)");
}

TEST(LinkWatch, OneSlowLinkNamesBothEnds) {
  const std::string warning = slow_link_warning({0.002, 0.0002, 0.1, 0.0002}, kHealthy, kHosts, 256 << 10);
  EXPECT_EQ(warning.rfind("slow link: rank 1 (node1) -> rank 2 (node2)", 0), 0u) << warning;
  EXPECT_NE(warning.find("(a degraded network link or NIC on node1 or node2?)"), std::string::npos) << warning;
}

TEST(LinkWatch, NoLinkTenTimesItsStartNoWarning) {
  EXPECT_EQ(slow_link_warning({0.019, 0.0002, 0.002, 0.0002}, kHealthy, kHosts, 256 << 10), "");  // 9.5x
  // A shared-memory link 10x slower but still a few milliseconds: a rank descheduled, not a link.
  EXPECT_EQ(slow_link_warning({0.002, 0.004, 0.002, 0.0002}, kHealthy, kHosts, 256 << 10), "");
}

TEST(LinkWatch, AsksForAProbeAtTheStartAndWhenAnAllreduceIsMuchSlowerThanTheBestPerByte) {
  LinkWatch watch(0.0);
  EXPECT_TRUE(watch.wants_probe());  // the first probe times the links healthy
  EXPECT_EQ(watch.probe(test::world()), "");  // alone here (under mpirun, the links are healthy)
  EXPECT_FALSE(watch.wants_probe());
  watch.allreduce_took(4 << 20, 0.016);  // 4 MiB in 16 ms: the best so far
  watch.allreduce_took(1 << 10, 1.0);    // 1 KiB: latency, never counted
  EXPECT_FALSE(watch.wants_probe());
  watch.allreduce_took(4 << 20, 0.1);    // 6x slower: within
  EXPECT_FALSE(watch.wants_probe());
  watch.allreduce_took(1 << 20, 0.045);  // 11x slower but under 50 ms: not worth a probe
  EXPECT_FALSE(watch.wants_probe());
  watch.allreduce_took(4 << 20, 0.2);    // 12.5x slower and 200 ms
  EXPECT_TRUE(watch.wants_probe());
}

TEST(LinkWatch, ProbesAtMostOnceAnInterval) {
  LinkWatch watch(3600.0);
  watch.probe(test::world());
  watch.allreduce_took(4 << 20, 0.016);
  watch.allreduce_took(4 << 20, 1.0);  // slow, but the last probe was just now
  EXPECT_FALSE(watch.wants_probe());
}

}  // namespace
}  // namespace ringtrain
