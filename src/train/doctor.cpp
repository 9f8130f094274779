#include "ringtrain/train/doctor.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <ostream>
#include <set>
#include <sstream>

#include "ringtrain/comm/agreement.hpp"
#include "ringtrain/tensor/blas.hpp"
#include "ringtrain/tensor/device.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/text.hpp"
#include "ringtrain/train/device_choice.hpp"
#include "ringtrain/train/validate.hpp"

namespace ringtrain {

std::string compact_list(const std::vector<int>& numbers) {
  std::string out;
  for (size_t i = 0; i < numbers.size();) {
    size_t end = i;  // the last of the run that starts at i
    while (end + 1 < numbers.size() && numbers[end + 1] == numbers[end] + 1) ++end;
    out += (out.empty() ? "" : ",") + std::to_string(numbers[i]);
    if (end > i) out += "-" + std::to_string(numbers[end]);
    i = end + 1;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Facts to text and back: one "key=value" line each, a key repeated for each item of a list.

namespace {

int launcher_code(Launch::Launcher launcher) { return static_cast<int>(launcher); }

int parse_int(const std::string& key, const std::string& value) {
  char* end = nullptr;
  const long n = std::strtol(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0') throw Error("doctor: bad " + key + " '" + value + "' from a rank");
  return static_cast<int>(n);
}

}  // namespace

std::string serialize_facts(const RankFacts& f) {
  std::ostringstream out;
  out << "rank=" << f.rank << "\nworld_size=" << f.world_size << "\nhost=" << f.host << "\nhost_cpus=" << f.host_cpus
      << "\nlauncher=" << launcher_code(f.launch.launcher) << "\ntasks=" << f.launch.tasks
      << "\nlocal_rank=" << f.launch.local_rank << "\ngpu=" << f.gpu << "\ngpu_bus_id=" << f.gpu_bus_id
      << "\ngpu_problem=" << f.gpu_problem << "\nthreads=" << f.threads
      << "\nmpi_threads=" << static_cast<int>(f.mpi_threads) << "\n";
  for (int cpu : f.cpus) out << "cpu=" << cpu << "\n";
  for (const std::string& interface : f.network) out << "network=" << interface << "\n";
  return out.str();
}

RankFacts parse_facts(const std::string& text) {
  RankFacts f;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const size_t eq = line.find('=');
    if (eq == std::string::npos) throw Error("doctor: bad line '" + excerpt(line) + "' from a rank");
    const std::string key = line.substr(0, eq), value = line.substr(eq + 1);
    if (key == "rank") f.rank = parse_int(key, value);
    else if (key == "world_size") f.world_size = parse_int(key, value);
    else if (key == "host") f.host = value;
    else if (key == "host_cpus") f.host_cpus = parse_int(key, value);
    else if (key == "launcher") f.launch.launcher = static_cast<Launch::Launcher>(parse_int(key, value));
    else if (key == "tasks") f.launch.tasks = parse_int(key, value);
    else if (key == "local_rank") f.launch.local_rank = parse_int(key, value);
    else if (key == "gpu") f.gpu = parse_int(key, value);
    else if (key == "gpu_bus_id") f.gpu_bus_id = value;
    else if (key == "gpu_problem") f.gpu_problem = value;
    else if (key == "threads") f.threads = parse_int(key, value);
    else if (key == "mpi_threads") f.mpi_threads = static_cast<MpiThreadLevel>(parse_int(key, value));
    else if (key == "cpu") f.cpus.push_back(parse_int(key, value));
    else if (key == "network") f.network.push_back(value);
    else throw Error("doctor: unknown fact '" + excerpt(key) + "' from a rank");
  }
  return f;
}

// ---------------------------------------------------------------------------------------------------------------
// The analysis: each kind of problem from every rank's facts.

namespace {

using Ranks = std::vector<const RankFacts*>;

std::string ranks_text(const Ranks& ranks) {
  std::vector<int> numbers;
  for (const RankFacts* r : ranks) numbers.push_back(r->rank);
  std::sort(numbers.begin(), numbers.end());
  return (numbers.size() == 1 ? "rank " : "ranks ") + compact_list(numbers);
}

// The ranks of each host, hosts in the order of their first rank.
std::vector<Ranks> ranks_by_host(const std::vector<RankFacts>& ranks) {
  std::vector<Ranks> hosts;
  std::map<std::string, size_t> index;
  for (const RankFacts& r : ranks) {
    const auto [at, added] = index.emplace(r.host, hosts.size());
    if (added) hosts.emplace_back();
    hosts[at->second].push_back(&r);
  }
  return hosts;
}

bool overlap(const std::vector<int>& a, const std::vector<int>& b) {  // both ascending
  for (size_t i = 0, j = 0; i < a.size() && j < b.size();) {
    if (a[i] == b[j]) return true;
    a[i] < b[j] ? ++i : ++j;
  }
  return false;
}

// The ranks of one host in groups that share CPUs (a rank shares with any whose mask overlaps its own,
// directly or through others): each group's threads run on the union of its masks and on nothing else.
std::vector<Ranks> cpu_pools(const Ranks& host) {
  std::vector<Ranks> pools;
  for (const RankFacts* r : host) {
    Ranks joined{r};  // r's pool: r and every earlier pool it overlaps
    std::vector<Ranks> apart;
    for (Ranks& pool : pools) {
      const bool shares =
          std::any_of(pool.begin(), pool.end(), [&](const RankFacts* p) { return overlap(p->cpus, r->cpus); });
      if (shares)
        joined.insert(joined.end(), pool.begin(), pool.end());
      else
        apart.push_back(std::move(pool));
    }
    apart.push_back(std::move(joined));
    pools = std::move(apart);
  }
  return pools;
}

std::vector<int> cpu_union(const Ranks& ranks) {
  std::set<int> all;
  for (const RankFacts* r : ranks) all.insert(r->cpus.begin(), r->cpus.end());
  return {all.begin(), all.end()};
}

// More compute threads than CPUs to run them: the threads take turns, and every allreduce waits for the
// slowest rank.
void warn_oversubscribed(const Ranks& host, std::vector<std::string>& warnings) {
  for (const Ranks& pool : cpu_pools(host)) {
    int threads = 0;
    for (const RankFacts* r : pool) threads += r->threads;
    const std::vector<int> cpus = cpu_union(pool);
    if (threads > static_cast<int>(cpus.size()))
      warnings.push_back("oversubscribed: host " + host.front()->host + ", " + ranks_text(pool) + ": " +
                         counted(threads, "compute thread") + " on " + counted(cpus.size(), "CPU") + " (" +
                         compact_list(cpus) + "); give each rank --threads CPUs of its own (srun -c, mpirun "
                         "--map-by slot:PE=N) or lower --threads");
  }
}

bool pinned(const RankFacts& r) { return static_cast<int>(r.cpus.size()) < r.host_cpus; }

// Ranks pinned to fewer CPUs than the host has but to sets that overlap without being the same: pinning is
// meant to keep ranks apart, so a partial overlap is a binding mistake (a wrong cpu map, two job steps on the
// same cores). Ranks bound to the same set (mpirun's --bind-to socket) share it as a pool, which
// warn_oversubscribed judges by its thread count.
void warn_overlapping_bindings(const Ranks& host, std::vector<std::string>& warnings) {
  Ranks involved;
  std::set<int> shared;
  for (size_t i = 0; i < host.size(); ++i) {
    const RankFacts& a = *host[i];
    for (size_t j = i + 1; j < host.size(); ++j) {
      const RankFacts& b = *host[j];
      if (!pinned(a) || !pinned(b) || a.cpus == b.cpus || !overlap(a.cpus, b.cpus)) continue;
      for (const RankFacts* r : {&a, &b})
        if (std::find(involved.begin(), involved.end(), r) == involved.end()) involved.push_back(r);
      std::set_intersection(a.cpus.begin(), a.cpus.end(), b.cpus.begin(), b.cpus.end(),
                            std::inserter(shared, shared.end()));
    }
  }
  if (!involved.empty())
    warnings.push_back("oversubscribed: host " + host.front()->host + ", " + ranks_text(involved) +
                       " are bound to overlapping CPU sets (shared: " +
                       compact_list({shared.begin(), shared.end()}) + "); bind each rank to cores of its own");
}

// Two ranks on one physical GPU: each gets half of it at best, and NCCL refuses a communicator with two
// ranks on one device.
void warn_shared_gpus(const Ranks& host, std::vector<std::string>& warnings) {
  std::map<std::string, Ranks> by_gpu;
  for (const RankFacts* r : host)
    if (r->gpu >= 0) by_gpu[r->gpu_bus_id.empty() ? std::to_string(r->gpu) : r->gpu_bus_id].push_back(r);
  for (const auto& [gpu, ranks] : by_gpu)
    if (ranks.size() > 1)
      warnings.push_back("shared GPU: host " + host.front()->host + ", " + ranks_text(ranks) + " all use GPU " +
                         gpu + "; start one rank per GPU (srun --gpus-per-task 1) or give each its --gpu");
}

// A rank that would find no GPU on a host that has some (more ranks than GPUs, a --gpu beyond them).
void warn_gpu_problems(const std::vector<RankFacts>& ranks, std::vector<std::string>& warnings) {
  for (const RankFacts& r : ranks)
    if (!r.gpu_problem.empty()) warnings.push_back("no GPU: rank " + std::to_string(r.rank) + ": " + r.gpu_problem);
}

// train needs MPI_THREAD_MULTIPLE (the allreduce engine's thread and the training thread both call MPI).
void warn_mpi_thread_level(const std::vector<RankFacts>& ranks, std::vector<std::string>& warnings) {
  std::map<MpiThreadLevel, Ranks> below;
  for (const RankFacts& r : ranks)
    if (r.mpi_threads != MpiThreadLevel::multiple) below[r.mpi_threads].push_back(&r);
  for (const auto& [level, at] : below)
    warnings.push_back("MPI threads: " + ranks_text(at) + ": the MPI library provides " + name_of(level) +
                       ", not MPI_THREAD_MULTIPLE, and train refuses to start; use an MPI built with thread "
                       "support (Open MPI's default build has it)");
}

// Each distinct launch problem once: every task of a launch MPI did not join finds the same one.
void warn_launch(const std::vector<RankFacts>& ranks, std::vector<std::string>& warnings) {
  std::set<std::string> problems;
  for (const RankFacts& r : ranks) {
    const std::string problem = launch_problem(r.launch, r.world_size);
    if (!problem.empty() && problems.insert(problem).second) warnings.push_back("launch: " + problem);
  }
}

}  // namespace

std::vector<std::string> doctor_warnings(const std::vector<RankFacts>& ranks) {
  std::vector<std::string> warnings;
  for (const Ranks& host : ranks_by_host(ranks)) {
    warn_oversubscribed(host, warnings);
    warn_overlapping_bindings(host, warnings);
    warn_shared_gpus(host, warnings);
  }
  warn_gpu_problems(ranks, warnings);
  warn_mpi_thread_level(ranks, warnings);
  warn_launch(ranks, warnings);
  return warnings;
}

// ---------------------------------------------------------------------------------------------------------------
// The table.

namespace {

std::string gpu_cell(const RankFacts& r) {
  if (r.gpu < 0) return r.gpu_problem.empty() ? "none" : "none (see below)";
  return std::to_string(r.gpu) + (r.gpu_bus_id.empty() ? "" : " (" + r.gpu_bus_id + ")");
}

std::string joined(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : separator) + item;
  return out;
}

// Rows as text columns, each as wide as its widest cell, two spaces apart; the last column is not padded.
std::string aligned(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows)
    for (size_t c = 0; c < row.size(); ++c) {
      if (c == width.size()) width.push_back(0);
      width[c] = std::max(width[c], row[c].size());
    }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c)
      line += c + 1 < row.size() ? row[c] + std::string(width[c] - row[c].size() + 2, ' ') : row[c];
    out += line + "\n";
  }
  return out;
}

}  // namespace

