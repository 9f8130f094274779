// Checkpoints on one rank: the optimizer's state round trip, the file, the directory (keep-last-K, the newest
// valid), resuming through the trainer bitwise, stop requests, and non-finite gradients.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/nn/model.hpp"
#include "ringtrain/nn/optimizer.hpp"
#include "ringtrain/stop_request.hpp"
#include "ringtrain/train/checkpoint.hpp"
#include "ringtrain/train/model_file.hpp"
#include "ringtrain/parallel/nonfinite_guard.hpp"
#include "ringtrain/train/trainer.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

using test::TempDir;

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.numel() == b.numel() && std::memcmp(a.data(), b.data(), sizeof(float) * static_cast<size_t>(a.numel())) == 0;
}

void set_gradients(Model& model, uint64_t seed) {
  for (Param* p : model.params()) p->grad = test::random_tensor(p->value.shape(), seed++);
}

void expect_error(const std::function<void()>& load, const std::string& expected) {
  try {
    load();
    FAIL() << "loaded; expected the error '" << expected << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
  }
}

// Every optimizer: three steps, a copy of its state into a fresh optimizer, then two more steps on each from
// the same weights give the same bits.
TEST(OptimizerState, AFreshOptimizerLoadedFromTheStateContinuesBitwise) {
  for (OptimizerKind kind : {OptimizerKind::sgd, OptimizerKind::adam, OptimizerKind::rmsprop}) {
    OptimizerConfig c;
    c.kind = kind;
    c.weight_decay = 1e-3f;
    Model a("flatten,linear(5),relu,linear(out)", {4}, 3, 1);
    auto first = make_optimizer(c);
    for (int s = 0; s < 3; ++s) set_gradients(a, 10 * s), first->step(a.params(), 0.01f);
    OptimizerState state = zero_optimizer_state(first->state_names(), a.params());
    copy_optimizer_state_out(*first, a.params(), state);
    EXPECT_EQ(state.steps, 3) << name_of(kind);

    Model b("flatten,linear(5),relu,linear(out)", {4}, 3, 1);
    for (size_t i = 0; i < a.params().size(); ++i) b.params()[i]->value.copy_from(a.params()[i]->value);
    auto second = make_optimizer(c);
    copy_optimizer_state_in(state, 0, *second, b.params());
    for (int s = 3; s < 5; ++s) {
      set_gradients(a, 10 * s), first->step(a.params(), 0.01f);
      set_gradients(b, 10 * s), second->step(b.params(), 0.01f);
    }
    for (size_t i = 0; i < a.params().size(); ++i)
      EXPECT_TRUE(same_bits(a.params()[i]->value, b.params()[i]->value)) << name_of(kind) << " parameter " << i;
  }
}

TEST(OptimizerState, NamesArePyTorchs) {
  OptimizerConfig c;
  EXPECT_EQ(make_optimizer(c)->state_names(), std::vector<std::string>{"momentum"});
  c.momentum = 0.0f;
  EXPECT_TRUE(make_optimizer(c)->state_names().empty());
  c.kind = OptimizerKind::adam;
  EXPECT_EQ(make_optimizer(c)->state_names(), (std::vector<std::string>{"exp_avg", "exp_avg_sq"}));
  c.kind = OptimizerKind::rmsprop;
  EXPECT_EQ(make_optimizer(c)->state_names(), std::vector<std::string>{"square_avg"});
}

