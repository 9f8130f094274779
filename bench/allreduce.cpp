// Allreduce bus bandwidth of several algorithms side by side in one run, with the nccl-tests definitions:
// algbw = bytes / time, busbw = algbw * 2(n-1)/n (bytes are float32 bytes, whatever crosses the wire).
// usage: mpirun -np N build/bench/allreduce [MIN_BYTES] [MAX_BYTES] [ROUNDS] [ALGORITHMS]
//   ALGORITHMS: comma-separated, default ring,mpi. ring (ringtrain's flat ring), hierarchical (ringtrain's
//   node-aware ring), mpi (MPI_Allreduce, as shared/peers/mpi_allreduce.c calls it), auto; each may end in
//   +bf16 or +fp16 (16-bit floats on the wire). RINGTRAIN_RANKS_PER_NODE=k groups consecutive ranks into
//   emulated nodes (default: the nodes MPI sees).
// Each size is timed in ROUNDS interleaved blocks (one per algorithm, in turn), the rounds sweeping all sizes,
// and the best block of each is kept, so all see the same machine noise. Buffers come from the allocator
// of ringtrain's tensors (huge pages from 2 MiB). Every result is checked against the exact sum ("wrong").
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "ringtrain/comm/mpi_communicator.hpp"
#include "ringtrain/comm/mpi_session.hpp"
#include "ringtrain/tensor/host_allocator.hpp"

using namespace ringtrain;

namespace {

using Buffer = std::vector<float, HostAllocator<float>>;

// Mean seconds per allreduce over `iters`, the slowest rank's.
double time_block(Communicator& comm, Buffer& buf, int iters) {
  MPI_Barrier(MPI_COMM_WORLD);
  const double start = MPI_Wtime();
  for (int i = 0; i < iters; ++i) comm.allreduce_sum(buf.data(), buf.size());
  double t = (MPI_Wtime() - start) / iters;
  MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return t;
}

// Values whose sums are exact in float (and in bf16 and fp16): rank r contributes r + 1 + (i % 7).
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

struct Variant {
  std::string name;
  std::unique_ptr<MpiCommunicator> comm;
};

// "hierarchical+bf16" -> a communicator running it. Exits on a name it does not know (every rank alike).
Variant make_variant(const std::string& name, int ranks_per_node) {
  const size_t plus = name.find('+');
  const std::string algorithm = name.substr(0, plus), wire = plus == std::string::npos ? "" : name.substr(plus + 1);
  MpiCommunicatorConfig config;
  config.ranks_per_node = ranks_per_node;
  if (const char* kb = std::getenv("RINGTRAIN_SEGMENT_KB")) config.segment_bytes = std::atol(kb) << 10;
  const auto chosen = enum_from_name<AllreduceAlgorithm>(algorithm);
  const auto format = enum_from_name<HalfFormat>(wire);
  if (!chosen || (!wire.empty() && !format)) {
    std::fprintf(stderr, "allreduce: unknown algorithm '%s' (ring, hierarchical, mpi or auto, +bf16 or +fp16)\n",
                 name.c_str());
    std::exit(2);
  }
  config.allreduce = *chosen;
  if (format) config.compress = *format;
  return {name, std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, config)};
}

}  // namespace

int main(int argc, char** argv) {
  MpiSession session(&argc, &argv);
  const long min_bytes = argc > 1 ? std::atol(argv[1]) : 4096;
  const long max_bytes = argc > 2 ? std::atol(argv[2]) : 256L << 20;
  const int rounds = argc > 3 ? std::atoi(argv[3]) : 3;
  const std::string list = argc > 4 ? argv[4] : "ring,mpi";
  const char* per_node = std::getenv("RINGTRAIN_RANKS_PER_NODE");
  std::vector<Variant> variants;
  std::istringstream names(list);
  const int ranks_per_node = per_node ? std::atoi(per_node) : 0;
  for (std::string name; std::getline(names, name, ',');) variants.push_back(make_variant(name, ranks_per_node));
  const int n = variants.front().comm->size(), rank = variants.front().comm->rank();
  const double bus = 2.0 * (n - 1) / n;
  if (rank == 0) {
    std::printf("# allreduce, float32 sum, %d ranks; best of %d blocks; busbw in GB/s of float32 data\n", n, rounds);
    std::printf("%12s %12s", "bytes", "count");
    for (const Variant& v : variants) std::printf(" | %18s %9s", (v.name + "_us").c_str(), (v.name + "_busbw").c_str());
    std::printf(" | %6s\n", "wrong");
  }
  std::vector<long> sizes;
  for (long bytes = min_bytes; bytes <= max_bytes; bytes *= 4) sizes.push_back(bytes);
  std::vector<std::vector<double>> best(variants.size(), std::vector<double>(sizes.size(), INFINITY));
  std::vector<long> wrong(sizes.size(), 0);
  // Rounds outermost: a slow spell of this shared machine then hits one sample of many sizes, not every
  // sample of one size.
  Buffer buf;
  for (int r = 0; r < rounds; ++r) {
    for (size_t k = 0; k < sizes.size(); ++k) {
      const long bytes = sizes[k];
      buf.assign(bytes / sizeof(float), 0.0f);
      const int iters = bytes < (1 << 20) ? 200 : (bytes < (32 << 20) ? 20 : 5);
      for (size_t a = 0; a < variants.size(); ++a) {
        if (r == 0) {
          fill(buf, rank);
          variants[a].comm->allreduce_sum(buf.data(), buf.size());
          wrong[k] += wrong_elements(buf, n);
        }
        best[a][k] = std::min(best[a][k], time_block(*variants[a].comm, buf, iters));
      }
    }
  }
  MPI_Allreduce(MPI_IN_PLACE, wrong.data(), static_cast<int>(wrong.size()), MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
  for (size_t k = 0; k < sizes.size() && rank == 0; ++k) {
    const long bytes = sizes[k];
    std::printf("%12ld %12ld", bytes, bytes / static_cast<long>(sizeof(float)));
    for (size_t a = 0; a < variants.size(); ++a)
      std::printf(" | %18.1f %9.3f", best[a][k] * 1e6, bytes / best[a][k] / 1e9 * bus);
    std::printf(" | %6ld\n", wrong[k]);
  }
  return 0;
}
