// Run directories (train/run_dir.hpp): the settings.ini that --config repeats bitwise, run.json, the log, and
// a finished run kept from the next.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ringtrain/train/model_file.hpp"
#include "ringtrain/train/run_dir.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

using test::read_text;
using test::run_cli;
using test::TempDir;

// A metrics CSV without its columns of time (images_per_s, epoch_seconds, elapsed_seconds): the scores.
std::string scores(const std::string& csv) {
  std::istringstream lines(csv);
  std::string text;
  for (std::string line; std::getline(lines, line);) {
    size_t end = 0;
    for (int column = 0; column < 7; ++column) end = line.find(',', end) + 1;
    text += line.substr(0, end) + "\n";
  }
  return text;
}

class RunDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* split : {"train", "val", "test"})
      test::write_classification_shard(dir_.path(std::string(split) + "-00000.h5"), 64, {1, 4, 4}, 3, split[0]);
  }
  std::string train(const std::string& flags, std::string* out = nullptr, std::string* err = nullptr) {
    return std::to_string(run_cli("train --data " + dir_.path() + " --model \"flatten,linear(8),relu,linear(out)\"" +
                                      " --batch 8 " + flags, out, err));
  }
  TempDir dir_;
};

// The settings.ini of a run, given back to --config, is the same run: the same settings.ini, metrics and
// weights to the bit.
TEST_F(RunDirTest, ItsSettingsRepeatTheRunBitwise) {
  std::string out, err;
  ASSERT_EQ(train("--epochs 2 --lr 0.07 --optimizer adam --nesterov --momentum 0.5 --seed 3 --run-dir " +
                      dir_.path("first"), &out, &err), "0") << err;
  const std::string settings = read_text(dir_.path("first/settings.ini"));
  EXPECT_NE(settings.find("\nlr = 0.07\n"), std::string::npos) << settings;  // the float as given, not 0.0700000003
  EXPECT_NE(settings.find("\nnesterov = true\n"), std::string::npos) << settings;
  EXPECT_NE(settings.find("\nprefetch = 4\n"), std::string::npos) << "defaults are settings too: " << settings;
  EXPECT_EQ(settings.find("\nrun-dir = "), std::string::npos) << settings;
  EXPECT_EQ(read_text(dir_.path("first/log.txt")), out) << "log.txt is what the console showed";
  ASSERT_EQ(run_cli("train --config " + dir_.path("first/settings.ini") + " --run-dir " + dir_.path("again"), nullptr,
                    &err), 0) << err;
  EXPECT_EQ(read_text(dir_.path("again/settings.ini")), settings);
  EXPECT_EQ(scores(read_text(dir_.path("first/metrics.csv"))), scores(read_text(dir_.path("again/metrics.csv"))));
  LoadedModel a = load_model(dir_.path("first/model.h5")), b = load_model(dir_.path("again/model.h5"));
  const std::vector<Param*> pa = a.model->params(), pb = b.model->params();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i)
    EXPECT_EQ(std::memcmp(pa[i]->value.data(), pb[i]->value.data(), pa[i]->value.numel() * sizeof(float)), 0) << i;
}

TEST_F(RunDirTest, RunJsonRecordsTheRunAndAFinishedRunIsKept) {
  std::string err;
  ASSERT_EQ(train("--epochs 1 --run-dir " + dir_.path("run"), nullptr, &err), "0") << err;
  const std::string json = read_text(dir_.path("run/run.json"));
  for (const char* field : {"\"status\": \"finished\"", "\"exit_code\": 0", "\"world_size\": 1", "\"hosts\": [{\"host\": ",
                            "\"ringtrain_version\": \"", "\"git_commit\": \"", "\"started\": \"", "\"ended\": \"",
                            "\"steps\": 8", " train --data "})
    EXPECT_NE(json.find(field), std::string::npos) << field << " in " << json;
  const RunRecord record = read_run_record(dir_.path("run"));
  EXPECT_EQ(record.status, RunStatus::finished);
  const std::string before = read_text(dir_.path("run/metrics.csv"));
  ASSERT_EQ(train("--epochs 1 --run-dir " + dir_.path("run"), nullptr, &err), "1");
  EXPECT_NE(err.find("--run-dir '" + dir_.path("run") + "' holds a run that finished at " + record.ended +
                     ": give another directory, or add --resume auto"), std::string::npos) << err;
  EXPECT_EQ(read_text(dir_.path("run/metrics.csv")), before);
  EXPECT_EQ(read_run_record(dir_.path("run")).status, RunStatus::finished);
  // --resume continues it, with checkpoints in the run directory.
  ASSERT_EQ(train("--epochs 2 --resume auto --run-dir " + dir_.path("run"), nullptr, &err), "0") << err;
  EXPECT_TRUE(std::filesystem::exists(dir_.path("run/checkpoints")));
}

