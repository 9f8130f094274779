#include "ringtrain/train/eval.hpp"

#include <cstdio>
#include <memory>
#include <optional>
#include <ostream>

#include "ringtrain/comm/agreement.hpp"
#include "ringtrain/data/synthetic.hpp"
#include "ringtrain/parallel/parallel_mode.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/blas.hpp"
#include "ringtrain/tensor/text.hpp"
#include "ringtrain/train/callbacks.hpp"
#include "ringtrain/train/device_choice.hpp"
#include "ringtrain/train/model_file.hpp"
#include "ringtrain/train/trainer.hpp"
#include "ringtrain/train/validate.hpp"

namespace ringtrain {

namespace {

// What an evaluation reads, checked: the model, the split, and the device.
struct Evaluation {
  LoadedModel loaded;
  std::unique_ptr<SampleSource> data;
  Device device = Device::cpu;
  std::string device_note;  // --device auto fell back to the CPU from a GPU precision
};

// The split's synthetic samples (seed 0; each rank scores its share), or its shards.
std::unique_ptr<SampleSource> open_split(const EvalConfig& config, int ranks) {
  if (config.data.synthetic) return std::make_unique<SyntheticSource>(*config.data.synthetic, 0, config.split, ranks);
  const std::string source = config.data.source(config.split);
  if (source.empty()) throw Error(config.data.why_no_source(config.split));
  return std::make_unique<ShardSet>(ShardSet::open(source));
}

Evaluation open_evaluation(const EvalConfig& config, int ranks) {
  validate(config);
  Evaluation e{load_model(config.model_file), nullptr, Device::cpu, {}};
  e.data = open_split(config, ranks);
  const ShardMeta& meta = e.data->meta();
  const Model& model = *e.loaded.model;
  if (meta.sample_shape != model.input_shape())
    throw Error("the data's samples are " + shape_str(meta.sample_shape) + " but the model expects " +
                shape_str(model.input_shape()));
  const TargetSpace& trained = e.loaded.targets;
  if (meta.classification() != trained.classification || meta.outputs() != shape_numel(model.output_shape()))
    throw Error("the data has " + std::to_string(meta.outputs()) + (meta.classification() ? " classes" : " targets") +
                " but the model was trained for " + std::to_string(shape_numel(model.output_shape())) +
                (trained.classification ? " classes" : " targets"));
  // The model's outputs are targets standardised as its training data's were; other data's would be scored
  // on another scale.
  if (!trained.classification && meta.target_space() != trained)
    throw Error("the data's targets are standardised differently from the model's training data (their y_scale "
                "and y_shift differ): evaluate on splits of the prep run that made the training data");
  e.device = start_device(config.device, &e.device_note);
  return e;
}

}  // namespace

Score evaluate_saved_model(const EvalConfig& config, Communicator& world, std::ostream& log) {
  // Every rank reads the same files: a bad one is found alike everywhere, printed once, and every rank
  // exits 1 (rather than each printing it and aborting the others).
  std::optional<Evaluation> e;
  std::string failure;
  try {
    e.emplace(open_evaluation(config, world.size()));
  } catch (const std::exception& ex) {
    failure = ex.what();
  }
  raise_if_any_failed(world, failure);
  if (!e->device_note.empty()) log << e->device_note << std::endl;
  set_compute_threads(config.threads);
  e->loaded.model->to(e->device);
  auto loss = make_loss(e->loaded.targets, e->device);
  LoaderConfig lc;
  lc.batch = config.batch;
  lc.shuffle = false;
  lc.drop_last = false;
  lc.window_shards = config.data.window_shards;
  lc.prefetch = config.data.prefetch;
  lc.rank = world.rank();
  lc.world = world.size();
  BatchLoader loader(*e->data, lc);
  const Score score = sum_scores(world, score_batches(*e->loaded.model, *loss, loader));
  // As train prints its test score: one format for both.
  const std::string split = name_of(config.split);
  log << split << "  " << format_score(split + "_", score, loss->metric_name()) << "  ("
      << counted(score.samples, "sample") << ")" << std::endl;
  return score;
}

}  // namespace ringtrain
