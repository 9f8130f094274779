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

// Where segments travel from and land: the float32 buffer itself, or a 16-bit copy of it (`wire`), which
// a segment is encoded into just before it is first sent and which allgather receives land in and are
// forwarded from unchanged, so a value is rounded once however many ranks it passes.
class Wire {
 public:
  Wire(float* data, size_t count, const std::optional<HalfFormat>& format, size_t segment_elems, RingBuffers& b)
      : data_(data), format_(format), buffers_(b), segment_elems_(segment_elems) {
    if (format_) {
      b.half_scratch.resize(kInflight * segment_elems);
      b.half_wire.resize(count);
    } else {
      b.scratch.resize(kInflight * segment_elems);
    }
  }
  MPI_Datatype type() const { return format_ ? MPI_UINT16_T : MPI_FLOAT; }
  void* at(size_t i) { return format_ ? static_cast<void*>(buffers_.half_wire.data() + i) : data_ + i; }
  void* scratch(int slot) {
    return format_ ? static_cast<void*>(buffers_.half_scratch.data() + slot * segment_elems_)
                   : buffers_.scratch.data() + slot * segment_elems_;
  }
  // data[begin, begin + len) += the segment received into scratch slot `slot`.
  void reduce(size_t begin, size_t len, int slot) {
    if (format_) add_decoded_half(*format_, buffers_.half_scratch.data() + slot * segment_elems_, data_ + begin, len);
    else add_into(data_ + begin, buffers_.scratch.data() + slot * segment_elems_, len);
  }
  // Before a segment of the buffer is first sent. A fully reduced segment (`owned`) is also rounded in the
  // owner's buffer, which must end equal to everyone else's.
  void stage(size_t begin, size_t len, bool owned) {
    if (!format_) return;
    encode_half(*format_, data_ + begin, buffers_.half_wire.data() + begin, len);
    if (owned) decode_half(*format_, buffers_.half_wire.data() + begin, data_ + begin, len);
  }
  // After an allgather segment landed on the wire.
  void unstage(size_t begin, size_t len) {
    if (format_) decode_half(*format_, buffers_.half_wire.data() + begin, data_ + begin, len);
  }

 private:
  float* data_;
  std::optional<HalfFormat> format_;
  RingBuffers& buffers_;
  size_t segment_elems_;
};

enum class RingPart { reduce_scatter, allgather, both };