TEST_F(RunDirTest, AFailedRunSaysWhyAndMayBeRunAgain) {
  std::string err;
  ASSERT_EQ(train("--epochs 1 --lr-min 1 --run-dir " + dir_.path("run"), nullptr, &err), "1");
  const RunRecord failed = read_run_record(dir_.path("run"));
  EXPECT_EQ(failed.status, RunStatus::failed);
  EXPECT_EQ(failed.error, "--lr-min 1 must be below --lr 0.05");
  EXPECT_NE(read_text(dir_.path("run/run.json")).find("\"exit_code\": 1"), std::string::npos);
  ASSERT_EQ(train("--epochs 1 --run-dir " + dir_.path("run"), nullptr, &err), "0") << err;
  EXPECT_EQ(read_run_record(dir_.path("run")).status, RunStatus::finished);
}

// Outputs named by their flags go where they say; "%j" in --run-dir is the job id.
TEST_F(RunDirTest, ExplicitOutputsWinAndJobIdsExpand) {
  std::string err;
  ASSERT_EQ(train("--epochs 1 --save " + dir_.path("mine.h5") + " --checkpoint-every 4 --run-dir " +
                      dir_.path("run-%j"), nullptr, &err), "0") << err;
  std::string run;
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path()))
    if (entry.path().filename().string().starts_with("run-local-")) run = entry.path().string();
  ASSERT_FALSE(run.empty()) << "no run-<job id> directory";
  EXPECT_TRUE(std::filesystem::exists(dir_.path("mine.h5")));
  EXPECT_FALSE(std::filesystem::exists(run + "/model.h5"));
  EXPECT_TRUE(std::filesystem::exists(run + "/metrics.csv"));
  EXPECT_TRUE(std::filesystem::exists(run + "/checkpoints/step-000000000004.h5"));
}

// log.txt gets each line as the console shows it when the line ends: a line redrawn with '\r' (a progress
// bar) once, as last drawn; the console gets every byte.
TEST(RunDirLog, TheFileHoldsEachLineAsLastDrawn) {
  TempDir dir;
  TrainConfig config;
  config.run_dir.dir = dir.path("run");
  config.run_dir.settings = "lr = 0.1\n";
  std::ostringstream console;
  {
    RunDir run_dir(config, test::world(), "job");
    std::ostream& log = run_dir.log(console);
    log << "model mlp\n" << "step 1/3\rstep 2/3\rstep 3/3\n" << std::flush << "end";
  }
  EXPECT_EQ(console.str(), "model mlp\nstep 1/3\rstep 2/3\rstep 3/3\nend");
  EXPECT_EQ(read_text(dir.path("run/log.txt")), "model mlp\nstep 3/3\nend");
  EXPECT_EQ(read_text(dir.path("run/settings.ini")), "lr = 0.1\n");
  EXPECT_EQ(read_run_record(dir.path("run")).status, RunStatus::running);  // neither finish() nor fail()
}

TEST(RunRecordTest, AbsentOrForeignRecordsReadAsAbsent) {
  TempDir dir;
  EXPECT_EQ(read_run_record(dir.path()).status, RunStatus::absent);
  std::ofstream(dir.path("run.json")) << "{\"status\": \"whatever\"}";
  EXPECT_EQ(read_run_record(dir.path()).status, RunStatus::absent);
  std::ofstream(dir.path("run.json")) << "{\n  \"status\": \"failed\",\n  \"error\": \"a \\\"quoted\\\" \\u001b word\"\n}\n";
  const RunRecord r = read_run_record(dir.path());
  EXPECT_EQ(r.status, RunStatus::failed);
  EXPECT_EQ(r.error, "a \"quoted\" \x1b word");
  EXPECT_EQ(describe(r), "failed: a \"quoted\" \x1b word");
}

}  // namespace
}  // namespace ringtrain
