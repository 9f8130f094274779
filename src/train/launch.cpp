#include "ringtrain/train/launch.hpp"

#include <unistd.h>

#include <cstdlib>
#include <ctime>

#include "ringtrain/comm/agreement.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

namespace {

// A non-negative integer from the environment, or -1.
int env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return -1;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return *end == '\0' && n >= 0 ? static_cast<int>(n) : -1;
}

}  // namespace

Launch launch_from_environment() {
  Launch l;
  // mpirun first: inside an sbatch allocation its ranks also inherit the batch step's SLURM_PROCID and
  // SLURM_LOCALID (0 for all of them). An srun task has a step id; the batch script itself has none.
  if (env_int("OMPI_COMM_WORLD_RANK") >= 0) {
    l.launcher = Launch::mpirun;
    l.rank = env_int("OMPI_COMM_WORLD_RANK");
    l.tasks = env_int("OMPI_COMM_WORLD_SIZE");
    l.local_rank = env_int("OMPI_COMM_WORLD_LOCAL_RANK");
  } else if (std::getenv("SLURM_STEP_ID") && env_int("SLURM_PROCID") >= 0) {
    l.launcher = Launch::slurm;
    l.rank = env_int("SLURM_PROCID");
    l.tasks = env_int("SLURM_NTASKS");
    l.local_rank = env_int("SLURM_LOCALID");
    l.node = env_int("SLURM_NODEID");
  }
  if (l.local_rank < 0)  // MPICH/Intel MPI, MVAPICH, a SLURM batch script
    for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "MV2_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID"})
      if ((l.local_rank = env_int(name)) >= 0) break;
  if (const char* job = std::getenv("SLURM_JOB_ID")) l.job_id = job;
  return l;
}

std::string replace_placeholder(const std::string& text, char key, const std::string& value) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 1 < text.size() && text[i + 1] == key) {
      out += value;
      ++i;
    } else {
      out += text[i];
    }
  }
  return out;
}

std::string output_job_id(const Launch& launch, Communicator& world) {
  if (!launch.job_id.empty()) return launch.job_id;
  std::string id;
  if (world.rank() == 0) {
    const std::time_t now = std::time(nullptr);
    char when[32];
    std::strftime(when, sizeof when, "%Y%m%d-%H%M%S", std::localtime(&now));
    id = "local-" + host_name() + "-" + when + "-" + std::to_string(::getpid());
  }
  return allgather_strings(world, id)[0];
}

std::string expand_output_name(const std::string& path, const std::string& job_id) {
  return replace_placeholder(path, 'j', job_id);
}

std::string launch_problem(const Launch& launch, int world_size) {
  if (launch.tasks <= 1 || world_size == launch.tasks) return "";
  return (launch.launcher == Launch::slurm ? "srun started " : "the launcher started ") +
         std::to_string(launch.tasks) + " tasks but MPI sees a world of " + std::to_string(world_size) +
         (world_size == 1 ? " rank" : " ranks") +
         ": each would train alone. Launch with srun --mpi=pmix (or MpiDefault=pmix in slurm.conf), or with "
         "mpirun inside the allocation";
}

void check_launch(const Launch& launch, int world_size) {
  const std::string problem = launch_problem(launch, world_size);
  if (!problem.empty()) throw Error(problem);
}

}  // namespace ringtrain
