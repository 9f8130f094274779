#include "options.hpp"

#include <boost/program_options.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "ringtrain/tensor/error.hpp"

namespace po = boost::program_options;

namespace ringtrain::cli {

namespace {

// Boost.Program_options (1.74) formats its errors by replacing placeholders such as "%value%" with the
// offending text until none is left: text that itself contains one (found by tests/fuzz) loops forever.
// Such text is refused before Boost sees it.
void refuse_placeholders(const std::string& text, const std::string& where) {
  for (const char* token : {"%canonical_option%", "%option%", "%value%", "%prefix%", "%original_token%"})
    if (text.find(token) != std::string::npos)
      throw UsageError(where + " contains '" + token + "', which ringtrain cannot report errors about");
}

// Parses flags, then the --config INI file (keys are the long option names); flags win over the file.
// Returns false when --help was asked for (and printed).
bool parse(const std::string& command, const std::vector<std::string>& args, po::options_description& options,
           po::variables_map& vm) {
  std::string config_file;
  options.add_options()("help,h", "show this help")("config", po::value(&config_file),
                                                     "INI file of option = value lines (flags override it)");
  for (const std::string& arg : args) refuse_placeholders(arg, "argument '" + arg + "'");
  try {
    po::store(po::command_line_parser(args).options(options).run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: ringtrain " << command << " [options]\n\n" << options << std::endl;
      return false;
    }
    if (vm.count("config")) {
      const std::string path = vm["config"].as<std::string>();
      std::ifstream file(path);
      if (!file) throw UsageError("cannot read config file '" + path + "'");
      std::stringstream text;
      text << file.rdbuf();
      refuse_placeholders(text.str(), "config file '" + path + "'");
      po::store(po::parse_config_file(text, options), vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  return true;
}

// A flag whose value names one of an enum's values (its table: enum_names).
template <typename E>
E parse_choice(const std::string& flag, const std::string& text) {
  for (const auto& [value, name] : enum_names(E{}))
    if (name == text) return value;
  throw UsageError(flag + " must be " + choices_of<E>() + ", got '" + text + "'");
}

void add_data_options(po::options_description& o, DataSources& d) {
  o.add_options()
      ("data", po::value(&d.dir), "dataset directory written by `ringtrain prep` ({train,val,test}-*.h5)")
      ("train", po::value(&d.train), "training shards: file, directory or glob (overrides --data)")
      ("val", po::value(&d.val), "validation shards (overrides --data)")
      ("test", po::value(&d.test), "test shards (overrides --data)")
      ("shuffle-window", po::value(&d.window_shards)->default_value(0), "shards per shuffle window (0 = all)")
      ("prefetch", po::value(&d.prefetch)->default_value(4), "batches prepared ahead of training");
}

void add_rank_options(po::options_description& o, std::string& allreduce) {
  o.add_options()("allreduce", po::value(&allreduce)->default_value("ring"),
                  "CPU gradients: ring (ringtrain's segmented ring over MPI point-to-point) or mpi (MPI_Allreduce); "
                  "GPU gradients always go over NCCL");
}

void add_device_options(po::options_description& o, DeviceConfig& d, std::string& precision) {
  o.add_options()
      ("device", po::value(&d.kind)->default_value("cpu"), "cpu, cuda, or auto (cuda where a GPU is present)")
      ("gpu", po::value(&d.gpu)->default_value(-1), "GPU index on this node (default: the rank's local rank, from "
       "SLURM_LOCALID or OMPI_COMM_WORLD_LOCAL_RANK)")
      ("precision", po::value(&precision)->default_value("fp32"), "CUDA math: fp32, tf32 (tensor cores), or bf16 "
       "(bf16 GEMMs, fp32 master weights)");
}

void check_device(DeviceConfig& d, const std::string& precision) {
  if (d.kind != "cpu" && d.kind != "cuda" && d.kind != "auto")
    throw UsageError("--device must be cpu, cuda or auto, got '" + d.kind + "'");
  try {
    d.precision = parse_precision(precision);
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
}

// --stage-to, or in a SLURM job with a TMPDIR (node-local scratch at most sites) a directory there.
std::string default_stage_dir(const std::string& given) {
  if (given == "none") return "";
  if (!given.empty()) return given;
  const char* tmp = std::getenv("TMPDIR");
  if (std::getenv("SLURM_JOB_ID") && tmp && *tmp) return std::string(tmp) + "/ringtrain-stage";
  return "";
}

// "3,7" -> {3, 7}; the trainer checks them against the model.
std::vector<int> parse_split(const std::string& text) {
  std::vector<int> out;
  if (text.empty()) return out;
  size_t start = 0;
  for (;;) {
    const size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    size_t used = 0;
    int value = -1;
    try {
      value = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || value < 0)
      throw UsageError("--split must be layer indices separated by commas, e.g. 3,7; got '" + text + "'");
    out.push_back(value);
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

void check_allreduce(const std::string& allreduce) {
  if (allreduce != "ring" && allreduce != "mpi")
    throw UsageError("--allreduce must be ring or mpi, got '" + allreduce + "'");
}

}  // namespace

std::optional<PrepConfig> parse_prep(const std::vector<std::string>& args) {
  PrepConfig c;
  po::options_description o("prep options");
  o.add_options()
      ("format", po::value(&c.format)->default_value("idx"), "idx (MNIST-style, .gz ok) or csv")
      ("input", po::value(&c.input)->required(), "idx: directory with {train,t10k}-*-ubyte[.gz]; csv: the file")
      ("out", po::value(&c.out_dir)->required(), "output directory for {train,val,test}-NNNNN.h5")
      ("shards", po::value(&c.shards)->default_value(4), "number of training shards")
      ("val-fraction", po::value(&c.val_fraction)->default_value(0.1), "share of training samples held out for validation")
      ("test-fraction", po::value(&c.test_fraction)->default_value(0.2), "share held out for testing (csv; idx without t10k files)")
      ("target", po::value(&c.target), "csv: target column")
      ("task", po::value(&c.task)->default_value("auto"), "csv: auto, classification or regression")
      ("seed", po::value(&c.seed)->default_value(0), "seed for the held-out splits");
  po::variables_map vm;
  if (!parse("prep", args, o, vm)) return std::nullopt;
  return c;
}

std::optional<TrainConfig> parse_train(const std::vector<std::string>& args) {
  TrainConfig c;
  OptimizerConfig& opt = c.optimizer;
  std::string optimizer;
  po::options_description o("train options");
  o.add_options()
      ("model", po::value(&c.model)->default_value("mlp"), "preset (linreg, mlp, cnn) or layer spec, e.g. "
       "\"flatten,linear(128),relu,linear(out)\"");
  add_data_options(o, c.data);
  o.add_options()
      ("batch", po::value(&c.batch)->default_value(64), "samples per step (per rank)")
      ("epochs", po::value(&c.epochs)->default_value(5), "passes over the training split")
      ("steps", po::value(&c.max_steps)->default_value(0), "stop after this many steps (0 = run all epochs)")
      ("optimizer", po::value(&optimizer)->default_value("sgd"), "sgd, adam or rmsprop")
      ("lr", po::value(&c.lr)->default_value(0.05f), "base learning rate")
      ("momentum", po::value(&opt.momentum)->default_value(0.9f), "sgd/rmsprop momentum")
      ("nesterov", po::bool_switch(&opt.nesterov), "sgd: Nesterov momentum")
      ("weight-decay", po::value(&opt.weight_decay)->default_value(0.0f), "L2 penalty")
      ("beta1", po::value(&opt.beta1)->default_value(0.9f), "adam")
      ("beta2", po::value(&opt.beta2)->default_value(0.999f), "adam")
      ("eps", po::value(&opt.eps)->default_value(1e-8f), "adam/rmsprop")
      ("alpha", po::value(&opt.alpha)->default_value(0.99f), "rmsprop smoothing")
      ("lr-schedule", po::value(&c.lr_schedule)->default_value("constant"), "constant, step or cosine")
      ("warmup-epochs", po::value(&c.warmup_epochs)->default_value(0.0), "linear warm-up length (may be fractional)")
      ("lr-step-epochs", po::value(&c.lr_step_epochs)->default_value(1.0), "step schedule: epochs between decays")
      ("lr-gamma", po::value(&c.lr_gamma)->default_value(0.1f), "step schedule: decay factor")
      ("lr-min", po::value(&c.lr_min)->default_value(0.0f), "cosine schedule: final learning rate")
      ("lr-scaling", po::value(&c.lr_scaling)->default_value("none"), "none, or linear: lr x ranks, reached by the "
       "--warmup-epochs ramp from lr (Goyal et al.)")
      ("threads", po::value(&c.threads)->default_value(1), "compute threads per rank (BLAS and our loops)")
      ("seed", po::value(&c.seed)->default_value(0), "seed for initialisation, shuffling and dropout")
      ("metrics", po::value(&c.metrics_csv), "write per-epoch metrics to this CSV file")
      ("save", po::value(&c.save_model), "save the trained model to this HDF5 file")
      ("log-every", po::value(&c.log_every)->default_value(0), "also print the running loss every N steps");
  std::string precision;
  add_device_options(o, c.device, precision);
  add_rank_options(o, c.allreduce);
  double fusion_mb = 64.0;
  EngineConfig& engine = c.parallel.engine;
  o.add_options()
      ("mode", po::value(&c.parallel.mode)->default_value("sync"), "sync: gradients averaged every step (data "
       "parallel, or a pipeline); ps: parameter servers, workers bounded by --staleness")
      ("fusion-mb", po::value(&fusion_mb)->default_value(64.0), "fusion buffer: ready gradients reduced together up to this size")
      ("cycle-ms", po::value(&engine.cycle_ms)->default_value(1.0), "how often ranks agree on which gradients are ready")
      ("stall-warn-s", po::value(&engine.stall_warn_s)->default_value(60.0), "warn when a gradient waits this long for "
       "other ranks (0 = never)")
      ("timeline", po::value(&c.timeline), "write a Chrome/Perfetto trace (JSON) of every rank to this file");
  PipelineConfig& pipe = c.parallel.pipeline;
  std::string split;
  o.add_options()
      ("pipeline-stages", po::value(&pipe.stages)->default_value(1), "split the model by layers over this many ranks; "
       "the world holds ranks / stages data-parallel replicas")
      ("micro-batches", po::value(&pipe.micro_batches)->default_value(1), "split each rank's batch into this many "
       "micro-batches that stream through the stages")
      ("schedule", po::value(&pipe.schedule)->default_value("1f1b"), "gpipe or 1f1b (at most stages micro-batches "
       "of activations held)")
      ("split", po::value(&split), "first layer of stages 1.., e.g. 3,7 (default: balance estimated cost)");
  std::string stage_to;
  o.add_options()
      ("stage-to", po::value(&stage_to), "copy the shards to this node-local directory first, one rank per node "
       "(\"%n\": the node's index); default under SLURM: $TMPDIR/ringtrain-stage when TMPDIR is set; none: read in place");
  PsConfig& ps = c.parallel.ps;
  o.add_options()
      ("ps-servers", po::value(&ps.servers)->default_value(1), "--mode ps: the last K ranks are parameter servers")
      ("staleness", po::value(&ps.staleness)->default_value(0), "--mode ps: a worker runs at most S steps ahead of "
       "the slowest (0: synchronous)")
      ("ps-timeout-s", po::value(&ps.timeout_s)->default_value(30.0), "--mode ps: a worker or server silent this "
       "long while others wait for it ends the job, naming it")
      ("straggler-rank", po::value(&c.straggler_rank)->default_value(-1), "this rank sleeps --straggler-ms before "
       "every step (studies of slow workers)")
      ("straggler-ms", po::value(&c.straggler_ms)->default_value(0.0), "see --straggler-rank");
  o.add_options()
      ("checkpoint-dir", po::value(&c.checkpoint_dir), "write checkpoints here (\"%j\": the job id): at the end, on "
       "SIGTERM, and every --checkpoint-every steps")
      ("checkpoint-every", po::value(&c.checkpoint_every)->default_value(0), "also checkpoint every N steps")
      ("keep-checkpoints", po::value(&c.keep_checkpoints)->default_value(3), "keep the newest K checkpoints")
      ("resume", po::value(&c.resume), "auto: continue from the newest valid checkpoint in --checkpoint-dir (start "
       "afresh when there is none); or a checkpoint file")
      ("skip-nonfinite", po::bool_switch(&c.parallel.skip_nonfinite), "skip a step whose gradient is NaN or infinite "
       "(default: stop, naming the step and the layer)")
      ("peer-timeout-s", po::value(&c.peer_timeout_s)->default_value(10.0), "a rank silent this long (dead, or its "
       "node gone) stops the job, naming it (0 = never)");
  po::variables_map vm;
  if (!parse("train", args, o, vm)) return std::nullopt;
  opt.kind = parse_choice<OptimizerKind>("--optimizer", optimizer);
  if (c.checkpoint_every < 0) throw UsageError("--checkpoint-every must not be negative");
  if (c.keep_checkpoints < 1) throw UsageError("--keep-checkpoints must be at least 1");
  if (c.checkpoint_every > 0 && c.checkpoint_dir.empty())
    throw UsageError("--checkpoint-every needs --checkpoint-dir (where to write them)");
  if (c.resume == "auto" && c.checkpoint_dir.empty())
    throw UsageError("--resume auto needs --checkpoint-dir (where to look)");
  if (c.peer_timeout_s < 0.0) throw UsageError("--peer-timeout-s must not be negative");
  if (pipe.stages < 1) throw UsageError("--pipeline-stages must be at least 1, got " + std::to_string(pipe.stages));
  if (pipe.micro_batches < 1)
    throw UsageError("--micro-batches must be at least 1, got " + std::to_string(pipe.micro_batches));
  if (pipe.schedule != "gpipe" && pipe.schedule != "1f1b")
    throw UsageError("--schedule must be gpipe or 1f1b, got '" + pipe.schedule + "'");
  pipe.split = parse_split(split);
  c.data.stage_to = default_stage_dir(stage_to);
  if (c.parallel.mode != "sync" && c.parallel.mode != "ps")
    throw UsageError("--mode must be sync or ps, got '" + c.parallel.mode + "'");
  if (ps.servers < 1) throw UsageError("--ps-servers must be at least 1, got " + std::to_string(ps.servers));
  if (ps.staleness < 0) throw UsageError("--staleness must be at least 0, got " + std::to_string(ps.staleness));
  if (!(ps.timeout_s > 0.0)) throw UsageError("--ps-timeout-s must be positive");
  if (c.straggler_ms < 0.0) throw UsageError("--straggler-ms must not be negative");
  if (!(fusion_mb > 0.0)) throw UsageError("--fusion-mb must be positive");
  if (!(engine.cycle_ms > 0.0)) throw UsageError("--cycle-ms must be positive");
  if (engine.stall_warn_s < 0.0) throw UsageError("--stall-warn-s must not be negative");
  engine.fusion_bytes = static_cast<size_t>(fusion_mb * (1 << 20));
  check_allreduce(c.allreduce);
  check_device(c.device, precision);
  return c;
}

std::optional<EvalConfig> parse_eval(const std::vector<std::string>& args) {
  EvalConfig c;
  po::options_description o("eval options");
  o.add_options()("model-file", po::value(&c.model_file)->required(), "model saved by `ringtrain train --save`");
  add_data_options(o, c.data);
  o.add_options()
      ("split", po::value(&c.split)->default_value("test"), "split of --data to score: train, val or test")
      ("batch", po::value(&c.batch)->default_value(256), "samples per forward pass")
      ("threads", po::value(&c.threads)->default_value(1), "compute threads");
  std::string precision;
  add_device_options(o, c.device, precision);
  add_rank_options(o, c.allreduce);
  po::variables_map vm;
  if (!parse("eval", args, o, vm)) return std::nullopt;
  check_allreduce(c.allreduce);
  check_device(c.device, precision);
  if (c.split != "train" && c.split != "val" && c.split != "test")
    throw UsageError("--split must be train, val or test, got '" + c.split + "'");
  return c;
}

}  // namespace ringtrain::cli
