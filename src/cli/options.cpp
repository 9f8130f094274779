#include "options.hpp"

#include <pwd.h>
#include <unistd.h>

#include <boost/any.hpp>
#include <boost/program_options/errors.hpp>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <vector>

// How Boost.Program_options reads a float flag (--lr, --momentum, ...). Its own conversion turns text below
// float's range into 0 and above it into infinity, so "--lr 1e-50" would be reported as "got 0": here such text
// is refused as what it is. Declared before Boost's headers so that its value parser finds this overload.
namespace boost::program_options {

class float_range_error : public error_with_option_name {
 public:
  explicit float_range_error(const std::string& text)
      : error_with_option_name("the argument ('%value%') for option '%canonical_option%' is outside the range of a "
                               "32-bit float (magnitudes from about 1.2e-38 to 3.4e38, or 0)",
                               "", "", 0) {
    set_substitute("value", text);
  }
};

inline void validate(boost::any& out, const std::vector<std::string>& texts, float*, int) {
  if (!out.empty()) throw multiple_occurrences();
  if (texts.size() != 1) throw validation_error(validation_error::multiple_values_not_allowed);
  const std::string& text = texts.front();
  char* end = nullptr;
  errno = 0;
  const double wide = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0') throw invalid_option_value(text);
  const auto narrow = static_cast<float>(wide);
  // ERANGE: beyond even a double ("1e-400" read as 0, "1e400" as infinity).
  const bool lost = errno == ERANGE || (std::isfinite(wide) && ((wide != 0.0 && std::fpclassify(narrow) != FP_NORMAL) ||
                                                                !std::isfinite(narrow)));
  if (lost) throw float_range_error(text);
  out = boost::any(narrow);
}

}  // namespace boost::program_options

#include <boost/program_options.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "ringtrain/tensor/error.hpp"
#include "settings_ini.hpp"
#include "ringtrain/tensor/text.hpp"

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

// A config file is text: a NUL or another control byte means a binary file given by mistake, whose bytes would
// otherwise reach the error message.
void refuse_binary(const std::string& text, const std::string& path) {
  for (size_t i = 0; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if ((byte < 0x20 && byte != '\t' && byte != '\n' && byte != '\r') || byte == 0x7f) {
      char found[64];
      std::snprintf(found, sizeof found, "byte 0x%02x at offset %zu", byte, i);
      throw UsageError("config file '" + path + "' is not a text file (" + found + ")");
    }
  }
}

// A number's default as --help shows it: 0.05, not 0.0500000007 (float) or 0.10000000000000001 (double).
template <typename T>
po::typed_value<T>* with_default(T* target, T value) {
  static_assert(std::is_floating_point_v<T>);
  char text[32];
  std::snprintf(text, sizeof text, "%g", static_cast<double>(value));
  return po::value(target)->default_value(value, text);
}

// A flag given twice takes its later value, as argparse and sbatch do: a wrapper (an sbatch template, a
// launcher script) passes its defaults first and the user's "$@" after them, and the user's win. A list
// flag (--drop a --drop b) gathers every value instead.
void keep_last_occurrence(po::parsed_options& parsed, const po::options_description& options) {
  std::vector<po::option>& flags = parsed.options;
  std::set<std::string> seen;
  std::vector<po::option> kept;
  auto gathers = [&](const std::string& key) {
    const po::option_description* d = options.find_nothrow(key, false);
    return d && d->semantic()->is_composing();
  };
  // A value that is overridden is still read, so that "--lr abc --lr 0.1" is the error it would be alone.
  auto check_value = [&](const po::option& flag) {
    boost::any scratch;
    const po::option_description* d = options.find_nothrow(flag.string_key, false);
    if (!d) return;
    try {
      d->semantic()->parse(scratch, flag.value, false);
    } catch (po::error_with_option_name& e) {
      e.set_option_name(flag.string_key);  // as store() names it: --lr
      e.set_prefix(po::command_line_style::allow_long);
      throw;
    }
  };
  for (auto it = flags.rbegin(); it != flags.rend(); ++it) {
    if (it->string_key.empty() || gathers(it->string_key) || seen.insert(it->string_key).second) kept.push_back(*it);
    else check_value(*it);
  }
  flags.assign(kept.rbegin(), kept.rend());
}

po::parsed_options parse_flags(const std::vector<std::string>& args, const po::options_description& options) {
  for (const std::string& arg : args) refuse_placeholders(arg, "argument '" + arg + "'");
  po::parsed_options parsed = po::command_line_parser(args).options(options).run();
  keep_last_occurrence(parsed, options);
  // A word no flag takes ("--lr 0.1 0.2", "--nesterov yes") would be dropped without a word.
  for (const std::string& stray : po::collect_unrecognized(parsed.options, po::include_positional))
    throw UsageError("unexpected argument '" + stray + "' (each flag takes at most one value; switches such as "
                     "--nesterov take none)");
  return parsed;
}

}  // namespace

void store_flags(const std::vector<std::string>& args, const po::options_description& options, po::variables_map& vm) {
  po::store(parse_flags(args, options), vm);
}

