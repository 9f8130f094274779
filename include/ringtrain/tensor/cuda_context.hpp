// The CUDA engine's per-process state: the chosen GPU, its streams and its library handles. Only sources
// built with CUDA include this (layers in src/nn/cuda, the NCCL backend, kernels/); everything else goes
// through device.hpp.
//
// Streams: every layer, loss and optimizer kernel runs on `compute`, in program order, so a step needs no
// host synchronisation. Batches are uploaded on `upload` while the previous step computes, and gradients
// are reduced on `comm` (NCCL) while backward goes on; events order the three (stream_wait in
// cuda_events.hpp), never the host.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "ringtrain/tensor/device.hpp"

namespace ringtrain::cuda {

// Throw Error("CUDA error in <what>: <the library's message>").
void check(cudaError_t status, const char* what);
void check(cublasStatus_t status, const char* what);
void check(cudnnStatus_t status, const char* what);

// A CUDA stream that never waits for the legacy default stream. Destroying it retires it from the allocator
// (cuda_allocator.hpp), which may hold blocks it used, and does not wait for its work.
class Stream {
 public:
  Stream();
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

class Context {
 public:
  Context(int gpu, Precision precision);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  int gpu() const { return gpu_; }
  Precision precision() const { return precision_; }
  void set_precision(Precision precision);
  cudaStream_t compute() const { return compute_.get(); }
  cudaStream_t comm() const { return comm_.get(); }
  cudaStream_t upload() const { return upload_.get(); }
  cublasHandle_t cublas() const { return cublas_; }
  cudnnHandle_t cudnn() const { return cudnn_; }
  // Scratch for cuDNN, grown on demand and shared by every layer (they run one at a time on `compute`).
  void* workspace(size_t bytes);

 private:
  int gpu_;  // first: the device is made current before the streams are created on it
  Precision precision_;
  Stream compute_, comm_, upload_;
  cublasHandle_t cublas_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  DeviceBuffer workspace_;
};

// The context made by use_cuda_device(), with its GPU made current on the calling thread; throws Error
// when there is none.
Context& context();

}  // namespace ringtrain::cuda
