#include "ringtrain/train/checkpoint.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <ostream>
#include <regex>

#include "ringtrain/data/hdf5.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/text.hpp"
#include "ringtrain/train/model_file.hpp"

namespace ringtrain {

namespace {

// A settings line of a checkpoint written before the lines were named and worded as they are now.
std::pair<std::string, std::string> current_setting(const std::string& name, std::string value) {
  if (name == "--ranks") return {"ranks", value};
  if (name != "the training data") return {name, value};
  for (const auto& [old, now] : {std::pair{"1 samples of", "1 sample of"}, std::pair{" 1 shards", " 1 shard"}})
    if (const size_t at = value.find(old); at != std::string::npos && (at == 0 || old[0] == ' '))
      value.replace(at, std::strlen(old), now);
  return {"training data", value};
}

std::string optimizer_name(const std::string& param, const std::string& state) {
  return "optimizer/" + param + "/" + state;
}

// step-<digits>.h5 -> the step; -1 for other names.
int64_t step_of(const std::filesystem::path& file) {
  static const std::regex name(R"(step-(\d+)\.h5)");
  std::smatch m;
  const std::string base = file.filename().string();
  return std::regex_match(base, m, name) ? std::stoll(m[1]) : -1;
}

void check_format(hid_t file, const std::string& path) {
  if (!h5::has_attr(file, "checkpoint") || h5::read_attr_str(file, "checkpoint") != kCheckpointFormat)
    throw Error("'" + path + "' is not a ringtrain checkpoint (no attribute checkpoint = '" + kCheckpointFormat + "')");
}

void write_best_epoch(hid_t f, const BestEpoch& best) {
  h5::write_attr(f, "monitor", name_of(best.monitor));
  h5::write_attr(f, "best_epoch", best.epoch);
  h5::write_attr(f, "best_value", std::vector<double>{best.value});
  h5::write_attr(f, "epochs_since_best", best.epochs_since);
}

// A checkpoint from before the best epoch was kept has seen none.
BestEpoch read_best_epoch(hid_t f, const std::string& path) {
  BestEpoch best;
  if (!h5::has_attr(f, "best_epoch")) return best;
  const std::string name = h5::read_attr_str(f, "monitor");
  const std::optional<Monitor> monitor = enum_from_name<Monitor>(name);
  if (!monitor)
    throw Error("'" + path + "' is damaged: its monitor '" + name + "' is not " + choices_of<Monitor>());
  const std::vector<double> value = h5::read_attr_f64(f, "best_value");
  if (value.size() != 1) throw Error("'" + path + "' is damaged: its best_value is not one number");
  return {*monitor, h5::read_attr_i64(f, "best_epoch"), value[0], h5::read_attr_i64(f, "epochs_since_best")};
}

// The global sample position and the layout that wrote it, where recorded (a checkpoint from before has
// neither).
void write_sample_position(hid_t f, const TrainProgress& at) {
  if (at.pass_sample < 0 || !at.layout.recorded()) return;
  h5::write_attr(f, "pass_sample", at.pass_sample);
  h5::write_attr(f, "replicas", at.layout.replicas);
  h5::write_attr(f, "global_batch", at.layout.global_batch);
}

void read_sample_position(hid_t f, TrainProgress& at) {
  if (!h5::has_attr(f, "pass_sample")) return;
  at.pass_sample = h5::read_attr_i64(f, "pass_sample");
  at.layout = {h5::read_attr_i64(f, "replicas"), h5::read_attr_i64(f, "global_batch")};
}

// The attributes that place the run, checked before anything is positioned by them. A recorded sample position
// may lie beyond the step count's batches (a resumed run with a smaller global batch counts them in larger ones).
void check_progress(const TrainProgress& at, int64_t optimizer_steps, const std::string& path) {
  const bool recorded = at.pass_sample >= 0 || at.layout.recorded();
  const bool position = recorded ? at.pass_sample >= 0 && at.layout.replicas >= 1 &&
                                       at.layout.global_batch >= at.layout.replicas && at.pass_batch >= 0
                                 : at.pass_batch >= 0 && at.pass_batch <= at.step;
  const bool fits = at.step >= 0 && at.epoch >= 0 && at.epoch <= at.step && at.pass >= 0 && at.pass <= at.step &&
                    position && optimizer_steps >= 0 && at.best.epoch >= 0 && at.best.epoch <= at.epoch &&
                    at.best.epochs_since >= 0 && at.best.epochs_since <= at.epoch;
  if (!fits)
    throw Error("'" + path + "' is damaged: its progress does not add up (step " + std::to_string(at.step) +
                ", epoch " + std::to_string(at.epoch) + ", pass " + std::to_string(at.pass) + ", pass_batch " +
                std::to_string(at.pass_batch) +
                (recorded ? ", pass_sample " + std::to_string(at.pass_sample) + ", replicas " +
                                std::to_string(at.layout.replicas) + ", global_batch " +
                                std::to_string(at.layout.global_batch)
                          : std::string()) +
                ", optimizer_steps " + std::to_string(optimizer_steps) + ", best_epoch " +
                std::to_string(at.best.epoch) + ", epochs_since_best " + std::to_string(at.best.epochs_since) + ")");
}

// Error naming `path` unless the step count places `at` in a run of `steps_per_epoch` steps per epoch.
void check_steps_fit(const TrainProgress& at, int64_t steps_per_epoch, const std::string& path) {
  const int64_t into_epoch = at.step - at.epoch * steps_per_epoch;
  if (at.pass_batch > steps_per_epoch || into_epoch < 0 || into_epoch > steps_per_epoch)
    throw Error("'" + path + "' does not fit this run: step " + std::to_string(at.step) + ", epoch " +
                std::to_string(at.epoch) + " and batch " + std::to_string(at.pass_batch) + " of the pass, with " +
                std::to_string(steps_per_epoch) + " steps per epoch (was the data changed?)");
}

// Why a setting must match, where the line alone would not say: the ones that lay out the ranks.
std::string why_fixed(const std::string& flag) {
  if (flag == "--pipeline-stages" || flag == "--split")
    return " (a pipeline resumes on as many stages, split alike; the number of its replicas may change)";
  if (flag == "--ps-servers") return " (parameter servers resume on as many servers and workers)";
  if (flag == "--batch" || flag == "ranks")
    return " (the checkpoint records no global sample position, as before ringtrain recorded one: it resumes "
           "only on as many ranks, with the same --batch)";
  return "";
}

}  // namespace

void write_checkpoint(const std::string& path, Model& model, const TargetSpace& targets, const InputTransform& inputs,
                      const OptimizerState& optimizer, const TrainProgress& progress, const Settings& settings) {
  write_sealed_hdf5(path, [&](hid_t f) {
    write_model(f, model, targets, inputs);
    h5::write_attr(f, "checkpoint", std::string(kCheckpointFormat));
    h5::write_attr(f, "step", progress.step);
    h5::write_attr(f, "epoch", progress.epoch);
    h5::write_attr(f, "pass", progress.pass);
    h5::write_attr(f, "pass_batch", progress.pass_batch);
    write_sample_position(f, progress);
    h5::write_attr(f, "optimizer_steps", optimizer.steps);
    write_best_epoch(f, progress.best);
    std::vector<std::string> lines;
    for (const auto& [flag, value] : settings) lines.push_back(flag + "=" + value);
    h5::write_attr(f, "settings", lines);
    const std::vector<NamedParam> params = model.named_params();
    for (size_t i = 0; i < params.size() && i < optimizer.tensors.size(); ++i)
      for (size_t k = 0; k < optimizer.names.size(); ++k) {
        const Tensor& t = optimizer.tensors[i][k];
        h5::write_dataset(f, optimizer_name(params[i].name, optimizer.names[k]), t.shape(), t.data(),
                          h5::Checksum::fletcher32);
      }
    for (const auto& [name, position] : model.named_random_streams()) {
      const int64_t value = static_cast<int64_t>(*position);
      h5::write_dataset(f, "rng/" + name, {1}, &value, h5::Checksum::fletcher32);
    }
  });
}

void check_checkpoint(const std::string& path) {
  auto lock = h5::lock_library();
  bool sealed = false;
  h5::H5Id file = h5::open_sealed_file(path, &sealed);
  check_format(file.get(), path);
  // The seal has read and checked every byte; a file from before seals has its datasets' checksums only.
  if (!sealed) h5::verify_datasets(file.get(), path);
}

CheckpointContents read_checkpoint(const std::string& path, Model& model, const std::vector<std::string>& state_names) {
  auto lock = h5::lock_library();
  h5::H5Id file = h5::open_sealed_file(path);
  const hid_t f = file.get();
  check_format(f, path);
  const std::string spec = h5::read_attr_str(f, "model_spec");
  if (spec != model.spec())
    throw Error("checkpoint '" + path + "' holds model '" + spec + "', not this run's '" + model.spec() + "'");
  CheckpointContents out;
  for (const std::string& line : h5::read_attr_strs(f, "settings")) {
    const size_t eq = line.find('=');
    out.settings.push_back(current_setting(line.substr(0, eq), eq == std::string::npos ? "" : line.substr(eq + 1)));
  }
  out.targets = read_target_space(f, path);
  out.progress.step = h5::read_attr_i64(f, "step");
  out.progress.epoch = h5::read_attr_i64(f, "epoch");
  out.progress.pass = h5::read_attr_i64(f, "pass");
  out.progress.pass_batch = h5::read_attr_i64(f, "pass_batch");
  read_sample_position(f, out.progress);
  out.progress.best = read_best_epoch(f, path);
  read_model_into(f, path, model);
  const std::vector<NamedParam> params = model.named_params();
  std::vector<Param*> plain;
  for (const NamedParam& p : params) plain.push_back(p.param);
  out.optimizer = zero_optimizer_state(state_names, plain);
  out.optimizer.steps = h5::read_attr_i64(f, "optimizer_steps");
  check_progress(out.progress, out.optimizer.steps, path);
  for (size_t i = 0; i < params.size(); ++i)
    for (size_t k = 0; k < state_names.size(); ++k) {
      const std::string name = optimizer_name(params[i].name, state_names[k]);
      if (!h5::has_dataset(f, name))
        throw Error("checkpoint '" + path + "' has no '" + name + "': it was written with another --optimizer");
      Tensor& t = out.optimizer.tensors[i][k];
      h5::read_f32_exact(f, path, name, t.shape(), t.data());
    }
  for (const auto& [name, position] : model.named_random_streams()) {
    std::vector<int64_t> value;
    h5::read_i64(f, "rng/" + name, value);
    if (value.size() != 1) throw Error("'rng/" + name + "' in '" + path + "' is not one int64");
    *position = static_cast<uint64_t>(value[0]);
  }
  return out;
}

std::string describe(const BatchLayout& layout, std::string_view unit) {
  return counted(layout.replicas, unit) + " x --batch " + std::to_string(layout.global_batch / layout.replicas);
}

ResumePlace resume_place(const TrainProgress& at, const BatchLayout& now, int64_t steps_per_epoch, int64_t samples,
                         bool epochs_are_passes, const std::string& path) {
  // Without a recorded position the checkpoint's run had this layout (checkpoint_mismatch): its batch places it.
  const bool recorded = at.pass_sample >= 0;
  const int64_t sample = recorded ? at.pass_sample : at.pass_batch * now.global_batch;
  if (!recorded || !epochs_are_passes) check_steps_fit(at, steps_per_epoch, path);
  if (!epochs_are_passes) return {at.pass, sample, at.step - at.epoch * steps_per_epoch, at.step};
  // The epoch has taken as many of its steps as the pass has fewer left: with another global batch the epoch has
  // another number of steps, and this is where its samples put this run in it. (A pass runs alongside its
  // epoch: the epoch ends with it.)
  if (at.pass != at.epoch || sample > samples)
    throw Error("'" + path + "' does not fit this run: epoch " + std::to_string(at.epoch) + ", pass " +
                std::to_string(at.pass) + " at its sample " + std::to_string(sample) + ", with " +
                counted(samples, "training sample") + " (was the data changed?)");
  const int64_t epoch_steps = steps_per_epoch - (samples - sample) / now.global_batch;
  return {at.pass, sample, epoch_steps, at.epoch * steps_per_epoch + epoch_steps};
}

std::string layout_refusal(const BatchLayout& saved, const BatchLayout& now, bool servers) {
  if (!servers || !saved.recorded() || saved == now) return "";
  return "it was written by " + describe(saved, "worker") + " and this run has " + describe(now, "worker") +
         ": parameter servers resume only on as many workers with the same --batch (their epochs and staleness "
         "count every worker's steps)";
}

std::string checkpoint_mismatch(const Settings& saved, const Settings& now, bool layout_recorded) {
  static const std::vector<std::string> fixed = {
      "--model", "training data", "--seed", "--shuffle-window", "--optimizer", "--mode", "--pipeline-stages",
      "--micro-batches", "--split", "--ps-servers", "--freeze", "--augment"};
  // The global batch may change with them: resume_place continues at the recorded global sample position.
  static const std::vector<std::string> laid_out = {"--batch", "ranks"};
  auto value = [](const Settings& s, const std::string& flag) {
    auto it = std::find_if(s.begin(), s.end(), [&](const auto& kv) { return kv.first == flag; });
    return it == s.end() ? std::string("(none)") : it->second;
  };
  auto first_difference = [&](const std::vector<std::string>& flags) -> std::string {
    for (const std::string& flag : flags) {
      const std::string a = value(saved, flag), b = value(now, flag);
      if (a != b) return flag + " is '" + a + "' in the checkpoint but '" + b + "' in this run" + why_fixed(flag);
    }
    return "";
  };
  const std::string differs = first_difference(fixed);
  return differs.empty() && !layout_recorded ? first_difference(laid_out) : differs;
}

std::string CheckpointDir::path(int64_t step) const {
  char name[32];
  std::snprintf(name, sizeof name, "step-%012lld.h5", static_cast<long long>(step));
  return (std::filesystem::path(dir_) / name).string();
}

std::vector<std::string> CheckpointDir::list() const {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    const int64_t step = step_of(entry.path());
    if (step >= 0 && entry.is_regular_file(ec)) found.emplace_back(step, entry.path().string());
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(std::move(f.second));
  return out;
}

std::string CheckpointDir::newest_valid(std::ostream& log) const {
  for (const std::string& path : list()) {
    try {
      check_checkpoint(path);
      return path;
    } catch (const Error& e) {
      log << "  skipping checkpoint " << path << ": " << e.what() << std::endl;
    }
  }
  return "";
}

std::string CheckpointDir::newest_after(int64_t step) const {
  const std::vector<std::string> all = list();
  return !all.empty() && step_of(all.front()) > step ? all.front() : "";
}

void CheckpointDir::prune(int64_t written_step) const {
  int kept = 0;
  for (const std::string& path : list()) {
    // Never one newer than the run's own: the run would otherwise remove what it just wrote.
    if (step_of(path) > written_step || ++kept <= std::max(keep_, 1)) continue;
    std::error_code ignored;
    std::filesystem::remove(path, ignored);
  }
}

CheckpointLock::CheckpointLock(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / ".ringtrain.lock").string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error("cannot create the lock file '" + path + "': " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) return;
  const int error = errno;
  if (error != EWOULDBLOCK) return;  // no flock on this file system: go on unlocked
  ::close(fd_);
  fd_ = -1;
  throw Error("the checkpoint directory '" + dir + "' is in use by another job (it holds " + path +
              "): give each job its own --checkpoint-dir (\"%j\" in it is the job id)");
}

CheckpointLock::~CheckpointLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the file releases the lock
}

}  // namespace ringtrain