namespace {

// Parses flags, then the --config INI file (keys are the long option names); flags win over the file, and
// `overrides` (INI text: a sweep's trial values) over both. Returns false when --help was asked for (and
// printed).
bool parse(const std::string& command, const std::vector<std::string>& args, po::options_description& options,
           po::variables_map& vm, const std::string& overrides = "") {
  std::string config_file;
  options.add_options()("help,h", "show this help")("config", po::value(&config_file),
                                                     "INI file of option = value lines (flags override it)");
  try {
    // Stored first, so that they win: a value already stored is kept.
    if (!overrides.empty()) {
      std::istringstream text(overrides);
      po::store(po::parse_config_file(text, options), vm);
    }
    store_flags(args, options, vm);
    if (vm.count("help")) {
      std::cout << "usage: ringtrain " << command << " [options]\n\n" << options << std::endl;
      return false;
    }
    if (vm.count("config")) {
      const std::string path = vm["config"].as<std::string>();
      // A directory opens as a stream that reads nothing (it would pass as an empty file), and a device may
      // never end (/dev/zero).
      std::error_code ec;
      if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec))
        throw UsageError("config file '" + path + "' is not a regular file");
      std::ifstream file(path);
      if (!file) throw UsageError("cannot read config file '" + path + "'");
      std::stringstream text;
      text << file.rdbuf();
      refuse_binary(text.str(), path);
      refuse_placeholders(text.str(), "config file '" + path + "'");
      try {
        po::store(po::parse_config_file(text, options), vm);
      } catch (const po::error& e) {
        throw UsageError("config file '" + path + "': " + e.what());
      }
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
      ("data", po::value(&d.dir), "dataset directory written by `ringtrain prep` ({train,val,test}-*.h5), or "
       "synthetic:SHAPE:CLASSES[:SAMPLES] (e.g. synthetic:3x224x224:1000): random samples made in memory, 1280 "
       "per replica by default, or synthetic-tokens:CONTEXT:VOCABULARY[:SAMPLES] (e.g. "
       "synthetic-tokens:1024:50257): random token windows with next-token labels")
      ("train", po::value(&d.train), "training shards: file, directory or glob (overrides --data)")
      ("val", po::value(&d.val), "validation shards (overrides --data)")
      ("test", po::value(&d.test), "test shards (overrides --data)")
      ("shuffle-window", po::value(&d.window_shards)->default_value(0), "shards per shuffle window (0 = all)")
      ("prefetch", po::value(&d.prefetch)->default_value(4), "batches prepared ahead of training (0: none)");
}

// The text of each enum-valued flag, read into its enum after parsing (parse_choice).
struct ChoiceFlags {
  std::string device, precision, allreduce;
};

void add_gpu_option(po::options_description& o, int& gpu) {
  o.add_options()("gpu", po::value(&gpu)->default_value(-1), "GPU index on this node (default: the rank's local "
                  "rank, from SLURM_LOCALID or OMPI_COMM_WORLD_LOCAL_RANK)");
}

void add_device_options(po::options_description& o, DeviceConfig& d, ChoiceFlags& text) {
  o.add_options()("device", po::value(&text.device)->default_value("cpu"),
                  "cpu, cuda, or auto (cuda where a GPU is present)");
  add_gpu_option(o, d.gpu);
  o.add_options()
      ("precision", po::value(&text.precision)->default_value("fp32"), "CUDA math: fp32, tf32 (tensor cores), or "
       "bf16 (bf16 GEMMs, fp32 master weights)");
}

void add_rank_options(po::options_description& o, ChoiceFlags& text) {
  o.add_options()("allreduce", po::value(&text.allreduce)->default_value("auto"),
                  "CPU gradients: ring (ringtrain's segmented ring over MPI point-to-point), hierarchical (a ring inside "
                  "each node, then across nodes), mpi (MPI_Allreduce), or auto (hierarchical when the ranks span "
                  "nodes, at least 2 on each and the same number on all; else ring); GPU gradients always go over NCCL");
}

void read_choices(const ChoiceFlags& text, DeviceConfig& device, AllreduceAlgorithm& allreduce) {
  device.kind = parse_choice<DeviceKind>("--device", text.device);
  device.precision = parse_choice<Precision>("--precision", text.precision);
  allreduce = parse_choice<AllreduceAlgorithm>("--allreduce", text.allreduce);
}

// Text safe in one path component: letters, digits, '.', '_' and '-' as they are, anything else ('/', '%',
// spaces) '_'. A job id of "../.." must not name a directory outside TMPDIR, which would be removed.
std::string path_word(std::string text) {
  for (char& ch : text)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '_' && ch != '-') ch = '_';
  return text;
}

std::string user_name() {
  const passwd* pw = ::getpwuid(::geteuid());
  return path_word(pw && pw->pw_name ? pw->pw_name : std::to_string(::geteuid()));
}

// --stage-to, or in a SLURM job with a TMPDIR (node-local scratch at most sites) a directory there that is
// this user's and this job's alone: an interactive srun's TMPDIR is often the node's shared /tmp.
void choose_stage_dir(const std::string& given, DataSources& data) {
  data.stage_to = given == "none" ? "" : given;
  data.remove_staged = false;
  if (!given.empty() || data.synthetic) return;  // synthetic data has no shards to stage
  const char* tmp = std::getenv("TMPDIR");
  const char* job = std::getenv("SLURM_JOB_ID");
  if (!job || !*job || !tmp || !*tmp) return;
  data.stage_to = std::string(tmp) + "/ringtrain-stage-" + user_name() + "-" + path_word(job);
  data.remove_staged = true;
}