TEST(CheckpointFile, RoundTripsModelOptimizerRandomStreamsAndProgress) {
  TempDir dir;
  const std::string spec = "flatten,linear(6),relu,dropout(0.5),linear(out)";
  Model model(spec, {4}, 3, 7);
  set_gradients(model, 1);
  OptimizerConfig c;
  c.kind = OptimizerKind::adam;
  auto optimizer = make_optimizer(c);
  optimizer->step(model.params(), 0.1f);
  OptimizerState state = zero_optimizer_state(optimizer->state_names(), model.params());
  copy_optimizer_state_out(*optimizer, model.params(), state);
  *model.named_random_streams().at(0).second = 41;
  const std::string path = dir.path("c.h5");
  write_checkpoint(path, model, TargetSpace{}, InputTransform{}, state, {12, 1, 2, 3},
                   {{"--model", spec}, {"--batch", "8"}});

  Model loaded(spec, {4}, 3, 99);  // other initial weights
  const CheckpointContents back = read_checkpoint(path, loaded, optimizer->state_names());
  EXPECT_EQ(back.progress.step, 12);
  EXPECT_EQ(back.progress.epoch, 1);
  EXPECT_EQ(back.progress.pass, 2);
  EXPECT_EQ(back.progress.pass_batch, 3);
  EXPECT_EQ(back.progress.pass_sample, -1);  // not given: not recorded, as in a checkpoint from before
  EXPECT_FALSE(back.progress.layout.recorded());
  EXPECT_EQ(back.settings, (Settings{{"--model", spec}, {"--batch", "8"}}));
  EXPECT_EQ(back.optimizer.steps, 1);
  EXPECT_EQ(*loaded.named_random_streams().at(0).second, 41u);
  for (size_t i = 0; i < model.params().size(); ++i) {
    EXPECT_TRUE(same_bits(model.params()[i]->value, loaded.params()[i]->value));
    for (size_t k = 0; k < 2; ++k) EXPECT_TRUE(same_bits(state.tensors[i][k], back.optimizer.tensors[i][k]));
  }

  Model other("flatten,linear(7),relu,linear(out)", {4}, 3, 1);
  try {
    read_checkpoint(path, other, optimizer->state_names());
    FAIL() << "a checkpoint of another model loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("holds model '" + model.spec() + "', not this run's"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(read_checkpoint(path, loaded, {"momentum"}), Error);  // written by Adam, read for SGD
}

// Checkpoints from before the settings lines were renamed ("--ranks", "the training data ... 1 shards") still
// resume: their lines are read under today's names and wording.
TEST(CheckpointFile, OlderSettingsNamesAreReadAsTodays) {
  TempDir dir;
  Model model("flatten,linear(out)", {4}, 3, 7);
  const std::string path = dir.path("old.h5");
  write_checkpoint(path, model, TargetSpace{}, InputTransform{}, {}, {10, 0, 0, 10},
                   {{"--model", model.spec()}, {"the training data", "1 samples of [4] in 1 shards"}, {"--ranks", "2"}});
  const CheckpointContents back = read_checkpoint(path, model, {});
  EXPECT_EQ(back.settings, (Settings{{"--model", model.spec()}, {"training data", "1 sample of [4] in 1 shard"},
                                     {"ranks", "2"}}));
  EXPECT_TRUE(back.targets.classification);
}

TEST(CheckpointFile, MismatchNamesTheFirstSettingThatMustNotChange) {
  const Settings saved{{"--model", "mlp"}, {"--batch", "8"}, {"--lr", "0.1"}, {"ranks", "2"}};
  EXPECT_EQ(checkpoint_mismatch(saved, {{"--model", "mlp"}, {"--batch", "8"}, {"--lr", "0.5"}, {"ranks", "2"}}, true),
            "");
  EXPECT_EQ(checkpoint_mismatch(saved, {{"--model", "cnn"}, {"--batch", "8"}, {"--lr", "0.1"}, {"ranks", "2"}}, true),
            "--model is 'mlp' in the checkpoint but 'cnn' in this run");
  // The ranks and --batch may change where the checkpoint records its global sample position (resume_place
  // continues there); one from before resumes only as it was laid out.
  const Settings four_ranks{{"--model", "mlp"}, {"--batch", "4"}, {"--lr", "0.1"}, {"ranks", "4"}};
  EXPECT_EQ(checkpoint_mismatch(saved, four_ranks, true), "");
  EXPECT_EQ(checkpoint_mismatch(saved, four_ranks, false),
            "--batch is '8' in the checkpoint but '4' in this run (the checkpoint records no global sample "
            "position, as before ringtrain recorded one: it resumes only on as many ranks, with the same --batch)");
  EXPECT_EQ(checkpoint_mismatch(saved, {{"--model", "mlp"}, {"--batch", "8"}, {"ranks", "4"}}, false).substr(0, 51),
            "ranks is '2' in the checkpoint but '4' in this run ");
  // The stages of a pipeline, and the servers, must not change (nor may the mode).
  EXPECT_EQ(checkpoint_mismatch({{"--pipeline-stages", "2"}}, {{"--pipeline-stages", "4"}}, true),
            "--pipeline-stages is '2' in the checkpoint but '4' in this run (a pipeline resumes on as many stages, "
            "split alike; the number of its replicas may change)");
  EXPECT_EQ(checkpoint_mismatch({{"--ps-servers", "1"}}, {{"--ps-servers", "2"}}, true),
            "--ps-servers is '1' in the checkpoint but '2' in this run (parameter servers resume on as many servers "
            "and workers)");
  // A setting that is there only when used (--augment, --freeze) is "(none)" where it is not.
  EXPECT_EQ(checkpoint_mismatch({{"--augment", "crop:4,flip"}}, {}, true),
            "--augment is 'crop:4,flip' in the checkpoint but '(none)' in this run");
  EXPECT_EQ(checkpoint_mismatch({}, {{"--augment", "flip"}}, true),
            "--augment is '(none)' in the checkpoint but 'flip' in this run");
}

TEST(CheckpointFile, RecordsTheGlobalSamplePositionAndTheLayout) {
  TempDir dir;
  Model model("flatten,linear(out)", {4}, 3, 7);
  const std::string path = dir.path("c.h5");
  TrainProgress at{40, 1, 1, 1, {}, 52, {3, 24}};
  write_checkpoint(path, model, TargetSpace{}, InputTransform{}, {}, at, {{"--model", model.spec()}});
  const TrainProgress back = read_checkpoint(path, model, {}).progress;
  EXPECT_EQ(back.pass_sample, 52);
  EXPECT_EQ(back.layout, (BatchLayout{3, 24}));
  EXPECT_EQ(back.pass_batch, 1);
  // Fewer samples in a global batch than replicas: damaged.
  at.layout = {3, 2};
  write_checkpoint(path, model, TargetSpace{}, InputTransform{}, {}, at, {{"--model", model.spec()}});
  expect_error([&] { read_checkpoint(path, model, {}); },
               "its progress does not add up (step 40, epoch 1, pass 1, pass_batch 1, pass_sample 52, replicas 3, "
               "global_batch 2,");
}

// Where a run continues: 200 samples, written by steps of 8 (25 an epoch), 6 steps into the second epoch.
TEST(ResumePlace, FollowsTheSamplesOntoAnotherGlobalBatch) {
  const TrainProgress at{31, 1, 1, 6, {}, 48, {2, 8}};
  // The same global batch on other ranks: the same place, step for step.
  const ResumePlace same = resume_place(at, {4, 8}, 25, 200, true, "c.h5");
  EXPECT_EQ((std::vector<int64_t>{same.pass, same.sample, same.epoch_steps, same.schedule_step}),
            (std::vector<int64_t>{1, 48, 6, 31}));
  // Steps of 12 (16 an epoch): 152 samples left are 12 steps, so 4 are counted as taken; the schedule is at the
  // 20th of its steps (16 + 4), the step count at 31.
  const ResumePlace wider = resume_place(at, {3, 12}, 16, 200, true, "c.h5");
  EXPECT_EQ((std::vector<int64_t>{wider.pass, wider.sample, wider.epoch_steps, wider.schedule_step}),
            (std::vector<int64_t>{1, 48, 4, 20}));
  // Steps of 5 (40 an epoch): 30 left.
  const ResumePlace narrower = resume_place(at, {1, 5}, 40, 200, true, "c.h5");
  EXPECT_EQ((std::vector<int64_t>{narrower.epoch_steps, narrower.schedule_step}), (std::vector<int64_t>{10, 50}));
  // At a pass's end (fewer than a global batch left) the epoch's steps are all taken: the run first ends it.
  const ResumePlace end = resume_place({50, 1, 1, 25, {}, 200, {2, 8}}, {3, 12}, 16, 200, true, "c.h5");
  EXPECT_EQ((std::vector<int64_t>{end.epoch_steps, end.schedule_step}), (std::vector<int64_t>{16, 32}));
  // Parameter servers (epochs counted in steps): the step count places the run.
  const ResumePlace servers = resume_place({31, 1, 1, 6}, {2, 8}, 25, 200, false, "c.h5");
  EXPECT_EQ((std::vector<int64_t>{servers.pass, servers.sample, servers.epoch_steps, servers.schedule_step}),
            (std::vector<int64_t>{1, 48, 6, 31}));
  // A checkpoint from before the position was recorded: its batch, in this run's global batch.
  const ResumePlace old = resume_place({31, 1, 1, 6}, {2, 8}, 25, 200, true, "c.h5");
  EXPECT_EQ((std::vector<int64_t>{old.sample, old.epoch_steps, old.schedule_step}), (std::vector<int64_t>{48, 6, 31}));
  // Places no run of this data has.
  expect_error([&] { resume_place({31, 1, 1, 6, {}, 248, {2, 8}}, {2, 8}, 25, 200, true, "c.h5"); },
               "'c.h5' does not fit this run: epoch 1, pass 1 at its sample 248, with 200 training samples");
  expect_error([&] { resume_place({31, 1, 2, 6, {}, 48, {2, 8}}, {2, 8}, 25, 200, true, "c.h5"); },
               "does not fit this run");
}

TEST(ResumePlace, ParameterServersKeepTheirWorkersAndGlobalBatch) {
  EXPECT_EQ(layout_refusal({2, 16}, {3, 24}, true),
            "it was written by 2 workers x --batch 8 and this run has 3 workers x --batch 8: parameter servers resume "
            "only on as many workers with the same --batch (their epochs and staleness count every worker's steps)");
  EXPECT_NE(layout_refusal({2, 16}, {2, 32}, true), "");
  EXPECT_EQ(layout_refusal({2, 16}, {2, 16}, true), "");
  EXPECT_EQ(layout_refusal({2, 16}, {3, 24}, false), "");  // data parallel, a pipeline's replicas
  EXPECT_EQ(layout_refusal({}, {3, 24}, true), "");          // not recorded: checkpoint_mismatch's
}

TEST(CheckpointDirectory, KeepsTheNewestAndPassesOverDamagedOnes) {
  TempDir dir;
  Model model("flatten,linear(out)", {2}, 2, 1);
  const CheckpointDir checkpoints(dir.path(), 2);
  for (int64_t step : {5, 20, 100})
    write_checkpoint(checkpoints.path(step), model, TargetSpace{}, InputTransform{}, {}, {step, 0, 0, step},
                     {{"--model", model.spec()}});
  std::ofstream(dir.path("notes.txt")) << "not a checkpoint";
  EXPECT_EQ(checkpoints.list(), (std::vector<std::string>{checkpoints.path(100), checkpoints.path(20),
                                                          checkpoints.path(5)}));
  checkpoints.prune(100);
  EXPECT_EQ(checkpoints.list(), (std::vector<std::string>{checkpoints.path(100), checkpoints.path(20)}));
  EXPECT_TRUE(std::filesystem::exists(dir.path("notes.txt")));
  // One newer than the one just written (a damaged one --resume auto passed over) is not counted and is not
  // removed, and the run's own newest checkpoint stays.
  write_checkpoint(checkpoints.path(50), model, TargetSpace{}, InputTransform{}, {}, {50, 0, 0, 50},
                   {{"--model", model.spec()}});
  checkpoints.prune(50);
  EXPECT_EQ(checkpoints.list(), (std::vector<std::string>{checkpoints.path(100), checkpoints.path(50),
                                                          checkpoints.path(20)}));
  EXPECT_EQ(checkpoints.newest_after(50), checkpoints.path(100));
  EXPECT_EQ(checkpoints.newest_after(100), "");

  std::ofstream(checkpoints.path(200)) << "half a file";
  std::ostringstream log;
  EXPECT_EQ(checkpoints.newest_valid(log), checkpoints.path(100));
  EXPECT_NE(log.str().find("skipping checkpoint " + checkpoints.path(200)), std::string::npos) << log.str();
  EXPECT_EQ(CheckpointDir(dir.path("none"), 3).newest_valid(log), "");
}

// Flips the sign of the first of `t`'s values where they lie in the file, as a bad disk or a hostile hand would.
void flip_sign_on_disk(const std::string& path, const Tensor& t) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  const std::string values(reinterpret_cast<const char*>(t.data()), sizeof(float) * 8);
  const size_t at = bytes.find(values);
  ASSERT_NE(at, std::string::npos) << "the tensor's bytes are not in " << path;
  file.seekp(static_cast<std::streamoff>(at + 3));  // little-endian: the sign bit is in the 4th byte
  file.put(static_cast<char>(bytes[at + 3] ^ 0x80));
}

