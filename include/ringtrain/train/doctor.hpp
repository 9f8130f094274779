// `ringtrain doctor`: what every rank of a job would train with (its host, local rank, GPU, CPU binding,
// compute threads and the network MPI would use), gathered to rank 0 and printed as one table, followed by
// the mistakes of the launch that show in it: cores oversubscribed, a GPU shared, an MPI without
// MPI_THREAD_MULTIPLE, tasks that MPI did not join. Run under the same srun or mpirun line (and --threads,
// --gpu) as the training, before a long job waits in the queue only to run slowly or not at all.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "ringtrain/comm/communicator.hpp"
#include "ringtrain/comm/mpi_session.hpp"
#include "ringtrain/train/config.hpp"
#include "ringtrain/train/launch.hpp"

namespace ringtrain {

// One rank's facts, as it found them in its own process.
struct RankFacts {
  int rank = 0;
  int world_size = 1;            // MPI's
  std::string host;
  int host_cpus = 1;             // CPUs online on the host
  Launch launch;                 // what the launcher's environment says (local rank, its task count)
  int gpu = -1;                  // the CUDA device --device cuda would pick; -1: none (CPU build, no GPU)
  std::string gpu_bus_id;        // its PCI address: the physical GPU whatever CUDA_VISIBLE_DEVICES calls it
  std::string gpu_problem;       // why there is no GPU for this rank although the host has some, or ""
  std::vector<int> cpus;         // the CPUs the rank may run on (sched_getaffinity), ascending
  int threads = 1;               // compute threads training would use
  std::vector<std::string> network;  // "eth0 192.0.2.2": the interfaces MPI's TCP traffic would use
  MpiThreadLevel mpi_threads = MpiThreadLevel::multiple;
};

// What a rank's facts travel to rank 0 as (allgather_strings), and back. Throws Error on text that
// serialize_facts did not write.
std::string serialize_facts(const RankFacts& facts);
RankFacts parse_facts(const std::string& text);

// One line per problem the job's facts (every rank's, in rank order) show; none for a healthy job.
std::vector<std::string> doctor_warnings(const std::vector<RankFacts>& ranks);

// The table, a row per rank, as rank 0 prints it.
std::string facts_table(const std::vector<RankFacts>& ranks);

// Ascending numbers as a compact list, runs joined by '-': {0, 1, 2, 3, 6} -> "0-3,6"; "" for none.
std::string compact_list(const std::vector<int>& numbers);

// A network interface as getifaddrs lists it (IPv4 only).
struct NetInterface {
  std::string name;
  uint32_t ipv4 = 0;  // host byte order
  bool up = false, loopback = false;
};

// "192.0.2.2".
std::string ipv4_text(uint32_t address);

// The interfaces Open MPI's TCP transport would use among `interfaces`: those up, named or inside a subnet
// ("10.0.0.0/8") of `include` (OMPI_MCA_btl_tcp_if_include, comma-separated) when it is set; else those
// neither loopback nor named or inside a subnet of `exclude` (OMPI_MCA_btl_tcp_if_exclude).
std::vector<NetInterface> mpi_tcp_interfaces(const std::vector<NetInterface>& interfaces, const std::string& include,
                                             const std::string& exclude);

// This process's facts: `threads` as training would set them, the GPU --gpu `gpu` (-1: the local rank's).
RankFacts this_rank_facts(const DoctorConfig& config, Communicator& world, MpiThreadLevel mpi_threads);

// Collective: every rank's facts to rank 0, which prints the table and the warnings to `out`. Returns the
// number of warnings (the same on every rank).
size_t run_doctor(const DoctorConfig& config, Communicator& world, MpiThreadLevel mpi_threads, std::ostream& out);

}  // namespace ringtrain