// "a,b" -> {"a", "b"}; "" -> {}; empty items stay, for the caller to refuse.
std::vector<std::string> split_list(const std::string& text, char separator = ',') {
  std::vector<std::string> out;
  if (text.empty()) return out;
  for (size_t start = 0;;) {
    const size_t comma = text.find(separator, start);
    out.push_back(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

// --data synthetic:SHAPE:CLASSES[:SAMPLES] or synthetic-tokens:CONTEXT:VOCABULARY[:SAMPLES]
// (data/synthetic.hpp): the text becomes numbers here, and validate checks their ranges. A --data that does
// not start so is a directory.
constexpr std::string_view kSyntheticPrefix = "synthetic:", kSyntheticTokensPrefix = "synthetic-tokens:";
constexpr const char* kSyntheticForm = "synthetic:SHAPE:CLASSES[:SAMPLES], e.g. synthetic:3x224x224:1000";
constexpr const char* kSyntheticTokensForm =
    "synthetic-tokens:CONTEXT:VOCABULARY[:SAMPLES], e.g. synthetic-tokens:1024:50257";

bool is_synthetic(const std::string& source) {
  return source.starts_with(kSyntheticPrefix) || source.starts_with(kSyntheticTokensPrefix);
}

int64_t synthetic_number(const std::string& text, const std::string& item, const std::string& what) {
  size_t used = 0;
  int64_t value = 0;
  try {
    value = std::stoll(item, &used);
  } catch (const std::out_of_range&) {
    throw UsageError("--data '" + text + "': " + what + " '" + item + "' is too large");
  } catch (const std::invalid_argument&) {
    used = 0;
  }
  if (item.empty() || used != item.size())
    throw UsageError("--data '" + text + "': " + what + " '" + item + "' is not a whole number");
  return value;
}

SyntheticData parse_synthetic(const std::string& text) {
  const std::vector<std::string> fields = split_list(text.substr(kSyntheticPrefix.size()), ':');
  if (fields.empty() || fields[0].empty())
    throw UsageError("--data '" + text + "' has no sample shape: synthetic data is " + kSyntheticForm);
  if (fields.size() < 2 || fields[1].empty())
    throw UsageError("--data '" + text + "' has no number of classes: synthetic data is " + kSyntheticForm);
  if (fields.size() > 3)
    throw UsageError("--data '" + text + "' has " + std::to_string(fields.size()) +
                     " fields after 'synthetic:', at most 3: synthetic data is " + kSyntheticForm);
  SyntheticData data;
  for (const std::string& dim : split_list(fields[0], 'x'))
    data.sample.push_back(synthetic_number(text, dim, "dimension"));
  data.classes = synthetic_number(text, fields[1], "the number of classes");
  if (fields.size() == 3) data.samples = synthetic_number(text, fields[2], "the number of samples");
  return data;
}

SyntheticData parse_synthetic_tokens(const std::string& text) {
  const std::vector<std::string> fields = split_list(text.substr(kSyntheticTokensPrefix.size()), ':');
  if (fields.size() < 2 || fields[0].empty() || fields[1].empty())
    throw UsageError("--data '" + text + "' needs a context and a vocabulary: synthetic tokens are " +
                     kSyntheticTokensForm);
  if (fields.size() > 3)
    throw UsageError("--data '" + text + "' has " + std::to_string(fields.size()) +
                     " fields after 'synthetic-tokens:', at most 3: synthetic tokens are " + kSyntheticTokensForm);
  SyntheticData data;
  data.tokens = true;
  data.sample = {synthetic_number(text, fields[0], "the context")};
  data.classes = synthetic_number(text, fields[1], "the vocabulary");
  if (fields.size() == 3) data.samples = synthetic_number(text, fields[2], "the number of samples");
  return data;
}

// After parsing: a synthetic --data into its struct. Only --data makes synthetic data; the splits' own flags
// name shards.
void read_data_sources(DataSources& d) {
  for (const Split split : {Split::train, Split::val, Split::test})
    if (is_synthetic(d.explicit_source(split)))
      throw UsageError("--" + name_of(split) + " '" + d.explicit_source(split) +
                       "': synthetic data is given with --data; --train, --val and --test name shards");
  if (!is_synthetic(d.dir)) return;
  d.synthetic = d.dir.starts_with(kSyntheticTokensPrefix) ? parse_synthetic_tokens(d.dir) : parse_synthetic(d.dir);
  d.dir.clear();
}

// "3,7" -> {3, 7}; the trainer checks them against the model.
std::vector<int> parse_split(const std::string& text) {
  std::vector<int> out;
  for (const std::string& item : split_list(text)) {
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
  }
  return out;
}

// "100:120" -> {100, 120}; both step numbers from 1 (validate checks their order).
StepRange parse_step_range(const std::string& flag, const std::string& text) {
  if (text.empty()) return {};
  const size_t colon = text.find(':');
  auto step = [&](const std::string& item) {
    size_t used = 0;
    int64_t value = 0;
    try {
      value = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || value < 1)
      throw UsageError(flag + " must be FIRST:LAST step numbers from 1, e.g. 100:120; got '" + text + "'");
    return value;
  };
  if (colon == std::string::npos) return {step(""), 0};
  return {step(text.substr(0, colon)), step(text.substr(colon + 1))};
}

// --resume: "auto" (the newest valid checkpoint in --checkpoint-dir) or a checkpoint file.
ResumeFrom parse_resume(const std::string& text) {
  if (text.empty()) return {};
  if (text == "auto") return {ResumeFrom::newest, ""};
  return {ResumeFrom::file, text};
}

}  // namespace

std::optional<PrepConfig> parse_prep(const std::vector<std::string>& args) {
  PrepConfig c;
  std::string format, task, missing, missing_cells = "empty";
  std::vector<std::string> drop;
  for (std::string_view token : kMissingCellTokens) missing_cells += ", " + std::string(token);
  po::options_description o("prep options");
  o.add_options()
      ("format", po::value(&format)->default_value("idx"), "idx (MNIST-style, .gz ok), csv (the default with --like) "
       "or text (UTF-8 to byte tokens)")
      ("input", po::value(&c.input)->required(), "idx: directory with {train,t10k}-*-ubyte[.gz]; csv: the file; "
       "text: a file, or a directory whose files are read in name order (not *.dat, *.u8)")
      ("context", po::value(&c.context)->default_value(0), "text: tokens per window (each sample T tokens, its "
       "labels the T next ones)")
      ("out", po::value(&c.out_dir)->required(), "output directory for {train,val,test}-NNNNN.h5")
      ("shards", po::value(&c.shards)->default_value(4), "number of training shards")
      ("val-fraction", with_default(&c.val_fraction, 0.1), "share of training samples held out for validation "
       "(text: of the bytes before the test split's, the block after training's)")
      ("test-fraction", with_default(&c.test_fraction, 0.2), "share held out for testing (csv; text: the last "
       "bytes; idx without t10k files)")
      ("target", po::value(&c.target), "csv: target column")
      ("drop", po::value(&drop)->composing(), "csv: a column to leave out (an identifier, a column that leaks the "
       "target); repeat it or give a comma-separated list (a name that holds a comma cannot be given)")
      ("task", po::value(&task)->default_value("auto"), "csv: auto (text, or at most 20 distinct integers: "
       "classification; other numbers: regression), classification or regression")
      ("missing", po::value(&missing)->default_value("error"), ("csv: what a missing cell (" + missing_cells +
       ") does: error; drop (its row); or mean (numeric: the training mean; categorical: a \"<missing>\" "
       "category; a missing target stays an error)").c_str())
      ("seed", po::value(&c.seed)->default_value(0), "seed for the held-out splits")
      ("like", po::value(&c.like_dir), "csv: convert --input as prep converted the training data in this directory "
       "(its columns, categories, classes, normalisation); every row goes to <out>/test-00000.h5, features only "
       "when the file has no target column");
  po::variables_map vm;
  if (!parse("prep", args, o, vm)) return std::nullopt;
  c.format = parse_choice<PrepFormat>("--format", format);
  if (c.format == PrepFormat::text && !vm["seed"].defaulted())
    throw UsageError("--seed has no effect with --format text (its splits are contiguous blocks of the text)");
  // --like takes the task and the format from the training data and puts every row in the test split.
  if (!c.like_dir.empty()) {
    for (const char* flag : {"task", "val-fraction", "test-fraction", "shards", "seed"})
      if (!vm[flag].defaulted())
        throw UsageError("--" + std::string(flag) + " has no effect with --like (the training data decides the "
                         "task; every row goes to the test split)");
    if (vm["format"].defaulted()) c.format = PrepFormat::csv;
  }
  c.task = parse_choice<TaskKind>("--task", task);
  c.missing = parse_choice<MissingValues>("--missing", missing);
  for (const std::string& list : drop)
    for (std::string name : split_list(list.empty() ? std::string(",") : list)) {
      // Trimmed as the CSV header's names are.
      name.erase(0, name.find_first_not_of(" \t"));
      name.erase(name.find_last_not_of(" \t") + 1);
      if (name.empty()) throw UsageError("--drop '" + list + "' holds an empty column name");
      if (std::find(c.drop_columns.begin(), c.drop_columns.end(), name) == c.drop_columns.end())
        c.drop_columns.push_back(name);
    }
  return c;
}

namespace {

// The text of train's enum-valued and compound flags, read into the config after parsing.
struct TrainFlags {
  ChoiceFlags choices;
  std::string optimizer, lr_schedule, lr_scaling, mode, schedule, split, stage_to, resume, timeline_steps, monitor;
  std::string progress, compress;
  double fusion_mb = 64.0;
  std::string freeze, augment;
  std::optional<float> weight_decay;  // absent: the optimizer's own default (default_weight_decay)
};

// --- augmentation: --augment crop:4,flip ---

constexpr const char* kAugmentForm = "crop:PADDING and flip, comma-separated (e.g. crop:4,flip), or none";

Augmentation parse_augment(const std::string& text) {
  Augmentation a;
  if (text.empty() || text == "none") return a;
  const std::string at = "--augment '" + excerpt(text) + "': ";
  for (const std::string& item : split_list(text)) {
    if (item == "flip") {
      if (a.flip) throw UsageError(at + "flip is given twice");
      a.flip = true;
    } else if (item == "crop" || item.starts_with("crop:")) {
      if (a.crop_padding) throw UsageError(at + "crop is given twice");
      const std::string pixels = item.size() > 5 ? item.substr(5) : "";
      if (pixels.empty() || pixels.size() > 4 || pixels.find_first_not_of("0123456789") != std::string::npos ||
          std::stoi(pixels) < 1)
        throw UsageError(at + "crop takes its padding in pixels, a whole number from 1 to 9999, e.g. crop:4");
      a.crop_padding = std::stoi(pixels);
    } else {
      throw UsageError(at + "'" + excerpt(item) + "' is not an augmentation; they are " + kAugmentForm);
    }
  }
  return a;
}

// --- fine-tuning: --init-from, --freeze, --reset-head ---

void add_fine_tune_options(po::options_description& o, TrainConfig& c, TrainFlags& text) {
  o.add_options()
      ("init-from", po::value(&c.fine_tune.init_from), "start from a saved model or checkpoint: every parameter and "
       "buffer whose name and shape match is loaded, the rest start new (rank 0 lists which)")
      ("freeze", po::value(&text.freeze), "top-level layers whose parameters take no updates: names or globs "
       "(conv*), indices and ranges (3, 0-3 inclusive, :5 = 0..4, 5: = 5 to the last), comma-separated")
      ("reset-head", po::bool_switch(&c.fine_tune.reset_head), "with --init-from: the output layer (the last "
       "linear) starts new, for data with other classes than the model was trained on");
}

// A layer index of --freeze: digits only (a layer's name starts with a letter).
int64_t layer_index(const std::string& item, const std::string& text) {
  if (item.empty() || item.size() > 9 || item.find_first_not_of("0123456789") != std::string::npos)
    throw UsageError("--freeze '" + excerpt(text) + "': '" + excerpt(item) +
                     "' is not a layer index (0 to 999999999)");
  return std::stoll(item);
}

// One comma-separated item of --freeze: N, A-B (inclusive), A:B, :B or A: (B excluded, as in Python), or
// else a name or glob, which the trainer matches against the model's layers.
LayerSelector parse_layer_selector(const std::string& item, const std::string& text) {
  if (item.empty())
    throw UsageError("--freeze '" + excerpt(text) + "' holds an empty item (two commas, or one at an end)");
  LayerSelector s{item, "", 0, 0};
  const size_t dash = item.find('-'), colon = item.find(':');
  const bool numeric = std::isdigit(static_cast<unsigned char>(item[0])) || item[0] == ':';
  if (!numeric) {
    s.glob = item;
  } else if (colon != std::string::npos) {
    s.first = colon == 0 ? 0 : layer_index(item.substr(0, colon), text);
    s.end = colon + 1 == item.size() ? -1 : layer_index(item.substr(colon + 1), text);
  } else if (dash != std::string::npos) {
    s.first = layer_index(item.substr(0, dash), text);
    s.end = layer_index(item.substr(dash + 1), text) + 1;
  } else {
    s.first = layer_index(item, text);
    s.end = s.first + 1;
  }
  if (numeric && s.end >= 0 && s.end <= s.first)
    throw UsageError("--freeze '" + excerpt(text) + "': the range '" + excerpt(item) +
                     "' holds no layer (A-B includes B, A:B does not)");
  return s;
}

std::vector<LayerSelector> parse_freeze(const std::string& text) {
  std::vector<LayerSelector> out;
  for (const std::string& item : split_list(text)) out.push_back(parse_layer_selector(item, text));
  return out;
}

// PyTorch's defaults: torch.optim.AdamW decays by 0.01, SGD, Adam and RMSprop not at all.
float default_weight_decay(OptimizerKind kind) { return kind == OptimizerKind::adamw ? 0.01f : 0.0f; }

void add_optimizer_options(po::options_description& o, TrainConfig& c, TrainFlags& text) {
  OptimizerConfig& opt = c.optimizer;
  o.add_options()
      ("optimizer", po::value(&text.optimizer)->default_value("sgd"), "sgd, adam, adamw or rmsprop")
      ("lr", with_default(&c.lr, 0.05f), "base learning rate")
      ("momentum", with_default(&opt.momentum, 0.9f), "sgd/rmsprop momentum (PyTorch's default is 0)")
      ("nesterov", po::bool_switch(&opt.nesterov), "sgd: Nesterov momentum")
      ("weight-decay", po::value<float>()->notifier([&text](float v) { text.weight_decay = v; }),
       "sgd, adam, rmsprop: L2 penalty on every parameter (default 0); adamw: decoupled decay of the weights of "
       "linear and conv layers and embeddings, not biases or norms (default 0.01, PyTorch's)")
      ("clip-grad-norm", with_default(&c.parallel.clip_grad_norm, 0.0f), "clip the averaged gradient to this global "
       "L2 norm before each update (torch.nn.utils.clip_grad_norm_; 0 = off)")
      ("l1", with_default(&opt.l1, 0.0f), "L1 penalty on the weights of linear and conv layers (not biases or "
       "batchnorm): LAMBDA x sum |w|, added to the reported loss as Keras does")
      ("beta1", with_default(&opt.beta1, 0.9f), "adam")
      ("beta2", with_default(&opt.beta2, 0.999f), "adam")
      ("eps", with_default(&opt.eps, 1e-8f), "adam/rmsprop")
      ("alpha", with_default(&opt.alpha, 0.99f), "rmsprop smoothing")
      ("lr-schedule", po::value(&text.lr_schedule)->default_value("constant"), "constant, step or cosine")
      ("warmup-epochs", with_default(&c.warmup_epochs, 0.0), "linear warm-up length (may be fractional)")
      ("lr-step-epochs", with_default(&c.lr_step_epochs, 1.0), "step schedule: epochs between decays")
      ("lr-gamma", with_default(&c.lr_gamma, 0.1f), "step schedule: decay factor")
      ("lr-min", with_default(&c.lr_min, 0.0f), "cosine schedule: final learning rate")
      ("lr-scaling", po::value(&text.lr_scaling)->default_value("none"), "none, or linear: lr x ranks, reached by the "
       "--warmup-epochs ramp from lr (Goyal et al.)");
}

void add_run_options(po::options_description& o, TrainConfig& c) {
  o.add_options()
      ("batch", po::value(&c.batch)->default_value(64), "samples per step (per rank)")
      ("epochs", po::value(&c.epochs)->default_value(5), "passes over the training split")
      ("steps", po::value(&c.max_steps)->default_value(0), "stop after this many steps (0 = run all epochs); the learning-rate schedule spans the steps the run makes")
      ("threads", po::value(&c.threads)->default_value(1), "compute threads per rank (BLAS and our loops)")
      ("seed", po::value(&c.seed)->default_value(0), "seed for initialisation, shuffling and dropout")
      ("metrics", po::value(&c.metrics_csv), "write per-epoch metrics to this CSV file")
      ("save", po::value(&c.save_model), "save the trained model to this HDF5 file")
      ("log-every", po::value(&c.log_every)->default_value(0), "also print the running loss every N steps (with "
       "--progress lines; a bar and TensorBoard show it every N steps)");
}

void add_watch_options(po::options_description& o, TrainConfig& c, TrainFlags& text) {
  o.add_options()
      ("progress", po::value(&text.progress)->default_value("auto"), "auto (a bar when stdout is a terminal, else "
       "lines), bar (one line redrawn in place: steps, loss, img/s, ETA), lines (a line every --log-every steps) "
       "or none")
      ("tensorboard", po::value(&c.tensorboard_dir), "write TensorBoard event files to this directory (\"%j\": the "
       "job id): per-step and per-epoch losses, metrics, learning rate, throughput");
}

void add_parallel_options(po::options_description& o, TrainConfig& c, TrainFlags& text) {
  EngineConfig& engine = c.parallel.engine;
  PipelineConfig& pipe = c.parallel.pipeline;
  PsConfig& ps = c.parallel.ps;
  o.add_options()
      ("mode", po::value(&text.mode)->default_value("sync"), "sync: gradients averaged every step (data "
       "parallel, or a pipeline); ps: parameter servers, workers bounded by --staleness")
      ("fusion-mb", with_default(&text.fusion_mb, 64.0), "fusion buffer: ready gradients reduced together up to this size")
      ("compress", po::value(&text.compress)->default_value("none"), "gradients cross the network as bf16 or fp16 "
       "(half the bytes; sums kept in float32), or none; CPU gradients (--allreduce auto, ring or hierarchical)")
      ("cycle-ms", with_default(&engine.cycle_ms, 1.0), "how often ranks agree on which gradients are ready")
      ("stall-warn-s", with_default(&engine.stall_warn_s, 60.0), "warn when a gradient waits this long for "
       "other ranks (0 = never)")
      ("timeline", po::value(&c.timeline), "write a Chrome/Perfetto trace (JSON) of every rank to this file")
      ("timeline-steps", po::value(&text.timeline_steps), "trace only steps A:B (e.g. 100:120, counted from 1) and "
       "the evaluation after B when an epoch ends there")
      ("pipeline-stages", po::value(&pipe.stages)->default_value(1), "split the model by layers over this many ranks; "
       "the world holds ranks / stages data-parallel replicas")
      ("micro-batches", po::value(&pipe.micro_batches)->default_value(1), "split each rank's batch into this many "
       "micro-batches that stream through the stages")
      ("schedule", po::value(&text.schedule)->default_value("1f1b"), "gpipe or 1f1b (at most stages micro-batches "
       "of activations held)")
      ("split", po::value(&text.split), "first layer of stages 1.., e.g. 3,7 (default: balance estimated cost)")
      ("sync-batchnorm", po::bool_switch(&c.parallel.sync_batchnorm), "batchnorm statistics over the whole global "
       "batch, every replica's samples (PyTorch's SyncBatchNorm), not each rank's own")
      ("shard-optimizer", po::bool_switch(&c.parallel.shard_optimizer), "ZeRO stage 1: each rank keeps and updates "
       "1/N of the optimizer's state (gradients reduce-scattered, parameters allgathered; data parallel on CPUs)")
      ("stage-to", po::value(&text.stage_to), "copy the shards to this node-local directory first, one rank per node "
       "(\"%n\": the node's index); default in a SLURM job with TMPDIR: $TMPDIR/ringtrain-stage-<user>-<job id>, "
       "removed when the run ends normally; none: read in place")
      ("ps-servers", po::value(&ps.servers)->default_value(1), "--mode ps: the last K ranks are parameter servers")
      ("staleness", po::value(&ps.staleness)->default_value(0), "--mode ps: a worker runs at most S steps ahead of "
       "the slowest (0: synchronous)")
      ("ps-timeout-s", with_default(&ps.timeout_s, 30.0), "--mode ps: a worker or server silent this "
       "long while others wait for it ends the job, naming it")
      ("straggler-rank", po::value(&c.straggler_rank)->default_value(-1), "this rank sleeps --straggler-ms after "
       "every step (studies of slow workers)")
      ("straggler-ms", with_default(&c.straggler_ms, 0.0), "see --straggler-rank");
}

void add_reliability_options(po::options_description& o, TrainConfig& c, TrainFlags& text) {
  o.add_options()
      ("checkpoint-dir", po::value(&c.checkpoint_dir), "write checkpoints here (\"%j\": the job id): at the end, on "
       "SIGTERM, and every --checkpoint-every steps")
      ("checkpoint-every", po::value(&c.checkpoint_every)->default_value(0), "also checkpoint every N steps")
      ("keep-checkpoints", po::value(&c.keep_checkpoints)->default_value(3), "keep the newest K checkpoints")
      ("resume", po::value(&text.resume), "auto: continue from the newest valid checkpoint in --checkpoint-dir (start "
       "afresh when there is none); or a checkpoint file")
      ("skip-nonfinite", po::bool_switch(&c.parallel.skip_nonfinite), "skip a step whose gradient is NaN or infinite "
       "(default: stop, naming the step and the layer)")
      ("peer-timeout-s", with_default(&c.peer_timeout_s, 10.0), "a rank silent this long (dead, "
       "stopped, or its node gone) stops the job, naming it (0 = never: a debugger session, which stops ranks)");
}

void add_early_stop_options(po::options_description& o, TrainConfig& c, TrainFlags& text) {
  o.add_options()
      ("early-stop-patience", po::value<int64_t>()->notifier([&c](int64_t n) { c.early_stop_patience = n; }),
       "end the run after N epochs in a row without improvement of --monitor (needs a validation split)")
      ("monitor", po::value(&text.monitor)->default_value("val_loss"), "what early stopping and --save-best watch: "
       "val_loss, or the task's metric: val_accuracy (classification) or val_mae (regression)")
      ("min-delta", with_default(&c.min_delta, 0.0), "how much --monitor must improve by to count")
      ("save-best", po::value(&c.save_best), "save the best epoch's model (by --monitor) to this HDF5 file, "
       "whenever an epoch improves on it")
      ("label-smoothing", with_default(&c.label_smoothing, 0.0f), "classification: train against (1 - EPS) x the "
       "label + EPS / classes on every class (PyTorch's and Keras's label_smoothing)");
}

// The typed values of the flags kept as text; the rules between values are validate's (train/validate.hpp).
void read_train_flags(const TrainFlags& text, TrainConfig& c) {
  read_choices(text.choices, c.device, c.allreduce);
  if (text.compress != "none") {
    const std::optional<HalfFormat> format = enum_from_name<HalfFormat>(text.compress);
    if (!format) throw UsageError("--compress must be none, " + choices_of<HalfFormat>() + ", got '" + text.compress + "'");
    c.compress = *format;
  }
  c.optimizer.kind = parse_choice<OptimizerKind>("--optimizer", text.optimizer);
  c.optimizer.weight_decay = text.weight_decay.value_or(default_weight_decay(c.optimizer.kind));
  c.lr_schedule = parse_choice<LrScheduleKind>("--lr-schedule", text.lr_schedule);
  c.lr_scaling = parse_choice<LrScaling>("--lr-scaling", text.lr_scaling);
  c.parallel.mode = parse_choice<ModeKind>("--mode", text.mode);
  c.parallel.pipeline.schedule = parse_choice<PipelineSchedule>("--schedule", text.schedule);
  c.parallel.pipeline.split = parse_split(text.split);
  // Checked here, where the megabytes become bytes: beyond a terabyte the product overflows.
  if (!(text.fusion_mb * (1 << 20) >= 1.0 && text.fusion_mb <= 1 << 20)) {
    char got[32];
    std::snprintf(got, sizeof got, "%.7g", text.fusion_mb);
    throw UsageError(std::string("--fusion-mb must be from 1 byte (about 1e-06) to 1048576 (a terabyte), got ") + got);
  }
  c.parallel.engine.fusion_bytes = static_cast<size_t>(text.fusion_mb * (1 << 20));
  choose_stage_dir(text.stage_to, c.data);
  c.resume = parse_resume(text.resume);
  c.timeline_steps = parse_step_range("--timeline-steps", text.timeline_steps);
  c.progress = parse_choice<ProgressKind>("--progress", text.progress);
  c.monitor = parse_choice<Monitor>("--monitor", text.monitor);
  c.fine_tune.freeze = parse_freeze(text.freeze);
  c.augment = parse_augment(text.augment);
}

void add_train_options(po::options_description& o, TrainConfig& c, TrainFlags& text) {
  o.add_options()
      ("model", po::value(&c.model)->default_value("mlp"), "preset (linreg, mlp, cnn) or layer spec, e.g. "
       "\"flatten,linear(128),relu,linear(out)\"");
  add_data_options(o, c.data);
  o.add_options()("augment", po::value(&text.augment), "training images, as each is read: crop:P (pad every side "
                  "by P black pixels, crop back at random) and flip (mirror left-right at random), e.g. "
                  "crop:4,flip; seeded by --seed, the same samples on any number of ranks");
  add_run_options(o, c);
  add_watch_options(o, c, text);
  add_optimizer_options(o, c, text);
  add_device_options(o, c.device, text.choices);
  add_rank_options(o, text.choices);
  add_parallel_options(o, c, text);
  add_reliability_options(o, c, text);
  add_early_stop_options(o, c, text);
  add_fine_tune_options(o, c, text);
  // Run directories (train/run_dir.hpp).
  o.add_options()("run-dir", po::value(&c.run_dir.dir), "one directory for the run (\"%j\": the job id): "
                  "settings.ini (which --config reads to repeat the run), log.txt, metrics.csv, model.h5, "
                  "checkpoints/ (with --checkpoint-every or --resume) and run.json; --metrics, --save and "
                  "--checkpoint-dir still name their own");
}

// Not settings of the run but where its files go and where it starts: a run directory's settings.ini leaves
// them out, so that --config of it repeats the run wherever --run-dir puts it (run.json keeps the command line).
const std::set<std::string> kNotSettings = {"help", "config", "run-dir", "resume"};

// Train's flags, and `overrides` (INI text) winning over them and the --config file. `record`: the settings
// as settings.ini holds them go into run_dir.settings, as they do for a run with --run-dir.
std::optional<TrainConfig> read_train(const std::vector<std::string>& args, const std::string& overrides,
                                      bool record) {
  TrainConfig c;
  TrainFlags text;
  po::options_description o("train options");
  add_train_options(o, c, text);
  po::variables_map vm;
  if (!parse("train", args, o, vm, overrides)) return std::nullopt;
  if (vm.count("config")) c.config_file = vm["config"].as<std::string>();
  read_data_sources(c.data);
  read_train_flags(text, c);
  if (record || vm.count("run-dir"))
    c.run_dir.settings = "# The settings of a ringtrain train run, every option's value, defaults included:\n"
                         "# `ringtrain train --config settings.ini --run-dir NEW_DIR` repeats the run.\n" +
                         settings_ini(o, vm, kNotSettings);
  return c;
}

}  // namespace

std::optional<TrainConfig> parse_train(const std::vector<std::string>& args) { return read_train(args, "", false); }

TrainConfig parse_trial(const std::vector<std::string>& args, const std::string& overrides) {
  std::optional<TrainConfig> c = read_train(args, overrides, true);
  if (!c) throw UsageError("--help is not a setting of a trial");
  return *c;
}

std::set<std::string> train_settings() {
  TrainConfig c;
  TrainFlags text;
  po::options_description o;
  add_train_options(o, c, text);
  std::set<std::string> names;
  for (const auto& option : o.options())
    if (!kNotSettings.count(option->long_name())) names.insert(option->long_name());
  return names;
}

std::optional<EvalConfig> parse_eval(const std::vector<std::string>& args) {
  EvalConfig c;
  ChoiceFlags choices;
  std::string split;
  po::options_description o("eval options");
  o.add_options()("model-file", po::value(&c.model_file)->required(), "model saved by `ringtrain train --save`");
  add_data_options(o, c.data);
  o.add_options()
      ("split", po::value(&split)->default_value("test"), "split of --data to score: train, val or test")
      ("batch", po::value(&c.batch)->default_value(256), "samples per forward pass")
      ("threads", po::value(&c.threads)->default_value(1), "compute threads")
      ("report", po::value(&c.report_dir), "also write a report into this directory (created if missing): the "
       "confusion matrix, precision, recall, F1, ROC curves and AUC, or MAE, RMSE and R^2, as JSON and CSV, and "
       "plots (PNG, with matplotlib)");
  add_device_options(o, c.device, choices);
  add_rank_options(o, choices);
  po::variables_map vm;
  if (!parse("eval", args, o, vm)) return std::nullopt;
  read_data_sources(c.data);
  read_choices(choices, c.device, c.allreduce);
  c.split = parse_choice<Split>("--split", split);
  return c;
}

namespace {

// predict --out: the file's format, by its extension.
PredictionFormat prediction_format(const std::string& out) {
  std::string extension = std::filesystem::path(out).extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  if (extension == ".csv") return PredictionFormat::csv;
  if (extension == ".h5" || extension == ".hdf5") return PredictionFormat::hdf5;
  throw UsageError("--out '" + out + "' must end in .csv or .h5 (.hdf5), which choose the file's format; got " +
                   (extension.empty() ? std::string("no extension") : "'" + extension + "'"));
}

}  // namespace

std::optional<PredictConfig> parse_predict(const std::vector<std::string>& args) {
  PredictConfig c;
  ChoiceFlags choices;
  std::string split, missing;
  po::options_description o("predict options");
  o.add_options()
      ("model-file", po::value(&c.model_file)->required(), "model saved by `ringtrain train --save`, or a checkpoint")
      ("input", po::value(&c.input)->required(), "shards (a file, a directory, a glob, or a prep directory: its "
       "--split), an IDX images file (MNIST's format, .gz or plain), or a raw CSV FILE.csv converted as the "
       "model's training CSV was")
      ("missing", po::value(&missing)->default_value("error"), "a raw CSV's missing cells: error, or mean (the "
       "training split's mean; categorical: the \"<missing>\" category)")
      ("split", po::value(&split)->default_value("test"), "the split of a prep directory: train, val or test")
      ("out", po::value(&c.out)->required(), "the predictions, in the input's order: FILE.csv or FILE.h5")
      ("batch", po::value(&c.batch)->default_value(256), "samples per forward pass (per rank)")
      ("threads", po::value(&c.threads)->default_value(1), "compute threads")
      ("prefetch", po::value(&c.prefetch)->default_value(4), "batches prepared ahead (0: none)");
  add_device_options(o, c.device, choices);
  add_rank_options(o, choices);
  po::variables_map vm;
  if (!parse("predict", args, o, vm)) return std::nullopt;
  read_choices(choices, c.device, c.allreduce);
  c.split = parse_choice<Split>("--split", split);
  c.missing = parse_choice<MissingValues>("--missing", missing);
  c.format = prediction_format(c.out);
  return c;
}

std::optional<DoctorConfig> parse_doctor(const std::vector<std::string>& args) {
  DoctorConfig c;
  po::options_description o("doctor options (give the ones the training will run with)");
  o.add_options()("threads", po::value(&c.threads)->default_value(c.threads), "compute threads per rank, as train's");
  add_gpu_option(o, c.gpu);
  po::variables_map vm;
  if (!parse("doctor", args, o, vm)) return std::nullopt;
  return c;
}

std::optional<GenerateConfig> parse_generate(const std::vector<std::string>& args) {
  GenerateConfig c;
  po::options_description o("generate options");
  o.add_options()
      ("model-file", po::value(&c.model_file)->required(), "a byte-level language model saved by `ringtrain train "
       "--save` (trained on `prep --format text` shards), or a checkpoint")
      ("prompt", po::value(&c.prompt)->default_value(""), "UTF-8 text to continue (empty: start a new line)")
      ("tokens", po::value(&c.tokens)->default_value(c.tokens), "bytes to generate")
      ("temperature", with_default(&c.temperature, c.temperature), "below 1 sharper, above 1 flatter; 0 always "
       "takes the most likely byte")
      ("top-k", po::value(&c.top_k)->default_value(c.top_k), "draw from the K most likely bytes only (0: from all)")
      ("seed", po::value(&c.seed)->default_value(c.seed), "the same seed gives the same text")
      ("threads", po::value(&c.threads)->default_value(c.threads), "compute threads");
  po::variables_map vm;
  if (!parse("generate", args, o, vm)) return std::nullopt;
  return c;
}

}  // namespace ringtrain::cli
