// ringtrain: prep | train | eval | predict | generate | sweep | devices | doctor. Parses flags into config structs, starts MPI
// for the commands that run on ranks, and turns every failure into one line on stderr and a non-zero exit.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "options.hpp"
#include "ringtrain/comm/agreement.hpp"
#include "ringtrain/comm/heartbeat.hpp"
#include "ringtrain/comm/mpi_communicator.hpp"
#include "ringtrain/comm/mpi_session.hpp"
#include "ringtrain/data/prep.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/text.hpp"
#include "ringtrain/stop_request.hpp"
#include "ringtrain/tensor/device.hpp"
#include "ringtrain/train/doctor.hpp"
#include "ringtrain/train/eval.hpp"
#include "ringtrain/train/generate.hpp"
#include "ringtrain/train/launch.hpp"
#include "ringtrain/train/predict.hpp"
#include "ringtrain/train/run_dir.hpp"
#include "ringtrain/train/trainer.hpp"
#include "ringtrain/train/validate.hpp"

namespace {

// kExitWarnings: doctor found problems (and printed them), which a script tells apart from doctor failing.
constexpr int kExitError = 1, kExitUsage = 2, kExitWarnings = 3;

// The length of the UTF-8 sequence at `s`, or 0 when it is not a valid one or encodes a C1 control character
// (U+0080..U+009F, which terminals obey as ESC sequences).
size_t printable_utf8(const unsigned char* s, size_t left) {
  const size_t n = ringtrain::utf8_sequence_length({reinterpret_cast<const char*>(s), left});
  return n == 2 && s[0] == 0xc2 && s[1] < 0xa0 ? 0 : n;
}

// An error line as the terminal shows it: one line, whatever bytes a bad input put into the message (a
// control character of a file name, a NUL, a byte that is not UTF-8). Printable ASCII and UTF-8 pass; other
// bytes become \xNN.
std::string one_line(const std::string& text) {
  std::string out;
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  for (size_t i = 0; i < text.size();) {
    const size_t n = bytes[i] < 0x80 ? (bytes[i] >= 0x20 && bytes[i] != 0x7f ? 1 : 0)
                                     : printable_utf8(bytes + i, text.size() - i);
    if (n > 0) {
      out.append(text, i, n);
      i += n;
    } else {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", bytes[i++]);
      out += escaped;
    }
  }
  return out;
}

// One write, so that no other output (mpirun's, another rank's) lands inside the line.
void print_error(const std::string& text) {
  const std::string line = "ringtrain: error: " + one_line(text) + "\n";
  std::fflush(stdout);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

const char* kUsage =
    "usage: ringtrain <command> [options]   (ringtrain <command> --help for its options)\n"
    "  prep   convert IDX (MNIST, Fashion-MNIST), CSV or text files into HDF5 shards\n"
    "  train  train a model on HDF5 shards; alone it is a one-rank job, under mpirun/srun one rank of many\n"
    "  eval   score a saved model on a dataset split (--report DIR: metrics and plots)\n"
    "  predict  run a saved model over new data (shards or IDX images); predictions to CSV or HDF5\n"
    "  generate  continue a prompt with a byte-level language model trained on `prep --format text` shards\n"
    "  sweep  train over a grid or random draws of settings, locally or as a SLURM job array; rank the trials\n"
    "  devices  list the CUDA devices this process can use (or why there are none)\n"
    "  doctor  under a job's srun/mpirun: each rank's host, GPU, CPUs, threads, network; its problems (exit 3)\n";

// One line per GPU; "cuda: none (<reason>)" without one. Scripts and tests read the first line.
int run_devices(const std::vector<std::string>& args) {
  if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
    std::cout << "usage: ringtrain devices\n\nLists the CUDA devices this process can use, one line each, or why "
                 "there are none; it takes no options.\n";
    return 0;
  }
  if (!args.empty()) throw ringtrain::cli::UsageError("devices takes no options, got '" + args[0] + "'");
  const ringtrain::CudaProbe probe = ringtrain::probe_cuda();
  if (probe.device_count == 0) {
    std::cout << "cuda: none (" << probe.reason << ")" << std::endl;
    return 0;
  }
  std::cout << "cuda: " << probe.device_count << " device(s)" << std::endl;
  for (size_t i = 0; i < probe.devices.size(); ++i) std::cout << "  gpu " << i << ": " << probe.devices[i] << std::endl;
  return 0;
}

// One process, no MPI: sampling is sequential, a byte at a time.
int run_generate(const std::vector<std::string>& args) {
  const std::optional<ringtrain::GenerateConfig> config = ringtrain::cli::parse_generate(args);
  if (!config) return 0;
  ringtrain::validate(*config);
  ringtrain::generate_text(*config, std::cout);
  std::cout << std::endl;
  return 0;
}

// Rank 0 converts (more would write the same files at once); under a launcher every rank ends with its outcome.
void prep_on_rank0(const ringtrain::PrepConfig& config, ringtrain::Communicator& world, std::ostream& log) {
  std::string failure;
  ringtrain::PrepReport r;
  if (world.rank() == 0) {
    try {
      r = ringtrain::prep(config);
    } catch (const std::exception& e) {
      failure = e.what();
    }
  }
  failure = ringtrain::allgather_strings(world, failure)[0];
  if (!failure.empty()) throw ringtrain::CollectiveError(failure);
  if (!r.task_reason.empty()) log << r.task_reason << std::endl;
  if (r.tokens) {
    log << "wrote " << config.out_dir << ": " << r.train << " train, " << r.val << " val, " << r.test
        << " test windows of " << ringtrain::counted(r.tokens, "token") << "; vocabulary " << r.outputs << std::endl;
    return;
  }
  log << "wrote " << config.out_dir << ": " << r.train << " train, " << r.val << " val, " << r.test
      << " test samples; " << ringtrain::counted(r.features, "feature") << ", "
      << ringtrain::counted(r.outputs, r.classification ? "class" : "target")
      << (r.dropped ? "; " + std::to_string(r.dropped) + (r.dropped == 1 ? " row" : " rows") + " with a missing value dropped" : std::string())
      << std::endl;
}

// This process's rank as the launcher (mpirun, srun) set it, before MPI starts; 0 without a launcher.
int launcher_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"})
    if (const char* value = std::getenv(name)) return std::atoi(value);
  return 0;
}