// Checkpoints and model files are sealed with a checksum of the whole file: changed data is named, never
// loaded, and --resume auto passes over such a checkpoint to the previous good one.
TEST(CheckpointFile, ChangedDataIsFoundAndTheNewestGoodOneIsTaken) {
  TempDir dir;
  Model model("flatten,linear(16),relu,linear(out)", {4}, 3, 7);
  const CheckpointDir checkpoints(dir.path(), 3);
  for (int64_t step : {10, 20})
    write_checkpoint(checkpoints.path(step), model, TargetSpace{}, InputTransform{}, {}, {step, 0, 0, step},
                     {{"--model", model.spec()}});
  flip_sign_on_disk(checkpoints.path(20), model.params()[0]->value);
  Model loaded(model.spec(), {4}, 3, 1);
  const std::string changed = "' is damaged: its contents do not match the checksum written with it";
  expect_error([&] { read_checkpoint(checkpoints.path(20), loaded, {}); }, checkpoints.path(20) + changed);
  std::ostringstream log;
  EXPECT_EQ(checkpoints.newest_valid(log), checkpoints.path(10));
  EXPECT_NE(log.str().find("skipping checkpoint " + checkpoints.path(20) + ": '" + checkpoints.path(20) + changed),
            std::string::npos)
      << log.str();

  save_model(dir.path("model.h5"), model, TargetSpace{}, InputTransform{});
  flip_sign_on_disk(dir.path("model.h5"), model.params()[2]->value);
  expect_error([&] { load_model(dir.path("model.h5")); }, dir.path("model.h5") + changed);
}

