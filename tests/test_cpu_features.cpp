#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "ringtrain/tensor/cpu_features.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/train/model_file.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

TEST(CpuFeatures, ChoosesFromTheSettingAndTheCpu) {
  EXPECT_EQ(choose_cpu_path(nullptr, true), CpuPath::avx512);
  EXPECT_EQ(choose_cpu_path("", true), CpuPath::avx512);
  EXPECT_EQ(choose_cpu_path(nullptr, false), CpuPath::portable);
  EXPECT_EQ(choose_cpu_path("portable", true), CpuPath::portable);
  EXPECT_EQ(choose_cpu_path("avx512", true), CpuPath::avx512);
  EXPECT_THROW(choose_cpu_path("avx512", false), Error);
  try {
    choose_cpu_path("fast", true);
    FAIL() << "an unknown RINGTRAIN_CPU was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "RINGTRAIN_CPU='fast': expected portable or avx512 (or unset for the best this CPU has)");
  }
}

// The suite runs twice (tests/CMakeLists.txt): as it is, where a CPU with AVX-512 must take the AVX-512
// kernels, and as unit.portable under RINGTRAIN_CPU=portable, which must take the portable ones.
TEST(CpuFeatures, ThisProcessTakesTheChosenPath) {
  const char* setting = std::getenv("RINGTRAIN_CPU");
  bool cpu_has_avx512 = false;
#if RINGTRAIN_X86_64
  cpu_has_avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                   __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#endif
  const CpuPath want = setting && std::string(setting) == "portable" ? CpuPath::portable
                       : cpu_has_avx512                              ? CpuPath::avx512
                                                                     : CpuPath::portable;
  EXPECT_EQ(cpu_path(), want) << "RINGTRAIN_CPU=" << (setting ? setting : "(unset)");
  std::printf("cpu path: %s\n", name_of(cpu_path()).c_str());
}

// Replicas on nodes of different CPU generations apply the same averaged gradient each step and must keep the
// same weights: every optimizer rounds its update alike on both paths (no fused multiply-add on one only).
// Linear layers run on OpenBLAS on both, so a model of them trains to bitwise the same weights.
TEST(CpuFeatures, BothPathsTrainLinearModelsToTheSameWeights) {
  test::TempDir dir;
  test::write_classification_shard(dir.path("train-00000.h5"), 96, {1, 4, 4}, 3, 't');
  for (const char* optimizer : {"sgd --momentum 0.9 --nesterov", "adam --weight-decay 0.01", "rmsprop --momentum 0.5"}) {
    std::vector<std::vector<float>> weights;
    for (const char* path : {"portable", "avx512"}) {
      const std::string model = dir.path(std::string(path) + ".h5");
      const std::string env = std::string("RINGTRAIN_CPU=") + (cpu_path() == CpuPath::avx512 ? path : "portable");
      std::string err;
      ASSERT_EQ(test::run_cli("train --data " + dir.path() + " --model \"flatten,linear(8),relu,linear(out)\" --epochs 3"
                              " --batch 8 --lr 0.01 --optimizer " + optimizer + " --save " + model, nullptr, &err, env),
                0) << err;
      weights.emplace_back();
      const LoadedModel loaded = load_model(model);
      for (const Param* p : loaded.model->params())
        weights.back().insert(weights.back().end(), p->value.data(), p->value.data() + p->value.numel());
    }
    EXPECT_EQ(weights[0], weights[1]) << optimizer;
  }
}

}  // namespace
}  // namespace ringtrain
