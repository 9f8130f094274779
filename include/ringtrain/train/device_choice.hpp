// Which device a rank trains on. One process drives one GPU: by default the one whose index is the rank's
// place on its node (SLURM_LOCALID under srun, OMPI_COMM_WORLD_LOCAL_RANK under mpirun), as Horovod and
// DDP scripts do with local_rank.
#pragma once
#include <string>

#include "ringtrain/train/config.hpp"

namespace ringtrain {

// The rank's index among the ranks of its node from the launcher's environment, or -1 when none says.
int local_rank_from_environment();

// The GPU for this rank: `requested` when >= 0; else GPU 0 when the launcher left the rank one GPU of its own
// (`own_gpu`: srun --gpus-per-task=1 sets CUDA_VISIBLE_DEVICES per task, so the one GPU a rank sees is its
// own whatever its local rank); else `local_rank` (0 without a launcher). Throws Error when that GPU does
// not exist.
int choose_gpu(int requested, int local_rank, int device_count, bool own_gpu = false);

// The GPU start_device would start for this rank among the `probe`'s devices: `requested` (--gpu) when >= 0,
// else as choose_gpu picks it from the launcher's environment; -1 when the probe found none. Throws Error as
// choose_gpu does.
int gpu_for_this_rank(int requested, const CudaProbe& probe);

// Resolves config.kind (auto -> cuda when a GPU is present) and, for cuda, starts the CUDA engine on the
// chosen GPU: --gpu, else GPU 0 when the launcher left the rank one GPU of its own (CUDA_VISIBLE_DEVICES
// naming one), else the local rank's. Throws Error naming why there is no usable GPU. A GPU-only precision
// (tf32, bf16, fp16) is an error on --device cpu, but under auto it falls back to fp32 on a CPU node, so that
// one script serves GPU and CPU nodes: `note` (when given) then holds the line that says so.
Device start_device(const DeviceConfig& config, std::string* note = nullptr);

}  // namespace ringtrain
