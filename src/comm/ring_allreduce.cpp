#include "ringtrain/comm/ring_allreduce.hpp"

#include <algorithm>
#include <array>

#include "ringtrain/comm/mpi_communicator.hpp"

namespace ringtrain {

namespace {

constexpr int kInflight = 4;  // receives posted ahead of the one being reduced
// Transfers start only once every rank has agreed to run them, so the peer is normally a segment's copy
// away, and keeping MPI's progress engine turning matters: a napping rank neither matches the peer's
// rendezvous requests nor acknowledges its pulls. Spinning 1 ms rather than 200 us is worth 30% at 64-256 MiB
// (bench/allreduce); past it the peer is descheduled and napping gives the core back to compute.
constexpr std::chrono::microseconds kSpin(1000);

// Chunk c of n: as even as possible, the first count % n chunks one element longer.
size_t chunk_begin(size_t count, int n, int c) {
  const size_t base = count / n, extra = count % n;
  return base * c + std::min<size_t>(c, extra);
}

struct Segment {
  int step;
  size_t begin, len;  // in elements, into the whole buffer
};

void add_into(float* __restrict dst, const float* __restrict src, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] += src[i];
}

}  // namespace

void ring_allreduce(MPI_Comm comm, float* data, size_t count, size_t segment_elems, RingScratch& scratch) {
  int rank = 0, n = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &n);
  if (n == 1 || count == 0) return;
  segment_elems = std::max<size_t>(segment_elems, 1);
  const int left = (rank + n - 1) % n, right = (rank + 1) % n;
  const int steps = 2 * (n - 1);  // 0..n-2 reduce-scatter, n-1..2n-3 allgather
  auto sent_chunk = [&](int s) { return ((rank - s) % n + n) % n; };
  auto received_chunk = [&](int s) { return ((rank - s - 1) % n + n) % n; };

  // Both ends of a link cut a chunk into the same segments, so messages match one to one, in order.
  auto segments_of = [&](int step, int chunk, std::vector<Segment>& out) {
    const size_t begin = chunk_begin(count, n, chunk), end = chunk_begin(count, n, chunk + 1);
    for (size_t b = begin; b < end; b += segment_elems) out.push_back({step, b, std::min(segment_elems, end - b)});
  };
  std::vector<Segment> incoming, outgoing;
  std::vector<size_t> outgoing_offset(steps + 1);
  for (int s = 0; s < steps; ++s) {
    segments_of(s, received_chunk(s), incoming);
    outgoing_offset[s] = outgoing.size();
    segments_of(s, sent_chunk(s), outgoing);
  }
  outgoing_offset[steps] = outgoing.size();

  scratch.resize(kInflight * segment_elems);
  std::vector<MPI_Request> sends(outgoing.size(), MPI_REQUEST_NULL);
  std::vector<char> issued(outgoing.size(), 0);
  std::array<MPI_Request, kInflight> recvs;
  recvs.fill(MPI_REQUEST_NULL);
  auto segment_index = [&](const Segment& g, int chunk) {
    return (g.begin - chunk_begin(count, n, chunk)) / segment_elems;
  };
  auto isend = [&](size_t index) {
    const Segment& g = outgoing[index];
    check_mpi(MPI_Isend(data + g.begin, static_cast<int>(g.len), MPI_FLOAT, right, g.step, comm, &sends[index]),
              "MPI_Isend");
    issued[index] = 1;
  };
  // An allgather receive lands in place, over the region this rank sent at reduce-scatter step
  // g.step + 1 - n; it may be posted only once that send is complete. Ahead of need it is posted only if
  // the send already is (MPI_Test); the receive about to be waited for waits for its send.
  auto overwritten_send = [&](const Segment& g) {
    return outgoing_offset[g.step + 1 - n] + segment_index(g, received_chunk(g.step));
  };
  size_t posted = 0;
  // Receives are posted in order, up to kInflight ahead of the one being reduced; `needed` must be posted.
  auto post_receives = [&](size_t limit, size_t needed) {
    for (limit = std::min(limit, incoming.size()); posted < limit; ++posted) {
      const Segment& g = incoming[posted];
      float* target = scratch.data() + (posted % kInflight) * segment_elems;
      if (g.step >= n - 1) {
        const size_t send = overwritten_send(g);
        if (!issued[send]) return;
        int complete = 0;
        check_mpi(MPI_Test(&sends[send], &complete, MPI_STATUS_IGNORE), "MPI_Test");
        if (!complete && posted > needed) return;
        if (!complete) wait_requests(&sends[send], 1, kSpin);
        target = data + g.begin;
      }
      check_mpi(MPI_Irecv(target, static_cast<int>(g.len), MPI_FLOAT, left, g.step, comm, &recvs[posted % kInflight]),
                "MPI_Irecv");
    }
  };

  for (size_t i = outgoing_offset[0]; i < outgoing_offset[1]; ++i) isend(i);
  for (size_t i = 0; i < incoming.size(); ++i) {
    post_receives(i + kInflight, i);
    const Segment& g = incoming[i];
    wait_requests(&recvs[i % kInflight], 1, kSpin);
    if (g.step < n - 1) add_into(data + g.begin, scratch.data() + (i % kInflight) * segment_elems, g.len);
    // What was just received (and reduced) is what this rank sends on at the next step.
    if (g.step + 1 < steps) isend(outgoing_offset[g.step + 1] + segment_index(g, received_chunk(g.step)));
  }
  wait_requests(sends.data(), static_cast<int>(sends.size()), kSpin);
}

}  // namespace ringtrain