// Rewrites `bytes` bytes of `path` at `at` (from the end when negative) with `with`, or cuts the file there.
void damage(const std::string& path, std::streamoff at, const std::string& with) {
  const auto size = static_cast<std::streamoff>(std::filesystem::file_size(path));
  if (at < 0) at += size;
  if (with.empty()) return std::filesystem::resize_file(path, static_cast<uintmax_t>(at));
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  file.seekp(at);
  file.write(with.data(), static_cast<std::streamsize>(with.size()));
}

// The HDF5 library trusts a file's metadata (object headers, attributes, the string heap), and one changed
// byte there can crash or hang it: the seal is checked before the library reads anything. Each kind of damage
// is one error naming the file.
TEST(CheckpointFile, DamageOutsideTheDataIsFoundBeforeHdf5ReadsTheFile) {
  TempDir dir;
  Model model("flatten,linear(4),relu,linear(out)", {4}, 3, 7);
  const std::string path = dir.path("step-000000000010.h5");
  const std::pair<std::streamoff, std::string> damages[] = {
      {600, "\xff\xff"},  // the superblock and root object header
      {-40, "X"},         // the end of the file: the string heap of the settings
      {-100, ""},         // truncated
      {3, "?"},           // the seal itself
  };
  const std::string expected[] = {"contents do not match", "contents do not match", "(truncated)",
                                  "neither an HDF5 signature nor a ringtrain seal"};
  for (size_t i = 0; i < std::size(damages); ++i) {
    write_checkpoint(path, model, TargetSpace{}, InputTransform{}, {}, {10, 0, 0, 10},
                     {{"--model", model.spec()}, {"--lr", "0.1"}});
    ASSERT_NO_THROW(check_checkpoint(path));
    damage(path, damages[i].first, damages[i].second);
    expect_error([&] { check_checkpoint(path); }, "'" + path + "' is damaged: ");
    expect_error([&] { check_checkpoint(path); }, expected[i]);
    expect_error([&] { load_model(path); }, "'" + path + "' is damaged: ");
  }
}