std::string facts_table(const std::vector<RankFacts>& ranks) {
  std::vector<std::vector<std::string>> rows{{"rank", "host", "local", "gpu", "cpus", "threads", "network"}};
  for (const RankFacts& r : ranks)
    rows.push_back({std::to_string(r.rank), r.host,
                    r.launch.local_rank >= 0 ? std::to_string(r.launch.local_rank) : "-", gpu_cell(r),
                    compact_list(r.cpus), std::to_string(r.threads),
                    r.network.empty() ? "none" : joined(r.network, ", ")});
  return aligned(rows);
}

// ---------------------------------------------------------------------------------------------------------------
// This process's facts.

std::string ipv4_text(uint32_t address) {
  return std::to_string(address >> 24) + "." + std::to_string((address >> 16) & 0xff) + "." +
         std::to_string((address >> 8) & 0xff) + "." + std::to_string(address & 0xff);
}

namespace {

std::vector<std::string> comma_list(const std::string& text) {
  std::vector<std::string> items;
  std::istringstream in(text);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) items.push_back(item);
  return items;
}

// Whether `entry` of an Open MPI interface list (a name, or a subnet "10.0.0.0/8") names the interface.
bool names_interface(const std::string& entry, const NetInterface& interface) {
  const size_t slash = entry.find('/');
  if (slash == std::string::npos) return entry == interface.name;
  in_addr subnet{};
  const int bits = std::atoi(entry.c_str() + slash + 1);
  if (::inet_pton(AF_INET, entry.substr(0, slash).c_str(), &subnet) != 1 || bits < 0 || bits > 32) return false;
  const uint32_t mask = bits == 0 ? 0 : ~uint32_t{0} << (32 - bits);
  return (interface.ipv4 & mask) == (ntohl(subnet.s_addr) & mask);
}

