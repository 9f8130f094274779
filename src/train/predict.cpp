#include "ringtrain/train/predict.hpp"

#include <cstdio>
#include <filesystem>
#include <optional>
#include <ostream>

#include "ringtrain/comm/agreement.hpp"
#include "ringtrain/comm/timeline.hpp"
#include "ringtrain/data/csv_source.hpp"
#include "ringtrain/data/idx.hpp"
#include "ringtrain/data/shard_set.hpp"
#include "ringtrain/tensor/blas.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/text.hpp"
#include "ringtrain/train/device_choice.hpp"
#include "ringtrain/train/output_file.hpp"
#include "ringtrain/train/validate.hpp"

namespace fs = std::filesystem;

namespace ringtrain {

namespace {

// A directory `prep` wrote (it holds train-, val- or test-*.h5 shards): its split. Any other: its shards.
std::string shards_in(const std::string& dir, Split split) {
  bool prepped = false;
  for (const Split s : {Split::train, Split::val, Split::test}) prepped |= ShardSet::exists(ShardSet::split_pattern(dir, s));
  if (!prepped) return dir;
  const std::string pattern = ShardSet::split_pattern(dir, split);
  if (!ShardSet::exists(pattern))
    throw Error("no " + name_of(split) + " shards (" + name_of(split) + "-*.h5) in '" + dir +
                "', a prep directory: choose another of its splits with --split");
  return pattern;
}

// IDX images standardised as the model's training data was: prep of IDX files stores one scale and shift
// (x_scale, x_shift) in the shards, and the model file copies them (1 and 0: data taken as it is, as a
// model file from before files recorded it reads).
std::unique_ptr<SampleSource> open_idx(const std::string& path, const LoadedModel& loaded, const std::string& model_file) {
  const InputTransform& t = loaded.inputs;
  if (t.csv || t.x_scale.size() != 1 || t.x_shift.size() != 1)
    throw Error("'" + model_file + "' was trained on data standardised feature by feature (a CSV's), not on images "
                "prepared from IDX files");
  return std::make_unique<IdxImages>(path, t.x_scale[0], t.x_shift[0]);
}

bool is_csv(const std::string& path) {
  const std::string extension = fs::path(path).extension().string();
  return extension == ".csv" || extension == ".CSV";
}

// What a prediction reads, checked: the model, the input, the device.
struct Prediction {
  LoadedModel loaded;
  std::unique_ptr<SampleSource> input;
  Device device = Device::cpu;
  std::string device_note;
};

Prediction open_prediction(const PredictConfig& config, bool writes) {
  validate(config);
  Prediction p{load_model(config.model_file), nullptr, Device::cpu, {}};
  if (p.loaded.model->per_position())
    throw Error("'" + config.model_file + "' is a language model: predict writes one prediction a sample, and a "
                "language model makes one at every position; `ringtrain generate` continues a prompt with it, and "
                "`ringtrain eval` scores it");
  p.input = open_prediction_input(config, p.loaded);
  if (writes) {
    std::vector<std::string> inputs = p.input->paths();
    inputs.push_back(config.model_file);
    check_output(config.out, "the predictions", inputs);
    remove_stale_temporaries_of(config.out);
  }
  p.device = start_device(config.device, &p.device_note);
  return p;
}

}  // namespace

std::unique_ptr<SampleSource> open_prediction_input(const PredictConfig& config, const LoadedModel& loaded) {
  const std::string& in = config.input;
  std::error_code ec;
  std::unique_ptr<SampleSource> source;
  // Shards of features only (prep --like of data without its target) are data to predict too.
  if (fs::is_directory(in, ec))
    source = std::make_unique<ShardSet>(ShardSet::open(shards_in(in, config.split), TargetsNeeded::no));
  else if (fs::is_regular_file(in, ec) && looks_like_idx(in)) source = open_idx(in, loaded, config.model_file);
  else if (is_csv(in)) source = open_csv_with_transform(in, loaded.inputs, loaded.targets, config.missing);
  else source = std::make_unique<ShardSet>(ShardSet::open(in, TargetsNeeded::no));  // a shard or a glob: its errors say what is wrong
  check_input_shape(source->meta(), *loaded.model);
  return source;
}

void predict_saved_model(const PredictConfig& config, Communicator& world, std::ostream& log) {
  // Every rank reads the same files, and finds a bad one alike: one line, every rank exits 1. Rank 0 alone
  // writes the output, and checks it.
  std::optional<Prediction> p;
  run_agreed(world, [&] { p.emplace(open_prediction(config, world.rank() == 0)); });
  if (!p->device_note.empty()) log << p->device_note << std::endl;
  set_compute_threads(config.threads);
  p->loaded.model->to(p->device);
  const int64_t samples = p->input->samples();
  log << "predicting " << counted(samples, "sample") << " " << p->input->origin() << " on "
      << counted(world.size(), "rank") << std::endl;
  const auto start = Timeline::Clock::now();
  Predictions mine;
  run_agreed(world, [&] {
    mine = predict_share(*p->loaded.model, p->loaded.targets, *p->input, {config.batch, config.prefetch},
                         world.rank(), world.size());
  });
  const Predictions all = gather_predictions(world, std::move(mine));
  run_agreed(world, [&] {
    if (world.rank() == 0) write_predictions(config.out, config.format, all);
  });
  const double seconds = seconds_since(start);
  char rate[96];
  std::snprintf(rate, sizeof rate, "%.2f s, %.0f samples/s", seconds, static_cast<double>(samples) / seconds);
  log << "wrote " << counted(samples, "row") << " to " << config.out << " (" << rate << ")" << std::endl;
}

}  // namespace ringtrain
