// End-to-end through the binary: every bad input is one line on stderr naming the problem and a non-zero
// exit; a good run prints its epochs and writes what it was asked to.
#include <gtest/gtest.h>

#include <fstream>

#include "ringtrain/train/model_file.hpp"
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
  EXPECT_NE(e.out.find("test  test_loss"), std::string::npos);
}

TEST_F(Cli, ConfigFileSetsOptionsAndFlagsOverrideIt) {
  std::ofstream(dir_.path("run.ini")) << "model = flatten,linear(out)\nepochs = 3\nbatch = 8\noptimizer = adam\nlr = 0.01\n";
  const Outcome o = cli("train --config " + dir_.path("run.ini") + " --data " + dir_.path() + " --epochs 1");
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("epoch 1/1"), std::string::npos);
  EXPECT_NE(o.out.find("flatten,linear(3)"), std::string::npos);
}

// A wrapper (an sbatch template) passes defaults first and the user's flags after them: the later win, as with
// argparse and sbatch.
TEST_F(Cli, ALaterFlagOverridesAnEarlierOne) {
  const Outcome o = cli("train --data " + dir_.path() + " --model mlp --epochs 3 --batch 8 --model 'flatten,linear(out)'"
                        " --epochs 1");
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("model flatten,linear(3)"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("epoch 1/1"), std::string::npos) << o.out;
}

// --weight-decay's default is each optimizer's PyTorch default: 0.01 for AdamW (0 for the others).
TEST_F(Cli, AdamWDecaysByPyTorchsDefaultUnlessTold) {
  auto weights = [&](const std::string& flags, const std::string& file) {
    const Outcome o = cli("train --data " + dir_.path() + " --model 'flatten,linear(out)' --epochs 1 --batch 8 "
                          "--optimizer adamw --lr 0.1 " + flags + " --save " + dir_.path(file));
    EXPECT_EQ(o.code, 0) << o.err;
    std::vector<float> out;
    const LoadedModel saved = load_model(dir_.path(file));
    for (Param* p : saved.model->params())
      out.insert(out.end(), p->value.data(), p->value.data() + p->value.numel());
    return out;
  };
  const std::vector<float> by_default = weights("", "a.h5");
  EXPECT_EQ(by_default, weights("--weight-decay 0.01", "b.h5"));
  EXPECT_NE(by_default, weights("--weight-decay 0", "c.h5"));
}

TEST_F(Cli, AConfigFileErrorNamesTheFile) {
  std::ofstream(dir_.path("bad.ini")) << "[run]\nlr = 0.1\n";
  const Outcome o = cli("train --config " + dir_.path("bad.ini") + " --data " + dir_.path());
  EXPECT_EQ(o.code, 2);
  EXPECT_NE(o.err.find("config file '" + dir_.path("bad.ini") + "': unrecognised option 'run.lr'"), std::string::npos)
      << o.err;
}

TEST_F(Cli, HelpForEverySubcommand) {
  for (const char* cmd : {"prep", "train", "eval", "predict", "devices"}) {
    const Outcome o = cli(std::string(cmd) + " --help");
    EXPECT_EQ(o.code, 0);
    EXPECT_NE(o.out.find("usage: ringtrain"), std::string::npos);
    // Defaults print as given, not as the nearest float: (=0.05), not (=0.0500000007).
    EXPECT_EQ(o.out.find("0000000"), std::string::npos) << o.out;
    EXPECT_EQ(o.out.find("9999999"), std::string::npos) << o.out;
  }
  EXPECT_NE(cli("train --help").out.find("--lr arg (=0.05)"), std::string::npos);
  EXPECT_EQ(cli("devices --all").code, 2);
}

// One bad input: its name (the test's), the command line ("DIR" stands for the fixture's dataset
// directory) and what the one error line must say.
struct BadInput {
  const char* name;
  const char* args;
  const char* says;
};

// How ctest and gtest list a row: its command line, not the struct's bytes.
void PrintTo(const BadInput& input, std::ostream* out) { *out << "ringtrain " << input.args; }