bool named_in(const std::string& list, const NetInterface& interface) {
  const std::vector<std::string> entries = comma_list(list);
  return std::any_of(entries.begin(), entries.end(),
                     [&](const std::string& entry) { return names_interface(entry, interface); });
}

std::vector<NetInterface> ipv4_interfaces() {
  std::vector<NetInterface> found;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return found;
  for (const ifaddrs* a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET) continue;
    const auto* address = reinterpret_cast<const sockaddr_in*>(a->ifa_addr);
    found.push_back({a->ifa_name, ntohl(address->sin_addr.s_addr), (a->ifa_flags & IFF_UP) != 0,
                     (a->ifa_flags & IFF_LOOPBACK) != 0});
  }
  ::freeifaddrs(list);
  return found;
}

std::string env_text(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

std::vector<std::string> mpi_network() {
  std::vector<std::string> cells;
  for (const NetInterface& i : mpi_tcp_interfaces(ipv4_interfaces(), env_text("OMPI_MCA_btl_tcp_if_include"),
                                                  env_text("OMPI_MCA_btl_tcp_if_exclude")))
    cells.push_back(i.name + " " + ipv4_text(i.ipv4));
  return cells;
}

std::vector<int> affinity() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  return cpus;
}

// Sets the threads as Trainer::run does and reads back what took effect.
int training_threads(int threads) {
  set_compute_threads(threads);
  return compute_threads();
}

