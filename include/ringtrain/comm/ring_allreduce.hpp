// Ring allreduce (sum, float32, in place), as in Baidu's allreduce and NCCL's ring: the buffer is cut into
// one chunk per rank; n-1 reduce-scatter steps leave each rank with one fully reduced chunk, n-1 allgather
// steps pass the reduced chunks around. Every rank sends and receives 2(n-1)/n of the buffer, the least any
// allreduce can. Each chunk is further cut into segments that flow through the steps independently: a
// segment is forwarded to the next rank as soon as it is reduced, so the steps overlap like a pipeline and
// the receive scratch stays a few segments big (in cache).
//
// The two halves also run alone (the hierarchical allreduce runs a reduce-scatter and an allgather inside
// each node around an allreduce across nodes), and the wire may carry 16-bit floats: every rank adds what it
// receives into its float32 buffer (float32 accumulation), and a reduced chunk is rounded once, by its
// owner, so every rank ends with the same bits.
#pragma once
#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "ringtrain/comm/communicator.hpp"
#include "ringtrain/tensor/half.hpp"
#include "ringtrain/tensor/host_allocator.hpp"

namespace ringtrain {

// Receive and staging buffers, kept between calls (huge pages when big: the kernel pins them page by page on
// every transfer).
struct RingBuffers {
  std::vector<float, HostAllocator<float>> scratch;
  std::vector<uint16_t, HostAllocator<uint16_t>> half_scratch, half_wire;
};

struct RingConfig {
  size_t segment_bytes = 1 << 20;
  std::optional<HalfFormat> wire;  // 16-bit floats on the wire; float32 when empty
};

// Works for any count, 0 and count < ranks included.
void ring_allreduce(MPI_Comm comm, float* data, size_t count, const RingConfig& config, RingBuffers& buffers);
// The first half alone: afterwards this rank's ring_owned_chunk holds the sum over all ranks; the rest of
// `data` is left partly reduced. Float32 on the wire.
void ring_reduce_scatter(MPI_Comm comm, float* data, size_t count, const RingConfig& config, RingBuffers& buffers);
// The second half alone: each rank's ring_owned_chunk is copied to every rank. Float32 on the wire.
void ring_allgather(MPI_Comm comm, float* data, size_t count, const RingConfig& config, RingBuffers& buffers);

// Chunk `chunk` of a count-element buffer cut into `ranks` chunks whose sizes differ by one at most.
ElementRange even_chunk(size_t count, int ranks, int chunk);
// The elements [begin, end) of a count-element buffer that `rank` of `ranks` holds reduced after
// ring_reduce_scatter (and contributes to ring_allgather): even_chunk (rank + 1) mod ranks.
ElementRange ring_owned_chunk(size_t count, int ranks, int rank);

}  // namespace ringtrain
