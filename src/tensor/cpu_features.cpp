#include "ringtrain/tensor/cpu_features.hpp"

#include <cstdlib>
#include <string>

#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

namespace {

constexpr const char* kVariable = "RINGTRAIN_CPU";

}  // namespace

bool cpu_has_avx512() {
#if RINGTRAIN_X86_64
  __builtin_cpu_init();  // the first kernel may run before the constructor that fills in the CPU model
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

bool cpu_has_avx2_fma() {
#if RINGTRAIN_X86_64
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

CpuPath choose_cpu_path(const char* setting, bool cpu_has_avx512) {
  const std::string_view wanted = setting ? setting : "";
  if (wanted.empty()) return cpu_has_avx512 ? CpuPath::avx512 : CpuPath::portable;
  for (const auto& [path, name] : kCpuPathNames) {
    if (name != wanted) continue;
    if (path == CpuPath::avx512 && !cpu_has_avx512)
      throw Error(std::string(kVariable) + "=avx512, but this CPU has no AVX-512");
    return path;
  }
  throw Error(std::string(kVariable) + "='" + std::string(wanted) + "': expected " + choices_of<CpuPath>() +
              " (or unset for the best this CPU has)");
}

CpuPath detect_cpu_path() { return choose_cpu_path(std::getenv(kVariable), cpu_has_avx512()); }

}  // namespace ringtrain
