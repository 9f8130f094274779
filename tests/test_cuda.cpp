// The CUDA engine is compiled on every build; its tests run where a GPU is present and skip, saying why,
// everywhere else.
#include <gtest/gtest.h>

#include "ringtrain/tensor/device.hpp"

namespace ringtrain {
namespace {

TEST(Cuda, ProbeReportsDevicesOrWhyNot) {
  const CudaProbe probe = probe_cuda();
  if (probe.device_count == 0) {
    EXPECT_EQ(probe.reason.rfind("no CUDA device", 0), 0u) << probe.reason;
    GTEST_SKIP() << probe.reason;
  }
  EXPECT_GT(probe.device_count, 0);
  EXPECT_TRUE(probe.reason.empty());
}

}  // namespace
}  // namespace ringtrain
