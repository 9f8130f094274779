// The NCCL backend: GPU buffers, reduced over NVLink/PCIe/InfiniBand by NCCL's own rings and trees. Calls
// are queued on the CUDA engine's communication stream and return at once (see communicator.hpp); NCCL has
// no message tags, so send/recv pairs match in call order.
#pragma once
#include <memory>

#include "ringtrain/comm/communicator.hpp"

namespace ringtrain {

// Where a NCCL communicator queues its calls. shared: the CUDA engine's communication stream, ordered around
// compute by comm_stream_waits_for_compute / compute_stream_waits_for_comm (gradient allreduce). own: a
// stream of its own; isend/irecv wait for compute before they start and their Transfer::wait orders compute
// after them, and a collective (allreduce, broadcast, allgather) is ordered both ways at once, as on the
// host (a pipeline's stages agree on non-finite gradients so, parallel/nonfinite_guard.hpp). A pipeline stage sends activations and gradients on two such communicators, one per
// direction: NCCL's send and receive hold their stream until the peer joins, so the two directions on one
// stream could each wait behind the other.
enum class NcclStream { shared, own };

// Collective over `bootstrap`'s ranks, each of which must already drive its own GPU (use_cuda_device):
// rank 0's ncclUniqueId reaches the others by bootstrap.broadcast, then every rank joins. Throws Error
// when the build has no CUDA. Destroyed while an exception unwinds, or after one of its calls failed, the
// communicator is aborted (ncclCommAbort), not destroyed: ncclCommDestroy would let queued operations wait
// for peers that may never come.
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, NcclStream stream = NcclStream::shared);

}  // namespace ringtrain
