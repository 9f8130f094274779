// Ring allreduce (sum, float32, in place), as in Baidu's allreduce and NCCL's ring: the buffer is cut into
// one chunk per rank; n-1 reduce-scatter steps leave each rank with one fully reduced chunk, n-1 allgather
// steps pass the reduced chunks around. Every rank sends and receives 2(n-1)/n of the buffer, the least any
// allreduce can. Each chunk is further cut into segments that flow through the steps independently: a
// segment is forwarded to the next rank as soon as it is reduced, so the steps overlap like a pipeline and
// the receive scratch stays a few segments big (in cache).
#pragma once
#include <mpi.h>

#include <cstddef>
#include <vector>

#include "ringtrain/tensor/host_allocator.hpp"

namespace ringtrain {

// Receive buffers (huge pages when big: the kernel pins them page by page on every transfer).
using RingScratch = std::vector<float, HostAllocator<float>>;

// scratch: resized as needed (kInflight segments). Works for any count, 0 and count < ranks included.
void ring_allreduce(MPI_Comm comm, float* data, size_t count, size_t segment_elems, RingScratch& scratch);

}  // namespace ringtrain
