// make_nccl_communicator for builds configured with -DRINGTRAIN_CUDA=OFF.
#include "ringtrain/comm/nccl_communicator.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

std::unique_ptr<Communicator> make_nccl_communicator(Communicator&, NcclStream) {
  throw Error("no CUDA device: ringtrain was built with RINGTRAIN_CUDA=OFF, so there is no NCCL backend");
}

}  // namespace ringtrain