void find_gpu(int requested, RankFacts& f) {
  try {
    f.gpu = gpu_for_this_rank(requested, probe_cuda());
    f.gpu_bus_id = cuda_pci_bus_id(f.gpu);
  } catch (const Error& e) {
    f.gpu_problem = e.what();
  }
}

}  // namespace

std::vector<NetInterface> mpi_tcp_interfaces(const std::vector<NetInterface>& interfaces, const std::string& include,
                                             const std::string& exclude) {
  std::vector<NetInterface> used;
  for (const NetInterface& i : interfaces) {
    const bool chosen = !include.empty() ? named_in(include, i) : !i.loopback && !named_in(exclude, i);
    if (i.up && chosen) used.push_back(i);
  }
  return used;
}

RankFacts this_rank_facts(const DoctorConfig& config, Communicator& world, MpiThreadLevel mpi_threads) {
  RankFacts f;
  f.rank = world.rank();
  f.world_size = world.size();
  f.host = host_name();
  f.host_cpus = static_cast<int>(std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN)));
  f.launch = launch_from_environment();
  find_gpu(config.gpu, f);
  f.cpus = affinity();
  f.threads = training_threads(config.threads);
  f.network = mpi_network();
  f.mpi_threads = mpi_threads;
  return f;
}

size_t run_doctor(const DoctorConfig& config, Communicator& world, MpiThreadLevel mpi_threads, std::ostream& out) {
  RankFacts mine;
  // A bad flag or RINGTRAIN_CPU fails every rank alike: one error line, from rank 0.
  run_agreed(world, [&] {
    validate(config);
    mine = this_rank_facts(config, world, mpi_threads);
  });
  std::vector<RankFacts> ranks;
  for (const std::string& text : allgather_strings(world, serialize_facts(mine))) ranks.push_back(parse_facts(text));
  const std::vector<std::string> warnings = doctor_warnings(ranks);
  if (world.rank() == 0) {
    out << facts_table(ranks);
    // What the nodes above make of the CPU gradients' allreduce (--allreduce auto).
    out << "allreduce: " << world.backend() << " (--allreduce auto over these nodes)\n";
    for (const std::string& w : warnings) out << "warning: " << w << "\n";
    out << (warnings.empty() ? "no warnings" : counted(warnings.size(), "warning")) << std::endl;
  }
  return warnings.size();
}

}  // namespace ringtrain
