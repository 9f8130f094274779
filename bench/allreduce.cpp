// Allreduce bus bandwidth, ours (segmented ring over MPI point-to-point) beside MPI_Allreduce, in one run,
// with the nccl-tests definitions: algbw = bytes / time, busbw = algbw * 2(n-1)/n.
// usage: mpirun -np N build/bench/allreduce [MIN_BYTES] [MAX_BYTES] [ROUNDS]
// Each size is timed in ROUNDS interleaved blocks (ring, mpi, ring, mpi, ...), the rounds sweeping all sizes,
// and the best block of each is kept, so both see the same machine noise. Buffers come from the allocator
// of ringtrain's tensors (huge pages from 2 MiB), for both. Every result is checked against the exact sum ("wrong" column).
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "ringtrain/comm/mpi_communicator.hpp"
#include "ringtrain/comm/mpi_session.hpp"
#include "ringtrain/tensor/host_allocator.hpp"

using namespace ringtrain;

namespace {

using Buffer = std::vector<float, HostAllocator<float>>;

// The peer exactly as shared/peers/mpi_allreduce.c calls it: blocking MPI_Allreduce, in place.
void mpi_allreduce(Buffer& buf) {
  MPI_Allreduce(MPI_IN_PLACE, buf.data(), static_cast<int>(buf.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}

// Mean seconds per allreduce over `iters`, the slowest rank's.
template <class Allreduce>
double time_block(Allreduce allreduce, Buffer& buf, int iters) {
  MPI_Barrier(MPI_COMM_WORLD);
  const double start = MPI_Wtime();
  for (int i = 0; i < iters; ++i) allreduce(buf);
  double t = (MPI_Wtime() - start) / iters;
  MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return t;
}

// Values whose sums are exact in float: rank r contributes r + 1 + (i % 7).
void fill(Buffer& buf, int rank) {
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<float>(rank + 1 + static_cast<int>(i % 7));
}

long wrong_elements(const Buffer& buf, int n) {
  long wrong = 0;
  for (size_t i = 0; i < buf.size(); ++i) {
    const double expect = n * (n + 1) / 2.0 + n * static_cast<double>(i % 7);
    wrong += buf[i] != static_cast<float>(expect);
  }
  return wrong;
}

}  // namespace

int main(int argc, char** argv) {
  MpiSession session(&argc, &argv);
  const long min_bytes = argc > 1 ? std::atol(argv[1]) : 4096;
  const long max_bytes = argc > 2 ? std::atol(argv[2]) : 256L << 20;
  const int rounds = argc > 3 ? std::atoi(argv[3]) : 3;
  MpiCommunicatorConfig config;
  if (const char* kb = std::getenv("RINGTRAIN_SEGMENT_KB")) config.segment_bytes = std::atol(kb) << 10;
  MpiCommunicator ring(MPI_COMM_WORLD, config);
  auto ours = [&](Buffer& b) { ring.allreduce_sum(b.data(), b.size()); };
  const int n = ring.size(), rank = ring.rank();
  const double bus = 2.0 * (n - 1) / n;
  if (rank == 0) {
    std::printf("# allreduce, float32 sum, %d ranks; ring = ringtrain's, mpi = MPI_Allreduce; best of %d blocks\n",
                n, rounds);
    std::printf("%12s %12s | %10s %9s %9s | %10s %9s %9s | %9s %6s\n", "bytes", "count", "ring_us", "algbw",
                "busbw", "mpi_us", "algbw", "busbw", "ring/mpi", "wrong");
  }
  std::vector<long> sizes;
  for (long bytes = min_bytes; bytes <= max_bytes; bytes *= 4) sizes.push_back(bytes);
  std::vector<double> best_ring(sizes.size(), INFINITY), best_mpi(sizes.size(), INFINITY);
  std::vector<long> wrong(sizes.size(), 0);
  // Rounds outermost: a slow spell of this shared machine then hits one sample of many sizes, not every
  // sample of one size.
  Buffer buf;
  for (int r = 0; r < rounds; ++r) {
    for (size_t k = 0; k < sizes.size(); ++k) {
      const long bytes = sizes[k];
      buf.assign(bytes / sizeof(float), 0.0f);
      const int iters = bytes < (1 << 20) ? 200 : (bytes < (32 << 20) ? 20 : 5);
      if (r == 0) {
        fill(buf, rank);
        ours(buf);
        wrong[k] += wrong_elements(buf, n);
        fill(buf, rank);
        mpi_allreduce(buf);
        wrong[k] += wrong_elements(buf, n);
      }
      best_ring[k] = std::min(best_ring[k], time_block(ours, buf, iters));
      best_mpi[k] = std::min(best_mpi[k], time_block(mpi_allreduce, buf, iters));
    }
  }
  MPI_Allreduce(MPI_IN_PLACE, wrong.data(), static_cast<int>(wrong.size()), MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
  for (size_t k = 0; k < sizes.size() && rank == 0; ++k) {
    const long bytes = sizes[k];
    const double ring_alg = bytes / best_ring[k] / 1e9, mpi_alg = bytes / best_mpi[k] / 1e9;
    std::printf("%12ld %12ld | %10.1f %9.2f %9.2f | %10.1f %9.2f %9.2f | %9.2f %6ld\n", bytes,
                bytes / static_cast<long>(sizeof(float)), best_ring[k] * 1e6, ring_alg, ring_alg * bus,
                best_mpi[k] * 1e6, mpi_alg, mpi_alg * bus, best_mpi[k] / best_ring[k], wrong[k]);
  }
  return 0;
}
