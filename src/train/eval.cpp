#include "ringtrain/train/eval.hpp"

#include <cstdio>
#include <memory>
#include <optional>
#include <ostream>

#include "ringtrain/comm/agreement.hpp"
#include "ringtrain/parallel/parallel_mode.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/blas.hpp"
#include "ringtrain/train/device_choice.hpp"
#include "ringtrain/train/model_file.hpp"
#include "ringtrain/train/trainer.hpp"
#include "ringtrain/train/validate.hpp"

namespace ringtrain {

namespace {

// What an evaluation reads, checked: the model, the split, and the device.
struct Evaluation {
  LoadedModel loaded;
  std::unique_ptr<ShardSet> data;
  Device device = Device::cpu;
};

Evaluation open_evaluation(const EvalConfig& config) {
  validate(config);
  Evaluation e{load_model(config.model_file), nullptr, Device::cpu};
  const std::string source = config.data.source(config.split);
  if (source.empty()) throw Error(config.data.why_no_source(config.split));
  e.data = std::make_unique<ShardSet>(ShardSet::open(source));
  const ShardMeta& meta = e.data->meta();
  const Model& model = *e.loaded.model;
  if (meta.sample_shape != model.input_shape())
    throw Error("the data's samples are " + shape_str(meta.sample_shape) + " but the model expects " +
                shape_str(model.input_shape()));
  if (meta.classification() != e.loaded.classification || meta.outputs() != shape_numel(model.output_shape()))
    throw Error("the data has " + std::to_string(meta.outputs()) + (meta.classification() ? " classes" : " targets") +
                " but the model was trained for " + std::to_string(shape_numel(model.output_shape())) +
                (e.loaded.classification ? " classes" : " targets"));
  e.device = start_device(config.device);
  return e;
}

}  // namespace

Score evaluate_saved_model(const EvalConfig& config, Communicator& world, std::ostream& log) {
  // Every rank reads the same files: a bad one is found alike everywhere, printed once, and every rank
  // exits 1 (rather than each printing it and aborting the others).
  std::optional<Evaluation> e;
  std::string failure;
  try {
    e.emplace(open_evaluation(config));
  } catch (const std::exception& ex) {
    failure = ex.what();
  }
  raise_if_any_failed(world, failure);
  set_compute_threads(config.threads);
  e->loaded.model->to(e->device);
  auto loss = make_loss(e->loaded.classification, e->device);
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
  char line[160];
  std::snprintf(line, sizeof line, "%s: loss %.4f  %s %.4f  (%lld samples)", name_of(config.split).c_str(),
                score.loss(), loss->metric_name().c_str(), score.metric(), static_cast<long long>(score.samples));
  log << line << std::endl;
  return score;
}

}  // namespace ringtrain
