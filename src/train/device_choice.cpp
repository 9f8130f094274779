#include "ringtrain/train/device_choice.hpp"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/train/launch.hpp"

namespace ringtrain {

int local_rank_from_environment() { return launch_from_environment().local_rank; }

int choose_gpu(int requested, int local_rank, int device_count, bool own_gpu) {
  const int gpu = requested >= 0 ? requested : own_gpu ? 0 : std::max(local_rank, 0);
  if (gpu < device_count) return gpu;
  if (requested >= 0)
    throw Error("--gpu " + std::to_string(requested) + ": this node has " + std::to_string(device_count) +
                " CUDA device(s)");
  throw Error("this rank is number " + std::to_string(local_rank) + " on its node, which has " +
              std::to_string(device_count) + " CUDA device(s): start one rank per GPU, or choose one with --gpu");
}

int gpu_for_this_rank(int requested, const CudaProbe& probe) {
  if (probe.device_count == 0) return -1;
  const bool own_gpu = probe.device_count == 1 && std::getenv("CUDA_VISIBLE_DEVICES");
  return choose_gpu(requested, local_rank_from_environment(), probe.device_count, own_gpu);
}

namespace {

Device resolve(const DeviceConfig& config) {
  if (config.kind == DeviceKind::cpu) return Device::cpu;
  const CudaProbe probe = probe_cuda();
  if (probe.device_count == 0) {
    if (config.kind == DeviceKind::automatic) return Device::cpu;
    throw Error("--device cuda: " + probe.reason);
  }
  use_cuda_device(gpu_for_this_rank(config.gpu, probe), config.precision);
  return Device::cuda;
}

}  // namespace

Device start_device(const DeviceConfig& config, std::string* note) {
  const Device device = resolve(config);
  if (device == Device::cpu && config.precision != Precision::fp32) {
    if (config.kind == DeviceKind::cpu)
      throw Error("--precision " + name_of(config.precision) +
                  " is for the CUDA engine; the CPU engine computes in fp32");
    if (note)
      *note = "--device auto found no GPU: computing in fp32 on the CPU (--precision " +
              name_of(config.precision) + " is for GPUs)";
  }
  return device;
}

}  // namespace ringtrain
