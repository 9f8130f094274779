// What the rest of ringtrain may ask of the other ranks. The communicator moves buffers; it knows nothing of
// layers or models. Backends: MPI (host buffers, our ring or MPI_Allreduce) and NCCL (GPU buffers).
// Collective calls must be made by all ranks of the communicator in the same order; the only thread rule is
// one caller at a time per communicator (give each thread its own, see split_off()).
//
// Completion follows the buffers: a host backend has finished a call when it returns; a device backend (NCCL)
// has queued it on the GPU's communication stream, and device work is ordered around it by stream events
// (device.hpp: comm_stream_waits_for_compute, compute_stream_waits_for_comm), never by the host.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "ringtrain/tensor/device.hpp"

namespace ringtrain {

// A point-to-point transfer in flight (Communicator::isend/irecv). wait(): on a host backend, returns once
// the buffer is sent or filled; on a device backend, orders the compute stream after the transfer. A
// transfer dropped without wait() is cancelled or left to finish (error paths only: it never blocks).
class Transfer {
 public:
  virtual ~Transfer() = default;
  virtual void wait() = 0;
  // Whether it has finished, without waiting (a device backend: whether the GPU has run it).
  virtual bool test() = 0;
  // A finished receive's message tag (what irecv with kAnyTag took); -1 for sends.
  virtual int tag() const { return -1; }
};

// The elements [begin, end) of a buffer.
struct ElementRange {
  size_t begin = 0, end = 0;
  size_t size() const { return end - begin; }
};

// irecv's tag for "the next message from that peer, whatever its tag" (host backends).
inline constexpr int kAnyTag = -1;

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;  // "ring" (ours over MPI), "mpi" (MPI_Allreduce), "nccl"
  // Where the buffers passed to this communicator live.
  virtual Device device() const { return Device::cpu; }
  // What a float of allreduce_sum costs on the wire (2 when it travels as a 16-bit float).
  virtual size_t wire_bytes_per_float() const { return sizeof(float); }

  // Element-wise sum over all ranks, in place. Any count, 0 included.
  virtual void allreduce_sum(float* data, size_t count) = 0;
  virtual void allreduce_sum(double* data, size_t count) = 0;
  // The same, started and left to run: the sums are in `data` once the transfer has finished. For small
  // agreements kept off a step's critical path (a stop vote); a transfer dropped unfinished is left to run.
  virtual std::unique_ptr<Transfer> iallreduce_sum(double* data, size_t count) = 0;
  // The two halves of an allreduce, for ZeRO (--shard-optimizer): together they put the same bytes on the
  // wire as allreduce_sum, float32 always. owned_range(count): the part of a count-element buffer this rank
  // owns; the ranks' parts cut the buffer without gaps or overlap, in sizes that differ by one at most.
  // reduce_scatter_sum leaves the sum over all ranks in this rank's owned range of `data` (the rest is
  // scratch); allgather_owned copies every rank's owned range into the same range of every rank's `data`.
  // A backend without them throws.
  virtual ElementRange owned_range(size_t count) const;
  virtual void reduce_scatter_sum(float* data, size_t count);
  virtual void allgather_owned(float* data, size_t count);
  // Copies root's `bytes` into every rank's `data`.
  virtual void broadcast(void* data, size_t bytes, int root) = 0;
  // Concatenates every rank's `bytes` in rank order into `out` (size() * bytes).
  virtual void allgather(const void* in, void* out, size_t bytes) = 0;
  virtual void send(const void* data, size_t bytes, int peer, int tag) = 0;
  virtual void recv(void* data, size_t bytes, int peer, int tag) = 0;
  // Non-blocking send/recv (pipeline stages overlap them with compute). Messages between two ranks with the
  // same tag arrive in the order sent; the buffer must stay untouched until the transfer's wait().
  virtual std::unique_ptr<Transfer> isend(const void* data, size_t bytes, int peer, int tag) = 0;
  virtual std::unique_ptr<Transfer> irecv(void* data, size_t bytes, int peer, int tag) = 0;
  virtual void barrier() = 0;
  // Copies between two of this rank's buffers, in order with this communicator's calls (the allreduce engine
  // packs its fusion buffer with it).
  virtual void copy(void* dst, const void* src, size_t bytes);

  // A new communicator over the same ranks whose messages never mix with this one's: one per thread, or per
  // engine, so a background thread and the training thread can both talk at once.
  virtual std::unique_ptr<Communicator> split_off() const = 0;
  // Collective: the ranks passing the same color form a new communicator, ranked by key (then by rank).
  virtual std::unique_ptr<Communicator> split(int color, int key) const = 0;
};

// Every rank's string, in rank order (lengths may differ).
std::vector<std::string> allgather_strings(Communicator& comm, const std::string& mine);

// This machine's name (gethostname), "localhost" when it has none: how ranks name their nodes to each other
// and to the user.
std::string host_name();

}  // namespace ringtrain
