// End-to-end through the binary: every bad input is one line on stderr naming the problem and a non-zero
// exit; a good run prints its epochs and writes what it was asked to.
#include <gtest/gtest.h>

#include <fstream>

#include "test_util.hpp"

namespace ringtrain {
namespace {

using test::run_cli;
using test::TempDir;

struct Outcome {
  int code;
  std::string out, err;
};

Outcome cli(const std::string& args) {
  Outcome o;
  o.code = run_cli(args, &o.out, &o.err);
  return o;
}

void expect_one_line_error(const Outcome& o, const std::string& needle) {
  EXPECT_NE(o.code, 0);
  EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
  EXPECT_EQ(o.err.rfind("ringtrain: error: ", 0), 0u) << o.err;
  EXPECT_NE(o.err.find(needle), std::string::npos) << o.err;
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* split : {"train", "val", "test"})
      test::write_classification_shard(dir_.path(std::string(split) + "-00000.h5"), 64, {1, 4, 4}, 3, split[0]);
  }
  TempDir dir_;
};

TEST_F(Cli, TrainsSavesAndEvaluates) {
  const Outcome t = cli("train --data " + dir_.path() + " --model \"conv(2,3,pad=1),relu,maxpool(2),flatten,linear(out)\""
                        " --epochs 2 --batch 8 --save " + dir_.path("m.h5") + " --metrics " + dir_.path("m.csv"));
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_NE(t.out.find("epoch 2/2"), std::string::npos);
  EXPECT_NE(t.out.find("test  test_loss"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(dir_.path("m.h5")));
  EXPECT_TRUE(std::filesystem::exists(dir_.path("m.csv")));
  const Outcome e = cli("eval --model-file " + dir_.path("m.h5") + " --data " + dir_.path());
  ASSERT_EQ(e.code, 0) << e.err;
  EXPECT_NE(e.out.find("test: loss"), std::string::npos);
}

TEST_F(Cli, ConfigFileSetsOptionsAndFlagsOverrideIt) {
  std::ofstream(dir_.path("run.ini")) << "model = flatten,linear(out)\nepochs = 3\nbatch = 8\noptimizer = adam\nlr = 0.01\n";
  const Outcome o = cli("train --config " + dir_.path("run.ini") + " --data " + dir_.path() + " --epochs 1");
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("epoch 1/1"), std::string::npos);
  EXPECT_NE(o.out.find("flatten,linear(3)"), std::string::npos);
}

TEST_F(Cli, HelpForEverySubcommand) {
  for (const char* cmd : {"prep", "train", "eval"}) {
    const Outcome o = cli(std::string(cmd) + " --help");
    EXPECT_EQ(o.code, 0);
    EXPECT_NE(o.out.find("usage: ringtrain"), std::string::npos);
  }
}

TEST_F(Cli, BadInputs) {
  expect_one_line_error(cli("frobnicate"), "unknown command 'frobnicate'");
  expect_one_line_error(cli("train --data " + dir_.path() + " --bogus 3"), "unrecognised option '--bogus'");
  expect_one_line_error(cli("train --data " + dir_.path() + " --batch many"), "batch");
  expect_one_line_error(cli("train --config " + dir_.path("none.ini")), "cannot read config file");
  expect_one_line_error(cli("train --data " + dir_.path() + " --model \"conv(32,5\""), "missing ')'");
  expect_one_line_error(cli("train --data " + dir_.path() + " --model \"flatten,linear(7)\""),
                        "produces 7 outputs per sample but the data needs 3");
  expect_one_line_error(cli("train --train " + dir_.path("missing.h5")), "no such file");
  std::ofstream(dir_.path("junk.h5")) << "junk";
  expect_one_line_error(cli("train --train " + dir_.path("junk.h5")), "is not an HDF5 file");
  expect_one_line_error(cli("train --data " + dir_.path() + " --optimizer lion"), "--optimizer must be sgd, adam or rmsprop, got 'lion'");
  expect_one_line_error(cli("train --data " + dir_.path() + " --batch 500"), "fewer than one batch of 500");
  expect_one_line_error(cli("eval --data " + dir_.path()), "model-file");
  expect_one_line_error(cli("eval --model-file " + dir_.path("train-00000.h5") + " --data " + dir_.path()),
                        "not a ringtrain model file");
  expect_one_line_error(cli("train --data " + dir_.path() + " --pipeline-stages 2"),
                        "a world of 1 rank is not divisible by --pipeline-stages 2");
  expect_one_line_error(cli("train --data " + dir_.path() + " --micro-batches 0"), "--micro-batches must be at least 1");
  expect_one_line_error(cli("train --data " + dir_.path() + " --split 2,x"), "--split must be layer indices");
  expect_one_line_error(cli("train --data " + dir_.path() + " --schedule zb"), "--schedule must be gpipe or 1f1b");
  expect_one_line_error(cli("train --data " + dir_.path() + " --mode hogwild"), "--mode must be sync or ps, got 'hogwild'");
  expect_one_line_error(cli("train --data " + dir_.path() + " --mode ps"), "--ps-servers 1 leaves no worker among 1 rank");
  expect_one_line_error(cli("train --data " + dir_.path() + " --mode ps --staleness -2"), "--staleness must be at least 0");
  expect_one_line_error(cli("prep --input /nonexistent --out " + dir_.path("p")), "no train-images-idx3-ubyte");
  expect_one_line_error(cli("prep --format csv --input " + dir_.path("x.csv") + " --out " + dir_.path("p") +
                            " --target y"), "cannot open CSV file");
}

TEST_F(Cli, EvalRejectsDataOfAnotherShape) {
  ASSERT_EQ(cli("train --data " + dir_.path() + " --model \"flatten,linear(out)\" --epochs 1 --batch 8 --save " +
                dir_.path("m.h5")).code, 0);
  TempDir other;
  test::write_classification_shard(other.path("test-00000.h5"), 8, {5}, 3, 1);
  expect_one_line_error(cli("eval --model-file " + dir_.path("m.h5") + " --data " + other.path()),
                        "samples are [5] but the model expects [1, 4, 4]");
}

// Found by tests/fuzz: Boost formatting an error about text that holds one of its own placeholders loops
// forever. Such flags and config files are refused at once.
TEST_F(Cli, PlaceholderTextIsRefusedRatherThanHangingTheParser) {
  expect_one_line_error(cli("train --data " + dir_.path() + " ---c%value%x"), "contains '%value%'");
  std::ofstream(dir_.path("bad.ini")) << "%option% = 1\n";
  expect_one_line_error(cli("train --config " + dir_.path("bad.ini")), "contains '%option%'");
}

}  // namespace
}  // namespace ringtrain