// Sealed or not, the attributes that place the run and shape the model are checked before they are used.
TEST(CheckpointFile, ProgressAndShapesOutOfRangeAreRefused) {
  TempDir dir;
  Model model("flatten,linear(out)", {4}, 3, 7);
  const std::string path = dir.path("step.h5");
  for (const TrainProgress& bad : {TrainProgress{10, 0, 0, -7}, TrainProgress{-1, 0, 0, 0}, TrainProgress{10, 11, 0, 0}}) {
    write_checkpoint(path, model, TargetSpace{}, InputTransform{}, {}, bad, {{"--model", model.spec()}});
    Model loaded(model.spec(), {4}, 3, 1);
    expect_error([&] { read_checkpoint(path, loaded, {}); }, "is damaged: its progress does not add up");
  }
  expect_error([] { resume_place({30, 1, 1, 5}, {1, 8}, 10, 80, false, "c.h5"); },
               "'c.h5' does not fit this run: step 30, epoch 1");
  expect_error([] { resume_place({12, 1, 1, 11}, {1, 8}, 10, 80, false, "c.h5"); }, "does not fit this run");
  EXPECT_NO_THROW(resume_place({12, 1, 1, 2}, {1, 8}, 10, 80, false, "c.h5"));

  write_checkpoint(path, model, TargetSpace{}, InputTransform{}, {}, {10, 0, 0, 10}, {{"--model", model.spec()}});
  Model wider(model.spec(), {5}, 3, 1);  // the same spec for another input
  expect_error([&] { read_checkpoint(path, wider, {}); }, "holds a model for input [4] and 3 outputs, not this run's [5]");
}

// An uninterrupted run's and a resumed run's final weights, bit for bit.
void expect_same_weights(Trainer& whole, Trainer& resumed) {
  for (size_t i = 0; i < whole.model().params().size(); ++i)
    EXPECT_TRUE(same_bits(whole.model().params()[i]->value, resumed.model().params()[i]->value)) << i;
}

TrainConfig small_run(const std::string& data_dir) {
  return test::train_config(data_dir, {.model = "flatten,linear(8),relu,dropout(0.2),linear(out)",
                                       .batch = 8,
                                       .epochs = 2,
                                       .lr = 0.01f,
                                       .optimizer = OptimizerKind::adam});
}

void write_data(const TempDir& dir) {
  test::write_classification_shard(dir.path("train-00000.h5"), 200, {1, 3, 3}, 3, 1);
  test::write_classification_shard(dir.path("test-00000.h5"), 40, {1, 3, 3}, 3, 2);
}

TEST(Resume, ACutRunContinuedEndsBitwiseLikeAnUninterruptedOne) {
  TempDir dir;
  write_data(dir);
  std::ostringstream log;
  Trainer whole(small_run(dir.path()), test::world());
  whole.run(log);

  TrainConfig cut = small_run(dir.path());
  cut.checkpoint_dir = dir.path("checkpoints");
  cut.checkpoint_every = 10;
  cut.max_steps = 31;
  Trainer(cut, test::world()).run(log);
  TrainConfig rest = small_run(dir.path());
  rest.checkpoint_dir = cut.checkpoint_dir;
  rest.resume = {ResumeFrom::newest, ""};
  Trainer resumed(rest, test::world());
  const TrainResult result = resumed.run(log);
  EXPECT_NE(log.str().find("resuming from " + CheckpointDir(cut.checkpoint_dir, 3).path(31)), std::string::npos)
      << log.str();
  EXPECT_EQ(result.steps, 50);  // 2 epochs of 25 steps, 19 of them in this run
  expect_same_weights(whole, resumed);
}

