// Where this process sits in the job, as its launcher told it through the environment: srun (SLURM_*),
// Open MPI's mpirun (OMPI_COMM_WORLD_*), or nothing (a one-process job). MPI itself gives rank and size; this
// is for what MPI does not say (the node-local rank that picks a GPU, the job id that names outputs) and for
// catching a launch that MPI did not see (srun without PMI starts N one-rank jobs).
#pragma once
#include <string>

#include "ringtrain/comm/communicator.hpp"

namespace ringtrain {

struct Launch {
  enum Launcher { none, mpirun, slurm } launcher = none;
  std::string job_id;    // SLURM_JOB_ID; "" outside SLURM
  int rank = -1, tasks = -1;      // SLURM_PROCID / SLURM_NTASKS, OMPI_COMM_WORLD_RANK / _SIZE
  int local_rank = -1;             // SLURM_LOCALID, OMPI_COMM_WORLD_LOCAL_RANK, ...: picks the GPU
  int node = -1;                   // SLURM_NODEID
};

Launch launch_from_environment();

// `text` with every "%<key>" replaced by `value` (other "%" left as they are).
std::string replace_placeholder(const std::string& text, char key, const std::string& value);

// Collective: what "%j" stands for in output names. SLURM's job id; outside SLURM one that rank 0 makes for
// this job, the same on every rank ("local-<host>-<yyyymmdd-hhmmss>-<pid>"), so that two jobs started by hand
// never share an output name or a checkpoint directory.
std::string output_job_id(const Launch& launch, Communicator& world);

// An output path with "%j" replaced by `job_id`, as sbatch --output does: `--metrics run-%j.csv` gives
// run-4242.csv.
std::string expand_output_name(const std::string& path, const std::string& job_id);

// What is wrong when the launcher started more tasks than the MPI world holds, or "": srun without PMI support
// (--mpi=pmix) starts each task as an MPI job of its own, and each would train alone, writing the same files.
std::string launch_problem(const Launch& launch, int world_size);
// Throws Error saying launch_problem's text when there is one (training refuses; `ringtrain doctor` reports it).
void check_launch(const Launch& launch, int world_size);

}  // namespace ringtrain