class CliBadInput : public Cli, public ::testing::WithParamInterface<BadInput> {};

TEST_P(CliBadInput, IsOneLineNamingTheProblem) {
  std::string args = GetParam().args;
  for (size_t at; (at = args.find("DIR")) != std::string::npos;) args.replace(at, 3, dir_.path());
  std::ofstream(dir_.path("junk.h5")) << "junk";
  std::filesystem::create_symlink("/dev/null", dir_.path("null-link.h5"));
  std::ofstream(dir_.path("run.ini")) << "epochs = 1\nbatch = 8\n";
  expect_one_line_error(cli(args), GetParam().says);
}

const BadInput kBadInputs[] = {
    {"UnknownCommand", "frobnicate", "unknown command 'frobnicate'"},
    {"UnknownFlag", "train --data DIR --bogus 3", "unrecognised option '--bogus'"},
    {"StrayValue", "train --data DIR --lr 0.1 0.2", "unexpected argument '0.2'"},
    {"ValueForASwitch", "train --data DIR --nesterov yes", "unexpected argument 'yes'"},
    {"FlagValueOfTheWrongType", "train --data DIR --batch many", "batch"},
    {"OverriddenFlagValueOfTheWrongType", "train --data DIR --lr abc --lr 0.1",
     "the argument ('abc') for option '--lr' is invalid"},
    {"TimelineStepsWithoutAColon", "train --data DIR --timeline DIR/t.json --timeline-steps 2",
     "--timeline-steps must be FIRST:LAST step numbers from 1, e.g. 100:120; got '2'"},
    {"TimelineStepsFromZero", "train --data DIR --timeline DIR/t.json --timeline-steps 0:3", "got '0:3'"},
    {"TimelineStepsNotNumbers", "train --data DIR --timeline DIR/t.json --timeline-steps a:b", "got 'a:b'"},
    {"TimelineStepsOpenEnded", "train --data DIR --timeline DIR/t.json --timeline-steps 5:", "got '5:'"},
    {"MissingConfigFile", "train --config DIR/none.ini", "cannot read config file"},
    {"ConfigFileThatIsADirectory", "train --config DIR", "' is not a regular file"},
    {"ConfigFileThatIsADevice", "train --config /dev/zero", "config file '/dev/zero' is not a regular file"},
    {"UnclosedModelSpec", "train --data DIR --model \"conv(32,5\"", "missing ')'"},
    {"UnclosedResidualBlock", "train --data DIR --model \"residual(conv(8,3,pad=1)\"",
     "missing ')' for the '(' at character 9"},
    {"UnknownPreset", "train --data DIR --model resnet34", "unknown preset 'resnet34' (presets: cnn, gpt-tiny, gpt2-124m, linreg, mlp, resnet101"},
    {"ModelOfTheWrongWidth", "train --data DIR --model \"flatten,linear(7)\"",
     "produces 7 outputs per sample but the data needs 3"},
    {"MissingShard", "train --train DIR/missing.h5", "no such file"},
    {"NotHdf5", "train --train DIR/junk.h5", "is not an HDF5 file"},
    {"UnknownOptimizer", "train --data DIR --optimizer lion", "--optimizer must be sgd, adam, adamw or rmsprop, got 'lion'"},
    {"UnknownLrSchedule", "train --data DIR --lr-schedule zigzag",
     "--lr-schedule must be constant, step or cosine, got 'zigzag'"},
    {"UnknownDevice", "train --data DIR --device tpu", "--device must be cpu, cuda or auto, got 'tpu'"},
    {"UnknownPrecision", "train --data DIR --precision fp8", "--precision must be fp32, tf32 or bf16, got 'fp8'"},
    {"UnknownAllreduce", "train --data DIR --allreduce tree", "--allreduce must be auto, ring, hierarchical or mpi, got 'tree'"},
    {"UnknownCompression", "train --data DIR --compress int8", "--compress must be none, bf16 or fp16, got 'int8'"},
    {"LearningRateNotPositive", "train --data DIR --lr 0", "--lr must be positive, got 0"},
    {"LearningRateInfinite", "train --data DIR --lr inf", "--lr must be positive, got inf"},
    {"NegativeMomentum", "train --data DIR --momentum -1", "--momentum must be in [0, 1), got -1"},
    {"BetaOfOne", "train --data DIR --optimizer adam --beta2 1", "--beta2 must be in [0, 1), got 1"},
    {"NegativePrefetch", "train --data DIR --prefetch -1", "--prefetch must not be negative, got -1"},
    {"LearningRateBelowFloat", "train --data DIR --lr 1e-50",
     "the argument ('1e-50') for option '--lr' is outside the range of a 32-bit float"},
    {"StepScheduleBeyondOverflow", "train --data DIR --lr-schedule step --lr-step-epochs 1e16",
     "--lr-step-epochs must be at most 1000000, got 1e+16"},
    {"StragglerSleepingForAges", "train --data DIR --straggler-ms 1e30", "--straggler-ms must be at most 3600000"},
    {"FusionBufferOfNothing", "train --data DIR --fusion-mb 1e-50", "--fusion-mb must be from 1 byte"},
    {"FusionBufferBeyondOverflow", "train --data DIR --fusion-mb 1e30", "a terabyte), got 1e+30"},
    {"StragglerOutsideTheJob", "train --data DIR --straggler-rank 3", "--straggler-rank 3 is outside the job's ranks 0..0"},
    {"BatchLargerThanTheData", "train --data DIR --batch 500", "fewer than one batch of 500"},
    {"EvalWithoutModel", "eval --data DIR", "model-file"},
    {"EvalOfAShard", "eval --model-file DIR/train-00000.h5 --data DIR", "not a ringtrain model file"},
    {"EvalOfAnUnknownSplit", "eval --model-file DIR/m.h5 --data DIR --split dev",
     "--split must be train, val or test, got 'dev'"},
    {"PredictWithoutModel", "predict --input DIR --out DIR/p.csv", "model-file"},
    {"PredictWithoutOutput", "predict --model-file DIR/m.h5 --input DIR", "the option '--out' is required"},
    {"PredictToAnUnknownFormat", "predict --model-file DIR/m.h5 --input DIR --out DIR/p.txt",
     "/p.txt' must end in .csv or .h5 (.hdf5), which choose the file's format; got '.txt'"},
    {"PredictToAFileWithoutExtension", "predict --model-file DIR/m.h5 --input DIR --out DIR/p", "got no extension"},
    {"PredictOfAnUnknownSplit", "predict --model-file DIR/m.h5 --input DIR --split dev --out DIR/p.csv",
     "--split must be train, val or test, got 'dev'"},
    {"PredictInBatchesOfNothing", "predict --model-file DIR/m.h5 --input DIR --out DIR/p.csv --batch 0",
     "--batch must be at least 1"},
    {"PredictOfAShard", "predict --model-file DIR/train-00000.h5 --input DIR --out DIR/p.csv",
     "not a ringtrain model file"},
    {"EvalReportOfAShard", "eval --model-file DIR/train-00000.h5 --data DIR --report DIR/r", "not a ringtrain model file"},
    {"StagesThatDoNotDivideTheWorld", "train --data DIR --pipeline-stages 2",
     "a world of 1 rank is not divisible by --pipeline-stages 2"},
    {"NoMicroBatches", "train --data DIR --micro-batches 0", "--micro-batches must be at least 1"},
    {"BadSplit", "train --data DIR --split 2,x", "--split must be layer indices"},
    {"UnknownPipelineSchedule", "train --data DIR --schedule zb", "--schedule must be gpipe or 1f1b"},
    {"UnknownMode", "train --data DIR --mode hogwild", "--mode must be sync or ps, got 'hogwild'"},
    {"ServersLeaveNoWorker", "train --data DIR --mode ps", "--ps-servers 1 leaves no worker among 1 rank"},
    {"NegativeStaleness", "train --data DIR --mode ps --staleness -2", "--staleness must be at least 0"},
    {"SaveOntoATrainingShard", "train --data DIR --save DIR/train-00000.h5", "it is one of this run's inputs"},
    {"SaveOntoADevice", "train --data DIR --save /dev/null", "it is not a regular file (a device, a pipe or a socket)"},
    {"MetricsOntoADirectory", "train --data DIR --metrics DIR", "it is a directory"},
    {"TwoOutputsOnOnePath", "train --data DIR --save DIR/x.h5 --metrics DIR/./x.h5",
     "--save and --metrics name the same path"},
    {"ShardThatIsAFifo", "train --train /dev/stdin", "is not a regular file, not an HDF5 file"},
    {"CheckpointsAmongTheInputs", "train --data DIR --checkpoint-dir DIR", "it holds this run's input"},
    {"SaveIntoProc", "train --data DIR --save /proc/m.h5", "cannot create a file in '/proc'"},
    {"SaveOntoTheConfigFile", "train --data DIR --config DIR/run.ini --save DIR/run.ini", "it is one of this run's inputs"},
    {"HeartbeatFasterThanItBeats", "train --data DIR --peer-timeout-s 0.001", "--peer-timeout-s must be 0 (no heartbeat) or at least 1"},
    {"NumberBeyondADouble", "train --data DIR --momentum 1e-400", "is outside the range of a 32-bit float"},
    {"SaveThroughALinkToADevice", "train --data DIR --save DIR/null-link.h5", "it is not a regular file"},
    {"CheckpointsWithoutADirectory", "train --data DIR --checkpoint-every 5", "--checkpoint-every needs --checkpoint-dir"},
    {"UnknownProgress", "train --data DIR --progress fancy", "--progress must be auto, bar, lines or none, got 'fancy'"},
    {"TensorBoardOntoAFile", "train --data DIR --tensorboard DIR/train-00000.h5",
     "train-00000.h5': it is not a directory (--tensorboard names the directory the event files go in)"},
    {"TensorBoardUnderAFile", "train --data DIR --tensorboard DIR/train-00000.h5/tb",
     "tb': cannot create the directory (Not a directory)"},
    {"TensorBoardIntoProc", "train --data DIR --tensorboard /proc",
     "cannot write TensorBoard events to '/proc': cannot create a file in '/proc'"},
    {"PrepOfAMissingDirectory", "prep --input /nonexistent --out DIR/p", "no train-images-idx3-ubyte"},
    {"PrepOfAMissingCsv", "prep --format csv --input DIR/x.csv --out DIR/p --target y", "cannot open CSV file"},
    {"PrepOfACsvThatIsADirectory", "prep --format csv --input DIR --out DIR/p --target y", "is not a regular file"},
    {"PrepOfAnUnknownFormat", "prep --format parquet --input DIR --out DIR/p", "--format must be idx, csv or text, got 'parquet'"},
    {"PrepOfAnUnknownTask", "prep --format csv --input DIR/x.csv --out DIR/p --target y --task ranking",
     "--task must be auto, classification or regression, got 'ranking'"},
    {"PrepLikeWithASplitFlag", "prep --input DIR/x.csv --like DIR --out DIR/p --test-fraction 0.3",
     "--test-fraction has no effect with --like (the training data decides the task; every row goes to the test split)"},
    {"PrepLikeOfIdxFiles", "prep --format idx --input DIR --like DIR --out DIR/p",
     "--like converts a CSV file (--format csv), not IDX files"},
    {"SyntheticWithoutAShape", "train --data synthetic:", "--data 'synthetic:' has no sample shape"},
    {"SyntheticWithoutClasses", "train --data synthetic:784", "--data 'synthetic:784' has no number of classes"},
    {"SyntheticWithAZeroDimension", "train --data synthetic:3x0x224:1000",
     "--data 'synthetic:3x0x224:1000': dimension 2 of the sample shape must be at least 1, got 0"},
    {"SyntheticWithANegativeDimension", "train --data synthetic:3x-1x224:1000", "must be at least 1, got -1"},
    {"SyntheticWithALetterForADimension", "train --data synthetic:3xax224:1000",
     "--data 'synthetic:3xax224:1000': dimension 'a' is not a whole number"},
    {"SyntheticWithFourDimensions", "train --data synthetic:1x3x8x8:10", "a sample has 1 to 3 dimensions"},
    {"SyntheticWithOneClass", "train --data synthetic:784:1", "synthetic data needs at least 2 classes, got 1"},
    {"SyntheticWithWordsForClasses", "train --data synthetic:784:ten",
     "the number of classes 'ten' is not a whole number"},
    {"SyntheticWithoutSamples", "train --data synthetic:784:10:0", "an epoch needs at least 1 sample, got 0"},
    {"SyntheticSampleTooLarge", "train --data synthetic:100000x100000x100000:10",
     "a sample of more than 67108864 values (256 MiB of float32) is too large to make"},
    {"SyntheticNumberBeyond64Bits", "train --data synthetic:99999999999999999999:10",
     "dimension '99999999999999999999' is too large"},
    {"SyntheticWithExtraFields", "train --data synthetic:784:10:100:5",
     "--data 'synthetic:784:10:100:5' has 4 fields after 'synthetic:', at most 3"},
    {"SyntheticDataStaged", "train --data synthetic:784:10 --stage-to DIR/stage",
     "--stage-to: synthetic data is made in memory on every rank; it has no shards to stage"},
    {"SyntheticDataInShuffleWindows", "train --data synthetic:784:10 --shuffle-window 2",
     "--shuffle-window counts shards, and synthetic data has none"},
    {"SyntheticDataAndTrainingShards", "train --data synthetic:784:10 --train DIR/train-00000.h5",
     "--train and --data synthetic:784:10 both give the training data: give one of them"},
    {"SyntheticValidationData", "train --data DIR --val synthetic:784:10",
     "--val 'synthetic:784:10': synthetic data is given with --data"},
    {"SyntheticTokensWithoutAVocabulary", "train --data synthetic-tokens:1024",
     "--data 'synthetic-tokens:1024' needs a context and a vocabulary: synthetic tokens are "
     "synthetic-tokens:CONTEXT:VOCABULARY[:SAMPLES]"},
    {"SyntheticTokensWithExtraFields", "train --data synthetic-tokens:8:256:64:2",
     "has 4 fields after 'synthetic-tokens:', at most 3"},
    {"SyntheticTokensOfAZeroContext", "train --data synthetic-tokens:0:256",
     "--data 'synthetic-tokens:0:256': the context must be at least 1 token, got 0"},
    {"SyntheticTokensOfOneToken", "train --data synthetic-tokens:64:1", "the vocabulary must have at least 2 tokens, got 1"},
    {"SyntheticTokensAsValidationData", "train --data DIR --val synthetic-tokens:8:256",
     "--val 'synthetic-tokens:8:256': synthetic data is given with --data"},
    {"PrepOfTextWithASeed", "prep --format text --input DIR/x.csv --context 8 --out DIR/p --seed 2",
     "--seed has no effect with --format text (its splits are contiguous blocks of the text)"},
    // Early stopping and regularisation.
    {"EarlyStopPatienceOfZero", "train --data DIR --early-stop-patience 0",
     "--early-stop-patience must be at least 1, got 0"},
    {"EarlyStopPatienceNotANumber", "train --data DIR --early-stop-patience soon",
     "the argument ('soon') for option '--early-stop-patience' is invalid"},
    {"UnknownMonitor", "train --data DIR --early-stop-patience 2 --monitor val_f1",
     "--monitor must be val_loss, val_accuracy or val_mae, got 'val_f1'"},
    {"MonitorOfTheOtherTask", "train --data DIR --early-stop-patience 2 --monitor val_mae",
     "--monitor val_mae: this data is for classification, whose validation metrics are val_loss and val_accuracy"},
    {"MonitorWithNothingWatching", "train --data DIR --monitor val_accuracy",
     "--monitor val_accuracy needs --early-stop-patience or --save-best"},
    {"NegativeMinDelta", "train --data DIR --early-stop-patience 2 --min-delta -1",
     "--min-delta must not be negative, got -1"},
    {"EarlyStopWithoutAValidationSplit", "train --train DIR/train-00000.h5 --early-stop-patience 2",
     "--early-stop-patience needs a validation split to monitor"},
    {"SaveBestWithoutAValidationSplit", "train --train DIR/train-00000.h5 --save-best DIR/best.h5",
     "--save-best needs a validation split to monitor"},
    {"SaveBestIntoAMissingDirectory", "train --data DIR --save-best DIR/none/best.h5",
     "cannot write the best model to '"},
    {"SaveBestOntoSave", "train --data DIR --save DIR/m.h5 --save-best DIR/./m.h5",
     "--save and --save-best name the same path"},
    {"SaveBestOntoAValidationShard", "train --data DIR --save-best DIR/val-00000.h5", "it is one of this run's inputs"},
    {"NegativeL1", "train --data DIR --l1 -0.01", "--l1 must not be negative, got -0.01"},
    {"InfiniteL1", "train --data DIR --l1 inf", "--l1 must be a finite number, got inf"},
    {"LabelSmoothingOfOne", "train --data DIR --label-smoothing 1", "--label-smoothing must be in [0, 1), got 1"},
    // Augmentation: the syntax here, the samples' shape once the data is open (test_augment.cpp has the rest).
    {"AugmentUnknown", "train --data DIR --augment crop:2,rotate",
     "--augment 'crop:2,rotate': 'rotate' is not an augmentation; they are crop:PADDING and flip"},
    {"AugmentCropWithoutPadding", "train --data DIR --augment crop",
     "--augment 'crop': crop takes its padding in pixels, a whole number from 1 to 9999, e.g. crop:4"},
    {"AugmentCropOfZero", "train --data DIR --augment crop:0", "crop takes its padding in pixels"},
    {"AugmentCropNegative", "train --data DIR --augment crop:-2", "crop takes its padding in pixels"},
    {"AugmentFlipTwice", "train --data DIR --augment flip,flip", "--augment 'flip,flip': flip is given twice"},
    {"AugmentEmptyItem", "train --data DIR --augment flip,", "'' is not an augmentation"},
    {"AugmentPaddingBeyondTheImage", "train --data DIR --augment crop:5",
     "--augment crop:5: the padding is larger than the images (4x4)"},
    {"AugmentFlatSamples", "train --data synthetic:784:10 --augment flip",
     "--augment flip is for images ([C, H, W] or [H, W] samples); this data's samples are [784]"},
    // Fine-tuning: --freeze's syntax here, its layers against the model, --init-from's file.
    {"FreezeWithAnEmptyItem", "train --data DIR --freeze linear1,,relu1",
     "--freeze 'linear1,,relu1' holds an empty item (two commas, or one at an end)"},
    {"FreezeOfAnEmptyRange", "train --data DIR --freeze 3-1",
     "--freeze '3-1': the range '3-1' holds no layer (A-B includes B, A:B does not)"},
    {"FreezeOfANonIndex", "train --data DIR --freeze 1:x", "--freeze '1:x': 'x' is not a layer index (0 to 999999999)"},
    {"FreezeMatchingNoLayer", "train --data DIR --freeze 'conv*'",
     "--freeze 'conv*' matches no layer of the model (flatten1, linear1, relu1, linear2, relu2, linear3, relu3, linear4)"},
    {"FreezePastTheLastLayer", "train --data DIR --freeze 8", "--freeze '8': the model has 8 layers, 0..7"},
    {"FreezeOfEveryTrainedLayer", "train --data DIR --freeze 'linear*'",
     "--freeze 'linear*' freezes every layer with parameters: nothing would train"},
    {"ResetHeadWithoutInitFrom", "train --data DIR --reset-head", "--reset-head needs --init-from"},
    {"InitFromAndResume", "train --data DIR --init-from DIR/m.h5 --resume DIR/m.h5",
     "--init-from and --resume both give the starting weights"},
    {"InitFromAMissingFile", "train --data DIR --init-from DIR/none.h5", "--init-from: no such file '"},
    {"InitFromJunk", "train --data DIR --init-from DIR/junk.h5", "--init-from: '"},
    {"InitFromAShard", "train --data DIR --init-from DIR/train-00000.h5",
     "/train-00000.h5' is not a ringtrain model file or checkpoint (no format attribute 'ringtrain-model-1')"},
    {"SaveOverTheInitialModel", "train --data DIR --init-from DIR/train-00000.h5 --save DIR/train-00000.h5",
     "it is one of this run's inputs"},
};

