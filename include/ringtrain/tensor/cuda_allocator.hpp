// The CUDA side of the caching allocator behind DeviceBuffer (its rules: block_cache.hpp). Blocks are
// allocated for the compute stream; code that queues work on another stream (NCCL, batch uploads) says so
// before it does, and the block is then kept from its next owner until that work has run, without the host
// waiting for it.
#pragma once
#include <cuda_runtime.h>

namespace ringtrain::cuda {

// Work about to be queued on `stream` uses the device memory at `ptr` (a DeviceBuffer's, or anywhere inside
// one). When the buffer is freed, its block goes to no one before that work has run. If the block may still
// be in use by its previous owner's work on the compute stream, `stream` first waits for the compute stream
// (on the device). Memory that is not a DeviceBuffer's is ignored.
void record_stream(const void* ptr, cudaStream_t stream);

// Called just before `stream` is destroyed: the allocator records one last event on it for each block it
// used and never names it again. The host does not wait (a stream destroyed with work queued lets it
// finish), so an aborted NCCL communicator's stream cannot hang its owner here.
void retire_stream(cudaStream_t stream) noexcept;

}  // namespace ringtrain::cuda
