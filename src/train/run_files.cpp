#include "ringtrain/train/run_files.hpp"

#include <filesystem>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/train/checkpoint.hpp"
#include "ringtrain/train/output_file.hpp"

namespace ringtrain {

namespace {

// What a run reads besides its shards: the checkpoint it resumes or the model it starts from, and its
// --config file.
void add_run_inputs(const TrainConfig& c, std::vector<std::string>& inputs) {
  if (c.resume.kind == ResumeFrom::file) inputs.push_back(c.resume.path);
  if (!c.fine_tune.init_from.empty()) inputs.push_back(c.fine_tune.init_from);
  if (!c.config_file.empty()) inputs.push_back(c.config_file);
}

}  // namespace

// Creates the directory if need be; fails now, not at the first checkpoint hours later.
void prepare_checkpoint_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error("cannot create the checkpoint directory '" + dir + "': " + ec.message());
  check_writable_dir(dir, "cannot write checkpoints to '" + dir + "': ");
}

// The shard files `data` names (before staging copies them: the originals), and the checkpoint resumed.
std::vector<std::string> source_files(const DataSources& data, const TrainConfig& c) {
  std::vector<std::string> inputs;
  for (const Split split : {Split::train, Split::val, Split::test})
    if (const std::string source = data.source(split); !source.empty())
      for (std::string& file : ShardSet::files(source)) inputs.push_back(std::move(file));
  add_run_inputs(c, inputs);
  return inputs;
}

// The files this run reads, which no output may replace.
std::vector<std::string> input_files(const std::vector<const SampleSource*>& sets, const TrainConfig& c) {
  std::vector<std::string> inputs;
  for (const SampleSource* set : sets)
    if (set)
      for (std::string& path : set->paths()) inputs.push_back(std::move(path));
  add_run_inputs(c, inputs);
  return inputs;
}

// Fails now rather than after hours of training, and clears what a run killed while writing left.
void check_outputs(const TrainConfig& c, const std::vector<std::string>& inputs) {
  const std::pair<const std::string&, const char*> outputs[] = {{c.save_model, "the model"},
                                                                {c.timeline, "the timeline"},
                                                                {c.metrics_csv, "the metrics"},
                                                                {c.save_best, "the best model"}};
  for (const auto& [path, what] : outputs) {
    if (path.empty()) continue;
    check_output(path, what, inputs);
    remove_stale_temporaries_of(path);
  }
  // Two outputs on one path: the last written would silently replace the other.
  const std::pair<const std::string&, const char*> named[] = {{c.save_model, "--save"}, {c.timeline, "--timeline"},
                                                              {c.metrics_csv, "--metrics"},
                                                              {c.checkpoint_dir, "--checkpoint-dir"},
                                                              {c.save_best, "--save-best"}};
  auto canonical = [](const std::string& path) {
    std::error_code ec;
    const std::filesystem::path p = std::filesystem::weakly_canonical(path, ec);
    return ec ? std::filesystem::absolute(path) : p;
  };
  for (size_t i = 0; i < std::size(named); ++i)
    for (size_t j = i + 1; j < std::size(named); ++j)
      if (!named[i].first.empty() && !named[j].first.empty() && canonical(named[i].first) == canonical(named[j].first))
        throw Error(std::string(named[i].second) + " and " + named[j].second + " name the same path '" +
                    named[j].first + "'");
  if (c.checkpoint_dir.empty()) return;
  std::error_code ec;  // a directory not there yet holds no input
  for (const std::string& input : inputs)
    if (!(c.resume.kind == ResumeFrom::file && input == c.resume.path) &&  // the run's own earlier checkpoint
        std::filesystem::equivalent(std::filesystem::absolute(input).parent_path(), c.checkpoint_dir, ec))
      throw Error("cannot write checkpoints to '" + c.checkpoint_dir + "': it holds this run's input '" + input +
                  "' (old checkpoints there are removed)");
}

// A run that does not resume would prune the checkpoints another run left in its directory.
void check_no_foreign_checkpoints(const TrainConfig& c) {
  if (c.resume.kind != ResumeFrom::nothing) return;  // load_checkpoint checks what is newer than the one resumed
  const std::string newest = CheckpointDir(c.checkpoint_dir, c.keep_checkpoints).newest_after(-1);
  if (!newest.empty())
    throw Error("--checkpoint-dir '" + c.checkpoint_dir + "' already holds checkpoints (" + newest +
                "): add --resume auto to continue them, or give another directory (this run would prune them)");
}

}  // namespace ringtrain
