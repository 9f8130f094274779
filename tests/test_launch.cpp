// What ringtrain reads from its launcher's environment: the node-local rank (mpirun's before SLURM's, whose
// values mpirun's ranks inherit from the batch script), the job id in output names, and a launch MPI missed.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/train/launch.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

// Sets variables for one test and restores the environment after.
class Environment {
 public:
  Environment(std::initializer_list<std::pair<const char*, const char*>> vars) {
    for (const char* name : {"SLURM_STEP_ID", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NODEID",
                             "SLURM_JOB_ID", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                             "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "MV2_COMM_WORLD_LOCAL_RANK"}) {
      if (const char* v = std::getenv(name)) saved_.emplace_back(name, v);
      unsetenv(name);
      names_.push_back(name);
    }
    for (const auto& [name, value] : vars) setenv(name, value, 1);
  }
  ~Environment() {
    for (const char* name : names_) unsetenv(name);
    for (const auto& [name, value] : saved_) setenv(name.c_str(), value.c_str(), 1);
  }

 private:
  std::vector<const char*> names_;
  std::vector<std::pair<std::string, std::string>> saved_;
};

TEST(Launch, SrunTaskReadsSlurm) {
  Environment env{{"SLURM_STEP_ID", "0"}, {"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "4"}, {"SLURM_LOCALID", "1"},
                  {"SLURM_NODEID", "1"}, {"SLURM_JOB_ID", "4242"}};
  const Launch l = launch_from_environment();
  EXPECT_EQ(l.launcher, Launch::slurm);
  EXPECT_EQ(l.rank, 3);
  EXPECT_EQ(l.tasks, 4);
  EXPECT_EQ(l.local_rank, 1);
  EXPECT_EQ(l.node, 1);
  EXPECT_EQ(expand_output_name("run-%j.csv", output_job_id(l, test::world())), "run-4242.csv");
}

TEST(Launch, MpirunInsideAnAllocationWinsOverTheBatchScriptsSlurmValues) {
  Environment env{{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_LOCALID", "0"}, {"SLURM_JOB_ID", "7"},
                  {"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}};
  const Launch l = launch_from_environment();
  EXPECT_EQ(l.launcher, Launch::mpirun);
  EXPECT_EQ(l.rank, 1);
  EXPECT_EQ(l.local_rank, 1) << "not the batch script's SLURM_LOCALID 0";
  EXPECT_EQ(expand_output_name("m-%j.csv", output_job_id(l, test::world())), "m-7.csv");
}

TEST(Launch, NoLauncherIsALocalOneProcessJob) {
  Environment env{};
  const Launch l = launch_from_environment();
  EXPECT_EQ(l.launcher, Launch::none);
  EXPECT_EQ(l.local_rank, -1);
  // Outside SLURM each job makes its own id: two jobs started by hand never share an output.
  const std::string job = output_job_id(l, test::world());
  EXPECT_EQ(job.rfind("local-", 0), 0u) << job;
  EXPECT_NE(job.find("-" + std::to_string(::getpid())), std::string::npos) << job;
  EXPECT_EQ(expand_output_name("m-%j.csv", job), "m-" + job + ".csv");
  EXPECT_EQ(expand_output_name("100%", job), "100%");
  EXPECT_NO_THROW(check_launch(l, 1));
}

TEST(Launch, TasksThatMpiDidNotJoinAreAnError) {
  Environment env{{"SLURM_STEP_ID", "0"}, {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}};
  const Launch l = launch_from_environment();
  EXPECT_NO_THROW(check_launch(l, 2));
  try {
    check_launch(l, 1);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("srun started 2 tasks but MPI sees a world of 1 rank"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("--mpi=pmix"), std::string::npos);
  }
}

}  // namespace
}  // namespace ringtrain