INSTANTIATE_TEST_SUITE_P(Table, CliBadInput, ::testing::ValuesIn(kBadInputs),
                         [](const ::testing::TestParamInfo<BadInput>& info) { return std::string(info.param.name); });

// --data synthetic:... (also from a config file): no validation or test split of its own; eval scores a
// split of it.
TEST_F(Cli, TrainsAndEvaluatesOnSyntheticData) {
  const Outcome t = cli("train --data synthetic:3x8x8:4:64 --model \"conv(2,3,pad=1),relu,maxpool(2),flatten,"
                        "linear(out)\" --epochs 1 --batch 8 --save " + dir_.path("m.h5"));
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_NE(t.out.find("64 training samples made in memory (synthetic:3x8x8:4:64, 4 classes)"), std::string::npos)
      << t.out;
  EXPECT_NE(t.out.find("epoch 1/1"), std::string::npos) << t.out;
  EXPECT_EQ(t.out.find("val_"), std::string::npos) << t.out;
  EXPECT_EQ(t.out.find("test "), std::string::npos) << t.out;
  const Outcome e = cli("eval --model-file " + dir_.path("m.h5") + " --data synthetic:3x8x8:4:32");
  ASSERT_EQ(e.code, 0) << e.err;
  EXPECT_NE(e.out.find("test  test_loss"), std::string::npos) << e.out;
  EXPECT_NE(e.out.find("(32 samples)"), std::string::npos) << e.out;
  std::ofstream(dir_.path("synthetic.ini")) << "data = synthetic:16:3:32\nmodel = flatten,linear(out)\nepochs = 1\n";
  const Outcome c = cli("train --config " + dir_.path("synthetic.ini") + " --batch 8");
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_NE(c.out.find("32 training samples made in memory (synthetic:16:3:32, 3 classes), 4 steps per epoch"),
            std::string::npos)
      << c.out;
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

// A binary file given as --config is refused before its bytes reach a message, and whatever bytes do reach one
// (a flag's value) are escaped: the error stays one printable line.
TEST_F(Cli, ErrorsStayOnePrintableLine) {
  std::ofstream(dir_.path("binary.ini"), std::ios::binary) << std::string("lr = 0.1\0\x01\x1b[31m", 13);
  expect_one_line_error(cli("train --config " + dir_.path("binary.ini")),
                        "is not a text file (byte 0x00 at offset 8)");
  const Outcome o = cli("train --data " + dir_.path() + " --optimizer \"$(printf 'ad\\033[31mam\\rx')\"");
  expect_one_line_error(o, "got 'ad\\x1b[31mam\\x0dx'");
  EXPECT_EQ(o.err.find('\x1b'), std::string::npos) << "a raw escape byte reached the terminal";
  // A C1 control character (U+009B, CSI) and a byte that is not UTF-8 are escaped too; UTF-8 text is not.
  expect_one_line_error(cli("train --data " + dir_.path() + " --optimizer \"$(printf 'x\\302\\2331m\\377\\303\\251')\""),
                        "got 'x\\xc2\\x9b1m\\xff\xc3\xa9'");
}

}  // namespace
}  // namespace ringtrain