// RINGTRAIN_RANKS_PER_NODE=k: consecutive groups of k ranks count as one node for the hierarchical allreduce
// (tests and studies that emulate nodes on one host); unset: the nodes MPI sees (ranks sharing memory).
int ranks_per_node_from_environment() {
  const char* text = std::getenv("RINGTRAIN_RANKS_PER_NODE");
  if (!text || !*text) return 0;
  char* end = nullptr;
  const long k = std::strtol(text, &end, 10);
  if (*end || k < 1 || k > 1 << 20)
    throw ringtrain::CollectiveError(  // every rank reads the same environment
        std::string("RINGTRAIN_RANKS_PER_NODE must be a whole number of ranks from 1, got '") + text + "'");
  return static_cast<int>(k);
}

// How the process was started, as a shell would take it back: run.json records it.
std::string command_line(int argc, char** argv) {
  std::string line;
  for (int i = 0; i < argc; ++i) {
    if (i > 0) line += ' ';
    line += ringtrain::shell_word(argv[i]);
  }
  return line;
}

// A training run, recorded in its --run-dir when it has one: run.json says how it ended, also when it failed.
void train_in_run_dir(const ringtrain::TrainConfig& config, ringtrain::Communicator& world, std::ostream& log,
                      const std::string& job) {
  ringtrain::RunDir run_dir(config, world, job);
  try {
    ringtrain::Trainer trainer(config, world);
    run_dir.finish(trainer.run(run_dir.log(log)));
  } catch (const std::exception& e) {
    run_dir.fail(e.what());
    throw;
  }
}