// Ends the job at the boundary after step `at`, as a stop request would.
class InterruptAt final : public Callback {
 public:
  explicit InterruptAt(int64_t at) : at_(at) {}
  void on_step_begin(TrainState& state) override { state.interrupted |= state.step == at_; }

 private:
  int64_t at_;
};

// A stop at the boundary after an epoch's last step, before that epoch has ended: the resumed run ends the
// epoch (no pass read again), then goes on with its periodic checkpoints, bitwise like an uninterrupted run.
TEST(Resume, AStopAfterAnEpochsLastStepResumesAtThatEpochsEnd) {
  TempDir dir;
  write_data(dir);
  std::ostringstream log;
  Trainer whole(small_run(dir.path()), test::world());
  whole.run(log);

  TrainConfig cut = small_run(dir.path());
  cut.checkpoint_dir = dir.path("checkpoints");
  {
    Trainer first(cut, test::world());  // holds the directory's lock while it lives
    first.add_callback(std::make_unique<InterruptAt>(25));  // 25 steps an epoch
    EXPECT_TRUE(first.run(log).stopped_early);
  }
  TrainConfig rest = cut;
  rest.checkpoint_every = 10;
  rest.resume = {ResumeFrom::newest, ""};
  Trainer resumed(rest, test::world());
  std::ostringstream resumed_log;
  const TrainResult result = resumed.run(resumed_log);
  EXPECT_EQ(result.steps, 50);
  ASSERT_EQ(result.epochs.size(), 2u);
  EXPECT_EQ(result.epochs[0].step, 25);
  EXPECT_NE(resumed_log.str().find("checkpoint " + CheckpointDir(cut.checkpoint_dir, 3).path(30)), std::string::npos)
      << resumed_log.str();
  expect_same_weights(whole, resumed);
}

// Two jobs on one checkpoint directory would overwrite and prune each other's checkpoints: the second is
// refused before it trains, and the directory is free again once the first is gone.
TEST(CheckpointLock, ASecondJobOnTheDirectoryIsRefused) {
  TempDir dir;
  write_data(dir);
  TrainConfig c = small_run(dir.path());
  c.checkpoint_dir = dir.path("checkpoints");
  {
    Trainer first(c, test::world());
    try {
      Trainer second(c, test::world());
      FAIL() << "a second job took the same checkpoint directory";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("the checkpoint directory '" + c.checkpoint_dir +
                                           "' is in use by another job"),
                std::string::npos)
          << e.what();
    }
  }
  EXPECT_NO_THROW(Trainer(c, test::world()));
}

// A run that does not continue the checkpoints in its directory would prune them, and one that continues an
// older one would mix its checkpoints with the newer ones there: both are refused before training.
TEST(CheckpointDirectory, ARunNeverPrunesCheckpointsItDoesNotContinue) {
  TempDir dir;
  write_data(dir);
  TrainConfig first = small_run(dir.path());
  first.checkpoint_dir = dir.path("checkpoints");
  first.checkpoint_every = 10;
  first.max_steps = 20;
  std::ostringstream log;
  Trainer(first, test::world()).run(log);
  const CheckpointDir checkpoints(first.checkpoint_dir, 3);
  const std::vector<std::string> before = checkpoints.list();
  ASSERT_EQ(before.size(), 2u);

  expect_error([&] { Trainer(first, test::world()); },
               "--checkpoint-dir '" + first.checkpoint_dir + "' already holds checkpoints (" + checkpoints.path(20) +
                   "): add --resume auto");
  TrainConfig rewind = first;
  rewind.resume = {ResumeFrom::file, checkpoints.path(10)};  // in the directory: an input, yet allowed
  expect_error([&] { Trainer(rewind, test::world()).run(log); },
               "holds " + checkpoints.path(20) + ", newer than '" + checkpoints.path(10) + "'");
  EXPECT_EQ(checkpoints.list(), before);

  std::filesystem::remove(checkpoints.path(20));
  rewind.max_steps = 30;
  EXPECT_EQ(Trainer(rewind, test::world()).run(log).steps, 30);
  EXPECT_EQ(checkpoints.list(), (std::vector<std::string>{checkpoints.path(30), checkpoints.path(20),
                                                          checkpoints.path(10)}));
}

TEST(Resume, AutoWithNoCheckpointStartsAfresh) {
  TempDir dir;
  write_data(dir);
  TrainConfig c = small_run(dir.path());
  c.checkpoint_dir = dir.path("empty");
  c.resume = {ResumeFrom::newest, ""};
  c.epochs = 1;
  std::ostringstream log;
  EXPECT_EQ(Trainer(c, test::world()).run(log).steps, 25);
  EXPECT_NE(log.str().find("to resume from: starting afresh"), std::string::npos) << log.str();
}

