#include "ringtrain/train/eval.hpp"

#include <cstdio>
#include <ostream>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/parallel/parallel_mode.hpp"
#include "ringtrain/tensor/blas.hpp"
#include "ringtrain/train/device_choice.hpp"
#include "ringtrain/train/model_file.hpp"
#include "ringtrain/train/trainer.hpp"
#include "ringtrain/train/validate.hpp"

namespace ringtrain {

Score evaluate_saved_model(const EvalConfig& config, Communicator& world, std::ostream& log) {
  validate(config);
  set_compute_threads(config.threads);
  LoadedModel loaded = load_model(config.model_file);
  const std::string source = config.data.source(config.split);
  const std::string split = name_of(config.split);
  if (source.empty()) throw Error("no " + split + " data: give --data DIR or --" + split + " FILES");
  const ShardSet data = ShardSet::open(source);
  const ShardMeta& meta = data.meta();
  if (meta.sample_shape != loaded.model->input_shape())
    throw Error("the data's samples are " + shape_str(meta.sample_shape) + " but the model expects " +
                shape_str(loaded.model->input_shape()));
  if (meta.classification() != loaded.classification || meta.outputs() != shape_numel(loaded.model->output_shape()))
    throw Error("the data has " + std::to_string(meta.outputs()) + (meta.classification() ? " classes" : " targets") +
                " but the model was trained for " + std::to_string(shape_numel(loaded.model->output_shape())) +
                (loaded.classification ? " classes" : " targets"));
  const Device device = start_device(config.device);
  loaded.model->to(device);
  auto loss = make_loss(loaded.classification, device);
  LoaderConfig lc;
  lc.batch = config.batch;
  lc.shuffle = false;
  lc.drop_last = false;
  lc.window_shards = config.data.window_shards;
  lc.prefetch = config.data.prefetch;
  lc.rank = world.rank();
  lc.world = world.size();
  BatchLoader loader(data, lc);
  const Score score = sum_scores(world, score_batches(*loaded.model, *loss, loader));
  char line[160];
  std::snprintf(line, sizeof line, "%s: loss %.4f  %s %.4f  (%lld samples)", split.c_str(), score.loss(),
                loss->metric_name().c_str(), score.metric(), static_cast<long long>(score.samples));
  log << line << std::endl;
  return score;
}

}  // namespace ringtrain
