// The built-in callbacks (callback.hpp), one file each in src/train/callbacks/, and the list a run uses.
#pragma once
#include <iosfwd>
#include <memory>
#include <string>

#include "ringtrain/comm/communicator.hpp"
#include "ringtrain/comm/timeline.hpp"
#include "ringtrain/data/shard_set.hpp"
#include "ringtrain/nn/model.hpp"
#include "ringtrain/nn/optimizer.hpp"
#include "ringtrain/parallel/parallel_mode.hpp"
#include "ringtrain/train/callback.hpp"
#include "ringtrain/train/checkpoint.hpp"
#include "ringtrain/train/config.hpp"

namespace ringtrain {

// What the built-in callbacks work with, made once per run by the trainer. References outlive the run.
struct TrainContext {
  const TrainConfig& config;
  Communicator& world;
  ParallelMode& mode;
  Model& model;         // the host model: rank 0's holds every layer after the mode's gathers
  Loss& loss;
  Optimizer& optimizer;
  TargetSpace targets;  // what the model's outputs are, for the files that save it
  InputTransform inputs;  // how its inputs were made (the training shards' normalisation, CSV transform), likewise
  const SampleSource* test_set;     // null: no test split
  DataShare share;
  Timeline* timeline;               // null: no --timeline
  const CheckpointDir* checkpoints; // null: no --checkpoint-dir
  Settings checkpoint_settings;     // what a checkpoint records of the run's settings
  std::string header;               // the run's description, printed as it begins
  bool resumed;                     // continues a checkpoint (the metrics CSV is appended to)
  std::ostream& log;                // rank 0's progress (a sink on the others)
};

// In the order they run (callback.hpp): each is there only when its setting asks for it.
CallbackList make_callbacks(const TrainContext& context);

// One per file in src/train/callbacks/; null when the run does not ask for it.
std::unique_ptr<Callback> make_stop_vote(const TrainContext& context);      // a stop request ends every rank
std::unique_ptr<Callback> make_checkpointer(const TrainContext& context);   // --checkpoint-dir, --checkpoint-every
std::unique_ptr<Callback> make_straggler(const TrainContext& context);      // --straggler-rank
std::unique_ptr<Callback> make_mode_report(const TrainContext& context);    // the pipeline's and servers' figures
std::unique_ptr<Callback> make_metrics_csv(const TrainContext& context);    // --metrics
std::unique_ptr<Callback> make_running_score(const TrainContext& context);  // the score points (TrainState::running)
std::unique_ptr<Callback> make_progress_log(const TrainContext& context);   // the header, --log-every, epochs
std::unique_ptr<Callback> make_progress_bar(const TrainContext& context);   // --progress bar
std::unique_ptr<Callback> make_tensorboard(const TrainContext& context);    // --tensorboard
std::unique_ptr<Callback> make_step_limit(const TrainContext& context);     // --steps
std::unique_ptr<Callback> make_test_score(const TrainContext& context);     // the test split, at the end
std::unique_ptr<Callback> make_model_saver(const TrainContext& context);    // --save
std::unique_ptr<Callback> make_timeline_file(const TrainContext& context);  // --timeline
// Early stopping and regularisation (monitor.hpp):
std::unique_ptr<Callback> make_l1_penalty(const TrainContext& context);   // --l1's penalty in the reported losses
std::unique_ptr<Callback> make_best_epoch(const TrainContext& context);   // --monitor's best epoch, when watched
std::unique_ptr<Callback> make_early_stop(const TrainContext& context);   // --early-stop-patience
std::unique_ptr<Callback> make_best_model(const TrainContext& context);   // --save-best

// Collective: the mode's gather, then rank 0 writes the whole model to `path` atomically (model_file.hpp); a
// failed write is a CollectiveError on every rank, and the file that was there is kept. --save, --save-best.
void save_gathered_model(const TrainContext& context, const std::string& path);

// "loss 0.4123  accuracy 0.8812", with `prefix` before each name ("val_loss ..."). A language model's loss is
// in nats per token, and its perplexity e^loss follows it: "loss 1.8123  ppl 6.12  accuracy 0.4563".
std::string format_score(const std::string& prefix, const Score& score, const std::string& metric,
                         bool per_token = false);
// A split's line as train prints its test score and eval the split it scores, one format for both:
// "test  test_loss 0.4123  test_accuracy 0.8812  (10000 samples)"; a language model's counts tokens.
std::string format_split_score(const std::string& split, const Score& score, const std::string& metric,
                               bool per_token);
// "12.5 img/s", "10234 img/s": a decimal below 100.
std::string format_rate(double per_s, const std::string& unit);

// Watching a run (progress_*.cpp, tensorboard.cpp).
// The running training score is taken at every `score_every` steps (0: never): --log-every's, or where a bar or
// TensorBoard shows it without one, about 100 times an epoch. Every rank takes it at the same steps.
int64_t score_every(const TrainConfig& config, int64_t steps_per_epoch);
// Collective: --progress auto made bar or lines, alike on every rank (the score points depend on it). A bar
// when rank 0's stdout is a terminal, except under Open MPI's mpirun, which gives its ranks a pseudo-terminal
// even when its own output goes to a file.
ProgressKind choose_progress(ProgressKind asked, Communicator& world);
// The unit the lines, the bar and TensorBoard's tags give a run's throughput in: "img/s", samples a second, or
// for a language model "tokens/s" (its loss counts every position as a sample): the one place that says which.
std::string throughput_unit(const TrainContext& context);

// The evaluation loader every split is scored with: in order, whole batches of at least 256 samples.
std::unique_ptr<BatchLoader> make_eval_loader(const SampleSource& split, const TrainConfig& config, DataShare share);

}  // namespace ringtrain