// A resumed run: a checkpoint at --steps trains nothing; another --steps that moves the schedule says so; the
// "trained" line counts this run's steps.
TEST(Resume, SaysWhatItTrainsAndWhenTheScheduleMoved) {
  TempDir dir;
  write_data(dir);
  TrainConfig c = small_run(dir.path());
  c.checkpoint_dir = dir.path("checkpoints");
  c.lr_schedule = LrScheduleKind::cosine;
  c.max_steps = 10;
  std::ostringstream first;
  EXPECT_EQ(Trainer(c, test::world()).run(first).steps, 10);
  c.resume = {ResumeFrom::newest, ""};
  std::ostringstream again;
  EXPECT_EQ(Trainer(c, test::world()).run(again).steps, 10);
  EXPECT_NE(again.str().find("the checkpoint is at step 10, --steps 10: nothing to train"), std::string::npos)
      << again.str();
  c.max_steps = 15;
  std::ostringstream more;
  EXPECT_EQ(Trainer(c, test::world()).run(more).steps, 15);
  EXPECT_NE(more.str().find("the learning-rate schedule now spans 15 steps; the checkpoint's run planned 10"),
            std::string::npos)
      << more.str();
  EXPECT_NE(more.str().find("trained 5 steps (steps 11 to 15)"), std::string::npos) << more.str();
}

// Another global batch (here --batch 8, then 12, on one rank; other rank counts alike): the epoch goes on from
// the sample the checkpoint reached, neither reading one again nor passing one over, and the schedule from
// where those samples put it; a checkpoint of that run continues it bitwise.
TEST(Resume, AnotherGlobalBatchGoesOnFromTheSamplePosition) {
  TempDir dir;
  write_data(dir);  // 200 samples: 25 steps of 8 an epoch, 16 of 12
  TrainConfig c = small_run(dir.path());
  c.epochs = 3;
  c.lr_schedule = LrScheduleKind::cosine;
  c.checkpoint_dir = dir.path("cut");
  c.max_steps = 31;  // 6 steps (48 samples) into the second epoch
  std::ostringstream log;
  Trainer(c, test::world()).run(log);
  std::filesystem::create_directories(dir.path("whole"));
  std::filesystem::copy_file(CheckpointDir(c.checkpoint_dir, 3).path(31), CheckpointDir(dir.path("whole"), 3).path(31));

  TrainConfig wider = c;
  wider.batch = 12;
  wider.max_steps = 0;
  wider.checkpoint_dir = dir.path("whole");
  wider.resume = {ResumeFrom::newest, ""};
  std::ostringstream wider_log;
  Trainer whole(wider, test::world());
  const TrainResult result = whole.run(wider_log);
  EXPECT_NE(wider_log.str().find("the global batch changed from 8 (1 replica x --batch 8) to 12 (1 replica x --batch "
                                 "12): the epoch goes on from its sample 48 of 200, and the learning-rate schedule "
                                 "from its step 20 of 48, where those samples put it"),
            std::string::npos)
      << wider_log.str();
  // The second epoch's 152 samples left are 12 steps of 12; then the third epoch's 16.
  EXPECT_EQ(result.steps, 31 + 12 + 16);
  ASSERT_EQ(result.epochs.size(), 2u);
  EXPECT_EQ(result.epochs[0].step, 43);
  EXPECT_EQ(result.epochs[1].step, 59);
  LrSchedule schedule;
  schedule.kind = LrScheduleKind::cosine;
  schedule.base_lr = c.lr;
  schedule.min_lr = c.lr_min;
  schedule.total_steps = 48;
  EXPECT_FLOAT_EQ(static_cast<float>(result.epochs[0].lr), schedule.at(31));  // the second epoch's last step
  EXPECT_FLOAT_EQ(static_cast<float>(result.epochs[1].lr), schedule.at(47));

  // Stopped again, at step 45 (by a stop, not --steps, which would fit the schedule to it), and resumed with
  // the same --batch: bitwise the run above.
  wider.checkpoint_dir = c.checkpoint_dir;
  {
    Trainer stopped(wider, test::world());
    stopped.add_callback(std::make_unique<InterruptAt>(45));
    EXPECT_TRUE(stopped.run(log).stopped_early);
  }
  Trainer resumed(wider, test::world());
  EXPECT_EQ(resumed.run(log).steps, 59);
  expect_same_weights(whole, resumed);
}

TEST(Resume, AStopRequestCheckpointsWithinAStepAndEndsEarly) {
  TempDir dir;
  write_data(dir);
  TrainConfig c = small_run(dir.path());
  c.checkpoint_dir = dir.path("checkpoints");
  c.save_model = dir.path("final.h5");
  request_stop();
  std::ostringstream log;
  const TrainResult result = Trainer(c, test::world()).run(log);
  clear_stop_request();
  // The ranks' vote on it completes during a step, so the stop comes at the boundary after the first.
  EXPECT_TRUE(result.stopped_early);
  EXPECT_EQ(result.steps, 1);
  EXPECT_TRUE(std::filesystem::exists(CheckpointDir(c.checkpoint_dir, 3).path(1)));
  EXPECT_FALSE(std::filesystem::exists(c.save_model)) << "a stopped run saves no final model";
  EXPECT_NE(log.str().find("stopped by a stop request after step 1; --resume auto continues"), std::string::npos)
      << log.str();
}