// Prep, train, eval, predict and doctor run on MPI ranks (prep on one, unless a launcher starts more); rank 0 alone
// prints progress and errors that every rank meets alike.
int run_on_ranks(const std::string& command, const std::vector<std::string>& args, int* argc, char*** argv) {
  std::optional<ringtrain::PrepConfig> prep;
  std::optional<ringtrain::TrainConfig> train;
  std::optional<ringtrain::EvalConfig> eval;
  std::optional<ringtrain::PredictConfig> predict;
  if (command == "prep" && !(prep = ringtrain::cli::parse_prep(args))) return 0;
  if (command == "train" && !(train = ringtrain::cli::parse_train(args))) return 0;
  if (train) train->run_dir.command_line = command_line(*argc, *argv);
  if (command == "eval" && !(eval = ringtrain::cli::parse_eval(args))) return 0;
  if (command == "predict" && !(predict = ringtrain::cli::parse_predict(args))) return 0;
  std::optional<ringtrain::DoctorConfig> doctor;
  if (command == "doctor" && !(doctor = ringtrain::cli::parse_doctor(args))) return 0;
  // doctor reports an MPI without MPI_THREAD_MULTIPLE, which the others refuse.
  ringtrain::MpiSession mpi(argc, argv, /*require_thread_multiple=*/!doctor);
  try {
    ringtrain::MpiCommunicatorConfig comm;
    if (train || eval || predict)
      comm.allreduce = train ? train->allreduce : eval ? eval->allreduce : predict->allreduce;
    if (train) comm.compress = train->compress;
    comm.ranks_per_node = ranks_per_node_from_environment();
    ringtrain::MpiCommunicator world(MPI_COMM_WORLD, comm);
    // Before check_launch: a launch MPI did not join is one of the problems doctor is there to report.
    if (doctor) {
      const size_t warnings = ringtrain::run_doctor(*doctor, world, mpi.thread_level(), std::cout);
      return warnings == 0 ? 0 : kExitWarnings;
    }
    // Outside what MPI says: a launch MPI did not see, and the job id that names outputs.
    const ringtrain::Launch launch = ringtrain::launch_from_environment();
    try {
      ringtrain::check_launch(launch, world.size());
    } catch (const ringtrain::Error& e) {
      // Every task is a world of its own, and each finds this: the launcher's first task says it.
      if (launch.rank <= 0) print_error(e.what());
      return kExitError;
    }
    std::string job;
    if (train) {
      job = ringtrain::output_job_id(launch, world);
      train->metrics_csv = ringtrain::expand_output_name(train->metrics_csv, job);
      train->save_model = ringtrain::expand_output_name(train->save_model, job);
      train->save_best = ringtrain::expand_output_name(train->save_best, job);
      train->timeline = ringtrain::expand_output_name(train->timeline, job);
      train->checkpoint_dir = ringtrain::expand_output_name(train->checkpoint_dir, job);
      train->tensorboard_dir = ringtrain::expand_output_name(train->tensorboard_dir, job);
      train->run_dir.dir = ringtrain::expand_output_name(train->run_dir.dir, job);
      ringtrain::use_run_dir_outputs(*train);
    }
    std::ostringstream quiet;
    std::ostream& log = mpi.rank() == 0 ? std::cout : quiet;
    if (prep) {
      prep_on_rank0(*prep, world, log);
    } else if (train) {
      ringtrain::install_stop_handlers();  // SIGTERM: checkpoint at the next step, exit 0
      const ringtrain::Heartbeat heartbeat(MPI_COMM_WORLD, train->peer_timeout_s);  // a rank lost stops the job
      train_in_run_dir(*train, world, log, job);
    } else if (eval) {
      ringtrain::evaluate_saved_model(*eval, world, log);
    } else {
      ringtrain::predict_saved_model(*predict, world, log);
    }
  } catch (const ringtrain::CollectiveError& e) {
    // Every rank raised it: one line from rank 0, and every rank exits on its own.
    if (mpi.rank() == 0) print_error(e.what());
    return kExitError;
  } catch (const std::exception& e) {
    // This rank's alone: the others may be waiting for it in a collective, so it takes the job down.
    print_error((mpi.size() > 1 ? "rank " + std::to_string(mpi.rank()) + ": " : "") + e.what());
    if (mpi.size() > 1) mpi.abort(kExitError);
    return kExitError;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << kUsage;
    return argc < 2 ? kExitUsage : 0;
  }
  const std::string command = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  try {
    if (command == "devices") return run_devices(args);
    if (command == "sweep") return ringtrain::cli::run_sweep(args);
    if (command == "generate") return run_generate(args);
    if (command == "prep" || command == "train" || command == "eval" || command == "predict" || command == "doctor")
      return run_on_ranks(command, args, &argc, &argv);
    print_error("unknown command '" + command + "' (expected prep, train, eval, predict, generate, sweep, devices or doctor)");
    return kExitUsage;
  } catch (const ringtrain::cli::UsageError& e) {
    // Flags are read before MPI starts, so every rank finds the same mistake: the first says it.
    if (launcher_rank() == 0) print_error(std::string(e.what()) + " (see ringtrain " + command + " --help)");
    return kExitUsage;
  } catch (const std::exception& e) {
    print_error(e.what());
    return kExitError;
  }
}
