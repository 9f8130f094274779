// The CUDA context: the process's GPU, its three streams and its cuBLAS and cuDNN handles.
#include "ringtrain/tensor/cuda_context.hpp"

#include <cstdlib>
#include <memory>
#include <string>

#include "ringtrain/tensor/cuda_allocator.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

namespace cuda {

void check(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return;
  cudaGetLastError();  // clear a sticky launch error so the message is this call's
  throw Error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(status));
}

void check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw Error(std::string("cuBLAS error in ") + what + ": " + cublasGetStatusString(status));
}

void check(cudnnStatus_t status, const char* what) {
  if (status != CUDNN_STATUS_SUCCESS)
    throw Error(std::string("cuDNN error in ") + what + ": " + cudnnGetErrorString(status));
}

Stream::Stream() { check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate"); }

// Errors are ignored here: at process exit the driver may already be shutting down.
Stream::~Stream() {
  retire_stream(stream_);
  cudaStreamDestroy(stream_);
}

namespace {

int made_current(int gpu) {
  check(cudaSetDevice(gpu), "cudaSetDevice");
  return gpu;
}

}  // namespace

Context::Context(int gpu, Precision precision) : gpu_(made_current(gpu)), precision_(precision) {
  check(cublasCreate(&cublas_), "cublasCreate");
  check(cublasSetStream(cublas_, compute()), "cublasSetStream");
  set_precision(precision);
  check(cudnnCreate(&cudnn_), "cudnnCreate");
  check(cudnnSetStream(cudnn_, compute()), "cudnnSetStream");
}

// Errors are ignored here: at process exit the driver may already be shutting down. The streams go last
// (members), after the handles that queue work on them.
Context::~Context() {
  workspace_ = DeviceBuffer();
  if (cudnn_) cudnnDestroy(cudnn_);
  if (cublas_) cublasDestroy(cublas_);
}

void Context::set_precision(Precision precision) {
  // fp32 keeps IEEE products (CUBLAS_DEFAULT_MATH never uses TF32); tf32 opts in to tensor cores. bf16 GEMMs
  // pick tensor cores by their data type.
  check(cublasSetMathMode(cublas_, precision == Precision::tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH),
        "cublasSetMathMode");
  precision_ = precision;
}

void* Context::workspace(size_t bytes) { return workspace_.reserve(bytes); }

namespace {
std::unique_ptr<Context>& context_slot() {
  static std::unique_ptr<Context> slot;
  return slot;
}
}  // namespace

Context& context() {
  const std::unique_ptr<Context>& slot = context_slot();
  if (!slot) throw Error("the CUDA engine is not initialised (no --device cuda)");
  // The current device is per host thread: the engine's background thread must bind to ours too.
  thread_local int bound = -1;
  if (bound != slot->gpu()) {
    check(cudaSetDevice(slot->gpu()), "cudaSetDevice");
    bound = slot->gpu();
  }
  return *slot;
}

}  // namespace cuda

void use_cuda_device(int gpu, Precision precision) {
  std::unique_ptr<cuda::Context>& slot = cuda::context_slot();
  if (slot) {
    if (slot->gpu() != gpu)
      throw Error("the CUDA engine already runs on GPU " + std::to_string(slot->gpu()) + "; one process drives one GPU");
    cuda::context().set_precision(precision);  // layers made from now on compute in it
    return;
  }
  const CudaProbe probe = probe_cuda();
  if (probe.device_count == 0) throw Error("--device cuda: " + probe.reason);
  if (gpu < 0 || gpu >= probe.device_count)
    throw Error("--device cuda: GPU " + std::to_string(gpu) + " does not exist (this node has " +
                std::to_string(probe.device_count) + ")");
  slot = std::make_unique<cuda::Context>(gpu, precision);
  // Handles must go before the CUDA runtime unloads at exit; it registered its own teardown when the probe
  // first called it, and exit handlers run in reverse order of registration.
  std::atexit([] { cuda::context_slot().reset(); });
}

bool cuda_device_in_use() { return cuda::context_slot() != nullptr; }
int cuda_gpu() { return cuda_device_in_use() ? cuda::context_slot()->gpu() : -1; }

}  // namespace ringtrain