TEST(NonFinite, AGradientThatOverflowsStopsNamingTheStepAndParameter) {
  TempDir dir;
  write_data(dir);
  TrainConfig c = small_run(dir.path());
  c.optimizer.kind = OptimizerKind::sgd;
  c.lr = 1e30f;  // the first update overflows the weights; the next step's gradients are infinite or NaN
  std::ostringstream log;
  try {
    Trainer(c, test::world()).run(log);
    FAIL() << "trained on through non-finite gradients";
  } catch (const CollectiveError& e) {
    EXPECT_NE(std::string(e.what()).find("non-finite gradient (NaN or infinity) in linear"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(" at step "), std::string::npos) << e.what();
  }
  c.parallel.skip_nonfinite = true;
  c.epochs = 1;
  const TrainResult result = Trainer(c, test::world()).run(log);
  EXPECT_EQ(result.steps, 25);
  EXPECT_NE(log.str().find("steps skipped so far for non-finite gradients"), std::string::npos) << log.str();
}

std::string stop_message(NonfiniteGuard& guard, int64_t step) {
  try {
    guard.allow_update(step);
  } catch (const CollectiveError& e) {
    return e.what();
  }
  return "";
}

TEST(NonFinite, TheGuardNamesTheFirstBadGradientAndItsStep) {
  Model model("flatten,linear(3),relu,linear(out)", {2}, 2, 1);
  model.zero_grad();
  NonfiniteGuard guard(Device::cpu, false, NonfiniteGuard::Verdict::every_rank, model.named_params(), nullptr,
                       nullptr);
  EXPECT_TRUE(guard.allow_update(1));
  model.params()[3]->grad[1] = std::numeric_limits<float>::infinity();
  model.params()[1]->grad[0] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_NE(stop_message(guard, 7).find("in linear1/bias at step 7"), std::string::npos);
  EXPECT_EQ(guard.skip_flag(), nullptr);  // the host optimizer is simply not called
}

TEST(NonFinite, SkippingCountsTheBadStepsAndLetsTheGoodOnesThrough) {
  Model model("flatten,linear(3),relu,linear(out)", {2}, 2, 1);
  model.zero_grad();
  NonfiniteGuard guard(Device::cpu, true, NonfiniteGuard::Verdict::this_rank, model.named_params(), nullptr, nullptr);
  model.params()[0]->grad[2] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(guard.allow_update(1));
  EXPECT_FALSE(guard.allow_update(2));
  model.zero_grad();
  EXPECT_TRUE(guard.allow_update(3));
  guard.settle();  // nothing is left to act on: the host decided at once
  EXPECT_EQ(guard.skipped(), 2);
}

// Only the parameters given are looked at (a pipeline stage's), and the check reports the first bad one.
TEST(NonFinite, TheCheckLooksAtTheParametersItIsGiven) {
  Model model("flatten,linear(3),relu,linear(out)", {2}, 2, 1);
  model.zero_grad();
  model.params()[1]->grad[0] = std::numeric_limits<float>::infinity();
  auto check = make_gradient_check(Device::cpu, false);
  check->look(model.params({2, 4}));
  EXPECT_EQ(*check->verdict(), 0.0f);
  check->look(model.params());
  EXPECT_EQ(*check->verdict(), 1.0f);
  check->record(12);
  const GradientCheck::Findings found = check->take_findings();
  EXPECT_EQ(found.bad_steps, 1);
  EXPECT_EQ(found.first_step, 12);
  EXPECT_EQ(found.first_param, 1);
  EXPECT_EQ(check->take_findings().bad_steps, 0);
}

// A regression model's file carries its targets' standardisation, checked like a shard's.
TEST(ModelFile, RegressionTargetStandardisationRoundTripsAndIsChecked) {
  TempDir dir;
  Model model("flatten,linear(out)", {4}, 2, 7);
  save_model(dir.path("r.h5"), model, TargetSpace{false, 0.25f, -3.0f}, InputTransform{});
  const LoadedModel back = load_model(dir.path("r.h5"));
  EXPECT_FALSE(back.targets.classification);
  EXPECT_EQ(back.targets.scale, 0.25f);
  EXPECT_EQ(back.targets.shift, -3.0f);
  save_model(dir.path("zero.h5"), model, TargetSpace{false, 0.0f, 0.0f}, InputTransform{});
  expect_error([&] { load_model(dir.path("zero.h5")); },
               "attribute y_scale must be one finite, non-zero number (every target shares it) in '" +
                   dir.path("zero.h5") + "'");
}

}  // namespace
}  // namespace ringtrain