void run_ring(MPI_Comm comm, float* data, size_t count, const RingConfig& config, RingBuffers& buffers,
              RingPart part) {
  int rank = 0, n = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &n);
  if (n == 1 || count == 0) return;
  const size_t element_bytes = config.wire ? sizeof(uint16_t) : sizeof(float);
  const size_t segment_elems = std::max<size_t>(config.segment_bytes / element_bytes, 1);
  Wire wire(data, count, config.wire, segment_elems, buffers);
  const int left = (rank + n - 1) % n, right = (rank + 1) % n;
  // Steps 0..n-2 reduce-scatter, n-1..2n-3 allgather; this call runs [first, end).
  const int first = part == RingPart::allgather ? n - 1 : 0;
  const int end = part == RingPart::reduce_scatter ? n - 1 : 2 * (n - 1);
  auto sent_chunk = [&](int s) { return ((rank - s) % n + n) % n; };
  auto received_chunk = [&](int s) { return ((rank - s - 1) % n + n) % n; };

  // Both ends of a link cut a chunk into the same segments, so messages match one to one, in order.
  auto segments_of = [&](int step, int chunk, std::vector<Segment>& out) {
    const size_t begin = chunk_begin(count, n, chunk), stop = chunk_begin(count, n, chunk + 1);
    for (size_t b = begin; b < stop; b += segment_elems) out.push_back({step, b, std::min(segment_elems, stop - b)});
  };
  std::vector<Segment> incoming, outgoing;
  std::vector<size_t> outgoing_offset(end - first + 1);  // by step - first
  for (int s = first; s < end; ++s) {
    segments_of(s, received_chunk(s), incoming);
    outgoing_offset[s - first] = outgoing.size();
    segments_of(s, sent_chunk(s), outgoing);
  }
  outgoing_offset[end - first] = outgoing.size();

  std::vector<MPI_Request> sends(outgoing.size(), MPI_REQUEST_NULL);
  std::vector<char> issued(outgoing.size(), 0);
  std::array<MPI_Request, kInflight> recvs;
  recvs.fill(MPI_REQUEST_NULL);
  auto segment_index = [&](const Segment& g, int chunk) {
    return (g.begin - chunk_begin(count, n, chunk)) / segment_elems;
  };
  auto isend = [&](size_t index) {
    const Segment& g = outgoing[index];
    // Up to the first allgather step a rank sends what it reduced; after it, what it received.
    if (g.step <= n - 1) wire.stage(g.begin, g.len, g.step == n - 1);
    check_mpi(MPI_Isend(wire.at(g.begin), static_cast<int>(g.len), wire.type(), right, g.step, comm, &sends[index]),
              "MPI_Isend");
    issued[index] = 1;
  };
  // An allgather receive lands in place, over the region this rank sent at reduce-scatter step
  // g.step + 1 - n (when this call ran it); it may be posted only once that send is complete. Ahead of need
  // it is posted only if the send already is (MPI_Test); the receive about to be waited for waits for it.
  auto overwritten_send = [&](const Segment& g) -> std::optional<size_t> {
    const int step = g.step + 1 - n;
    if (step < first) return std::nullopt;
    return outgoing_offset[step - first] + segment_index(g, received_chunk(g.step));
  };
  size_t posted = 0;
  // Receives are posted in order, up to kInflight ahead of the one being reduced; `needed` must be posted.
  auto post_receives = [&](size_t limit, size_t needed) {
    for (limit = std::min(limit, incoming.size()); posted < limit; ++posted) {
      const Segment& g = incoming[posted];
      void* target = wire.scratch(static_cast<int>(posted % kInflight));
      if (g.step >= n - 1) {
        if (const std::optional<size_t> send = overwritten_send(g)) {
          if (!issued[*send]) return;
          int complete = 0;
          check_mpi(MPI_Test(&sends[*send], &complete, MPI_STATUS_IGNORE), "MPI_Test");
          if (!complete && posted > needed) return;
          if (!complete) wait_requests(&sends[*send], 1, kSpin);
        }
        target = wire.at(g.begin);
      }
      check_mpi(MPI_Irecv(target, static_cast<int>(g.len), wire.type(), left, g.step, comm, &recvs[posted % kInflight]),
                "MPI_Irecv");
    }
  };

  for (size_t i = outgoing_offset[0]; i < outgoing_offset[1]; ++i) isend(i);
  for (size_t i = 0; i < incoming.size(); ++i) {
    post_receives(i + kInflight, i);
    const Segment& g = incoming[i];
    wait_requests(&recvs[i % kInflight], 1, kSpin);
    if (g.step < n - 1) wire.reduce(g.begin, g.len, static_cast<int>(i % kInflight));
    else wire.unstage(g.begin, g.len);
    // What was just received (and reduced) is what this rank sends on at the next step.
    if (g.step + 1 < end) isend(outgoing_offset[g.step + 1 - first] + segment_index(g, received_chunk(g.step)));
  }
  wait_requests(sends.data(), static_cast<int>(sends.size()), kSpin);
}

RingConfig float32_wire(RingConfig config) {
  config.wire.reset();
  return config;
}

}  // namespace

void ring_allreduce(MPI_Comm comm, float* data, size_t count, const RingConfig& config, RingBuffers& buffers) {
  run_ring(comm, data, count, config, buffers, RingPart::both);
}

void ring_reduce_scatter(MPI_Comm comm, float* data, size_t count, const RingConfig& config, RingBuffers& buffers) {
  run_ring(comm, data, count, float32_wire(config), buffers, RingPart::reduce_scatter);
}

void ring_allgather(MPI_Comm comm, float* data, size_t count, const RingConfig& config, RingBuffers& buffers) {
  run_ring(comm, data, count, float32_wire(config), buffers, RingPart::allgather);
}

ElementRange even_chunk(size_t count, int ranks, int chunk) {
  return {chunk_begin(count, ranks, chunk), chunk_begin(count, ranks, chunk + 1)};
}

ElementRange ring_owned_chunk(size_t count, int ranks, int rank) {
  // After n-1 reduce-scatter steps rank r has reduced the chunk it received last: (r + 1) mod n.
  return even_chunk(count, ranks, (rank + 1) % ranks);
}

}  // namespace ringtrain
