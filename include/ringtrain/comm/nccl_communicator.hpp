// The NCCL backend: GPU buffers, reduced over NVLink/PCIe/InfiniBand by NCCL's own rings and trees. Calls
// are queued on the CUDA engine's communication stream and return at once (see communicator.hpp); NCCL has
// no message tags, so send/recv pairs match in call order.
#pragma once
#include <memory>

#include "ringtrain/comm/communicator.hpp"

namespace ringtrain {

// Collective over `bootstrap`'s ranks, each of which must already drive its own GPU (use_cuda_device):
// rank 0's ncclUniqueId reaches the others by bootstrap.broadcast, then every rank joins. Throws Error
// when the build has no CUDA.
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap);

}  // namespace ringtrain
