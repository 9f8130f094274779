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
#include "ringtrain/train/inference.hpp"
#include "ringtrain/train/model_file.hpp"
#include "ringtrain/train/report/report.hpp"
#include "ringtrain/train/trainer.hpp"
#include "ringtrain/train/validate.hpp"

namespace ringtrain {

namespace {

// What an evaluation reads, checked: the model, the split, and the device.
struct Evaluation {
  LoadedModel loaded;
  std::unique_ptr<SampleSource> data;
  const ShardSet* shards = nullptr;  // `data` when it is shards (not synthetic)
  Device device = Device::cpu;
  std::string device_note;  // --device auto fell back to the CPU from a GPU precision
};

// The split's synthetic samples (seed 0; each rank scores its share), or its shards.
void open_split(const EvalConfig& config, int ranks, Evaluation& e) {
  if (config.data.synthetic) {
    e.data = std::make_unique<SyntheticSource>(*config.data.synthetic, 0, config.split, ranks);
    return;
  }
  const std::string source = config.data.source(config.split);
  if (source.empty()) throw Error(config.data.why_no_source(config.split));
  auto shards = std::make_unique<ShardSet>(ShardSet::open(source));
  e.shards = shards.get();
  e.data = std::move(shards);
}

// A report scores classes against each other: one class alone has no precision, recall or ROC curve.
void check_reportable(const EvalConfig& config, const LoadedModel& loaded) {
  const int64_t outputs = loaded.model->outputs();
  if (!config.report_dir.empty() && loaded.targets.classification && outputs < 2)
    throw Error("--report: the model has 1 class, and its classification metrics (precision, recall, ROC curves) "
                "compare 2 classes or more");
  if (!config.report_dir.empty() && loaded.model->per_position())
    throw Error("--report: '" + config.model_file + "' is a language model, scored by its loss and perplexity per "
                "token (eval without --report); its report's per-sample metrics would mean nothing");
}

Evaluation open_evaluation(const EvalConfig& config, int ranks) {
  validate(config);
  Evaluation e{load_model(config.model_file), nullptr, nullptr, Device::cpu, {}};
  check_reportable(config, e.loaded);
  open_split(config, ranks, e);
  const ShardMeta& meta = e.data->meta();
  const Model& model = *e.loaded.model;
  check_input_shape(meta, model);
  const TargetSpace& trained = e.loaded.targets;
  if (meta.classification() != trained.classification || meta.outputs() != model.outputs())
    throw Error("the data has " + std::to_string(meta.outputs()) + (meta.classification() ? " classes" : " targets") +
                " but the model was trained for " + std::to_string(model.outputs()) +
                (trained.classification ? " classes" : " targets"));
  // The model's outputs are targets standardised as its training data's were; other data's would be scored
  // on another scale.
  if (!trained.classification && meta.target_space() != trained)
    throw Error("the data's targets are standardised differently from the model's training data (their y_scale "
                "and y_shift differ): evaluate on splits of the prep run that made the training data");
  e.device = start_device(config.device, &e.device_note);
  return e;
}

// The regression targets as the shards store them: the loader's are standardised in float, which does not
// give the stored values back exactly, and the report is in the target's units.
std::vector<float> stored_targets(const ShardSet& shards) {
  std::vector<float> out;
  for (const ShardMeta& shard : shards.shards()) {
    const ShardData d = read_shard_data(shard);
    out.insert(out.end(), d.targets.begin(), d.targets.end());
  }
  return out;
}

// Rank 0: the report of every sample's predictions, in DIR.
void write_report(const EvalConfig& config, const Evaluation& e, const Predictions& all, std::ostream& log) {
  const ShardMeta& meta = e.data->meta();
  ReportSubject subject{config.model_file, meta.path, {}};
  char line[160];
  if (all.classification) {
    subject.names = meta.class_names;
    const ClassificationMetrics m = classification_metrics(all.labels, all.predicted, all.values, all.width);
    write_classification_report(config.report_dir, subject, m);
    char auc[32] = "n/a";
    if (m.auc) std::snprintf(auc, sizeof auc, "%.4f", *m.auc);
    std::snprintf(line, sizeof line, "accuracy %.4f  macro F1 %.4f  weighted F1 %.4f  ROC AUC %s", m.accuracy,
                  m.macro.f1, m.weighted.f1, auc);
  } else {
    subject.names = meta.target_names;
    const std::vector<float> truth = stored_targets(*e.shards);
    const RegressionMetrics m = regression_metrics(truth, all.values, all.width);
    write_regression_report(config.report_dir, subject, m, truth, all.values);
    std::snprintf(line, sizeof line, "MAE %.6g  RMSE %.6g  R^2 %.4f", m.overall.mae, m.overall.rmse, m.overall.r2);
  }
  log << "report in " << config.report_dir << ": " << line << std::endl;
  log << plot_report(config.report_dir) << std::endl;
}

}  // namespace

Score evaluate_saved_model(const EvalConfig& config, Communicator& world, std::ostream& log) {
  // Every rank reads the same files: a bad one is found alike everywhere, printed once, and every rank
  // exits 1 (rather than each printing it and aborting the others).
  std::optional<Evaluation> e;
  run_agreed(world, [&] { e.emplace(open_evaluation(config, world.size())); });
  const bool report = !config.report_dir.empty();
  if (report) {
    std::vector<std::string> inputs = e->data->paths();
    inputs.push_back(config.model_file);
    run_agreed(world, [&] {
      if (world.rank() == 0) prepare_report_dir(config.report_dir, inputs);
    });
  }
  if (!e->device_note.empty()) log << e->device_note << std::endl;
  set_compute_threads(config.threads);
  e->loaded.model->to(e->device);
  auto loss = make_loss(e->loaded.targets, e->device);
  Predictions mine;
  run_agreed(world, [&] {
    mine = predict_share(*e->loaded.model, e->loaded.targets, *e->data, {config.batch, config.data.prefetch},
                         world.rank(), world.size(), [&](const Tensor& out, const Batch& batch) {
                           loss->forward(out, batch.y);
                         });
  });
  const Score score = sum_scores(world, loss->take_score());
  log << format_split_score(name_of(config.split), score, loss->metric_name(), e->loaded.model->per_position())
      << std::endl;
  if (report) {
    const Predictions all = gather_predictions(world, std::move(mine));
    run_agreed(world, [&] {
      if (world.rank() == 0) write_report(config, *e, all, log);
    });
  }
  return score;
}

}  // namespace ringtrain
