// Fine-tuning on one rank (train/init_from.hpp, train/freeze.hpp, Model::freeze): what --init-from loads,
// skips and leaves new; which layers --freeze names and what it refuses; that frozen layers keep their
// parameters and batchnorm statistics bit for bit (no update, no weight decay, no momentum) while the layers
// that train get the gradients the unfrozen model gives them; and that a fine-tuning run resumes bitwise.
// N ranks, the bytes on the wire and the other modes: tests/mpi/test_finetune.cpp.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <sstream>

#include "ringtrain/nn/loss.hpp"
#include "ringtrain/nn/model.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/train/freeze.hpp"
#include "ringtrain/train/init_from.hpp"
#include "ringtrain/train/model_file.hpp"
#include "ringtrain/train/trainer.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

using test::TempDir;

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), sizeof(float) * static_cast<size_t>(a.numel())) == 0;
}

LayerSelector named(const std::string& glob) { return {glob, glob, 0, 0}; }
LayerSelector layers(int64_t first, int64_t end, const std::string& text) { return {text, "", first, end}; }

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_ERROR(call, says)                                         \
  do {                                                                   \
    const std::string got = error_of([&] { call; });                     \
    EXPECT_NE(got.find(says), std::string::npos) << "got '" << got << "'"; \
  } while (0)

constexpr const char* kMlp = "flatten,linear(8),relu,linear(8),relu,linear(out)";  // 6 layers, 0..5

TEST(Freeze, SelectsLayersByNameGlobAndIndexRange) {
  const Model m(kMlp, {1, 4, 4}, 3, 0);
  EXPECT_EQ(select_layers({named("linear*")}, m), (std::vector<size_t>{1, 3, 5}));
  EXPECT_EQ(select_layers({layers(0, 2, "0-1"), named("relu?")}, m), (std::vector<size_t>{0, 1, 2, 4}));
  EXPECT_EQ(select_layers({layers(4, -1, "4:")}, m), (std::vector<size_t>{4, 5}));
  EXPECT_EQ(select_layers({named("linear2"), layers(3, 4, "3")}, m), (std::vector<size_t>{3}));  // once
}

TEST(Freeze, NamesWhatItCannotFreeze) {
  Model m(kMlp, {1, 4, 4}, 3, 0);
  EXPECT_ERROR(select_layers({named("conv*")}, m),
               "--freeze 'conv*' matches no layer of the model (flatten1, linear1, relu1, linear2, relu2, linear3)");
  EXPECT_ERROR(select_layers({layers(6, 7, "6")}, m), "--freeze '6': the model has 6 layers, 0..5");
  EXPECT_ERROR(select_layers({layers(2, 9, "2-8")}, m), "--freeze '2-8': the model has 6 layers");
  EXPECT_ERROR(freeze_layers({named("linear*")}, m, m.size()),
               "--freeze 'linear*' freezes every layer with parameters: nothing would train");
  Model head(kMlp, {1, 4, 4}, 3, 0);
  EXPECT_ERROR(freeze_layers({layers(0, 2, "0-1"), named("linear3")}, head, 5),
               "--freeze '0-1,linear3' freezes linear3, the output layer --reset-head starts anew: it would never train");
  // Backward would pass through a batchnorm that runs on its running statistics.
  Model bn("flatten,linear(8),batchnorm,relu,linear(out)", {1, 4, 4}, 3, 0);
  EXPECT_ERROR(freeze_layers({named("batchnorm1")}, bn, bn.size()),
               "the frozen batchnorm1 holds a batchnorm and linear1 below it trains");
  Model block("conv(4,3,pad=1),residual(conv(4,3,pad=1),batchnorm),flatten,linear(out)", {1, 4, 4}, 3, 0);
  EXPECT_ERROR(freeze_layers({named("residual1")}, block, block.size()), "the frozen residual1 holds a batchnorm");
  Model below("flatten,linear(8),batchnorm,relu,linear(out)", {1, 4, 4}, 3, 0);
  EXPECT_EQ(error_of([&] { freeze_layers({layers(0, 3, ":3")}, below, below.size()); }), "");
}

// The same batch through a model and its frozen copy: the layers that train get the same gradients, bit for
// bit; the frozen ones below them get none (backward never reaches them).
TEST(Freeze, BackwardStopsAtTheFirstTrainedLayerWithTheWholeModelsGradients) {
  const char* spec = "conv(3,3,pad=1),relu,conv(4,3,pad=1),relu,flatten,linear(8),relu,linear(out)";
  Model whole(spec, {2, 6, 6}, 3, 7), frozen(spec, {2, 6, 6}, 3, 7);
  frozen.freeze({0, 1});
  EXPECT_EQ(frozen.first_trained_layer(), 2u);
  EXPECT_FALSE(frozen.layer(2).input_grad_needed());
  const Tensor x = test::random_tensor({4, 2, 6, 6}, 3);
  Targets y;
  y.labels = {0, 1, 2, 1};
  for (Model* m : {&whole, &frozen}) {
    auto loss = make_loss(true);
    m->zero_grad();
    loss->forward(m->forward(x, Mode::train), y);
    m->backward(loss->backward(1.0f));
  }
  const auto all = whole.named_params(), some = frozen.named_params();
  const auto trained = frozen.trained_params(frozen.all_layers());
  ASSERT_EQ(trained.size(), all.size() - 2);
  EXPECT_EQ(trained.front().name, "conv2/weight");
  EXPECT_EQ(frozen.trained_positions(frozen.all_layers()), (std::vector<size_t>{2, 3, 4, 5, 6, 7}));
  for (size_t i = 0; i < all.size(); ++i) {
    if (i < 2) {
      EXPECT_TRUE(same_bits(some[i].param->grad, Tensor(some[i].param->grad.shape()))) << some[i].name;
    } else {
      EXPECT_TRUE(same_bits(all[i].param->grad, some[i].param->grad)) << all[i].name;
    }
  }
}

// Trains `config`, and expects the layers it freezes to end as they began, bit for bit (weights, biases,
// batchnorm statistics), and the others to have moved.
void expect_frozen_layers_unchanged(const TrainConfig& config) {
  Trainer trainer(config, test::world());
  Model& m = trainer.model();
  std::vector<Tensor> before;
  for (const NamedParam& p : m.named_params()) before.push_back(p.param->value.to(Device::cpu));
  for (const NamedTensor& b : m.named_buffers()) before.push_back(b.tensor->to(Device::cpu));
  std::ostringstream log;
  trainer.run(log);
  size_t k = 0;
  auto check = [&](const std::string& name, const Tensor& now) {
    size_t layer = 0;
    while (m.layer_name(layer) != name.substr(0, name.find('/'))) ++layer;
    EXPECT_EQ(same_bits(before[k++], now), m.frozen(layer)) << name << (m.frozen(layer) ? " moved" : " did not move");
  };
  for (const NamedParam& p : m.named_params()) check(p.name, p.param->value);
  for (const NamedTensor& b : m.named_buffers()) check(b.name, *b.tensor);
}

TEST(Freeze, FrozenLayersKeepTheirParametersAndStatisticsUnderEveryOptimizer) {
  TempDir dir;
  test::write_classification_shard(dir.path("train-00000.h5"), 96, {1, 6, 6}, 3, 1);
  for (const OptimizerKind kind : {OptimizerKind::sgd, OptimizerKind::adam, OptimizerKind::rmsprop}) {
    SCOPED_TRACE(name_of(kind));
    // Weight decay and momentum would move a frozen weight even at a zero gradient; a batchnorm in
    // training mode would move its running statistics.
    TrainConfig c = test::train_config(
        dir.path(), {.model = "conv(4,3,pad=1),batchnorm,relu,dropout(0.3),flatten,linear(8),batchnorm,relu,linear(out)",
                     .batch = 8, .steps = 10, .lr = 0.01f, .optimizer = kind, .weight_decay = 0.01f});
    c.fine_tune.freeze = {layers(0, 4, ":4")};
    expect_frozen_layers_unchanged(c);
  }
}

// A model file of `spec` for [1, 4, 4] samples and `outputs` classes, from `seed`.
std::string saved_model(const TempDir& dir, const std::string& name, const std::string& spec, int64_t outputs,
                        uint64_t seed) {
  Model m(spec, {1, 4, 4}, outputs, seed);
  save_model(dir.path(name), m, TargetSpace{true}, InputTransform{});
  return dir.path(name);
}

TEST(InitFrom, LoadsWhatMatchesAndSaysWhatItSkippedAndLeftNew) {
  TempDir dir;
  const std::string path = saved_model(dir, "base.h5", "flatten,linear(8),relu,linear(6),relu,linear(out)", 3, 1);
  Model base("flatten,linear(8),relu,linear(6),relu,linear(out)", {1, 4, 4}, 3, 1);
  Model m("flatten,linear(8),batchnorm,relu,linear(5),relu,linear(out)", {1, 4, 4}, 3, 2);
  const InitFromReport report = init_from(path, false, m, TargetSpace{true});
  ASSERT_EQ(report.items.size(), 10u);
  EXPECT_TRUE(same_bits(m.named_params()[0].param->value, base.named_params()[0].param->value));
  EXPECT_TRUE(same_bits(m.named_params()[7].param->value, base.named_params()[5].param->value))
      << "linear3/bias";
  const std::string text = describe(report, m);
  for (const char* line :
       {"  --init-from " , ": loaded 3 of 10 tensors: linear1, linear3/bias\n",
        "    skipped linear2/weight: [5, 8] here, [6, 8] in the file\n", "    skipped linear2/bias: [5] here, [6] in the file\n",
        "    skipped linear3/weight: [3, 5] here, [3, 6] in the file\n",
        "    new batchnorm1/weight, batchnorm1/bias, batchnorm1/running_mean, batchnorm1/running_var (not in the file)\n"})
    EXPECT_NE(text.find(line), std::string::npos) << line << " in:\n" << text;
}

TEST(InitFrom, AnotherClassCountNeedsResetHeadWhichStartsTheOutputLayerNew) {
  TempDir dir;
  const std::string path = saved_model(dir, "base.h5", kMlp, 3, 1);
  Model two(kMlp, {1, 4, 4}, 2, 5);
  EXPECT_ERROR(init_from(path, false, two, TargetSpace{true}),
               "was trained for 3 classes, this data has 2 classes: add --reset-head to start a new output layer");
  EXPECT_ERROR(init_from(path, false, two, TargetSpace{false}), "this data has 2 regression targets: add --reset-head");
  const InitFromReport report = init_from(path, true, two, TargetSpace{true});
  Model fresh(kMlp, {1, 4, 4}, 2, 5), base(kMlp, {1, 4, 4}, 3, 1);
  const auto mine = two.named_params(), own = fresh.named_params(), theirs = base.named_params();
  for (size_t i = 0; i < mine.size(); ++i)
    EXPECT_TRUE(same_bits(mine[i].param->value, (i < 4 ? theirs : own)[i].param->value)) << mine[i].name;
  EXPECT_NE(describe(report, two).find("    new linear3/weight, linear3/bias (--reset-head)\n"), std::string::npos);
  Model no_head("conv(3,3,pad=1),globalavgpool", {1, 4, 4}, 3, 0);
  EXPECT_ERROR(head_layer(no_head), "--reset-head: the model has no linear layer");
}

TEST(InitFrom, RefusesWhatItCannotUse) {
  TempDir dir;
  Model m(kMlp, {1, 4, 4}, 3, 0);
  EXPECT_ERROR(init_from(dir.path("none.h5"), false, m, TargetSpace{true}), "--init-from: no such file '");
  test::write_classification_shard(dir.path("train-00000.h5"), 8, {1, 4, 4}, 3, 1);
  EXPECT_ERROR(init_from(dir.path("train-00000.h5"), false, m, TargetSpace{true}),
               "' is not a ringtrain model file or checkpoint (no format attribute 'ringtrain-model-1')");
  const std::string conv = saved_model(dir, "conv.h5", "conv(2,3),flatten,linear(out)", 3, 0);
  EXPECT_ERROR(init_from(conv, false, m, TargetSpace{true}),
               "' holds none of this model's 6 parameters and buffers under its name and shape (the file's model is "
               "'conv(2,3");
}

// Three classes to learn from, then two others to fine-tune on.
struct TwoTasks {
  TwoTasks() {
    for (const char* sub : {"base", "new"}) std::filesystem::create_directories(dir.path(sub));
    test::write_classification_shard(dir.path("base/train-00000.h5"), 96, {1, 4, 4}, 3, 1);
    test::write_classification_shard(dir.path("new/train-00000.h5"), 64, {1, 4, 4}, 2, 2);
    test::write_classification_shard(dir.path("new/test-00000.h5"), 16, {1, 4, 4}, 2, 3);
  }
  TrainConfig base() const {
    TrainConfig c = test::train_config(dir.path("base"), {.model = kMlp, .batch = 8, .epochs = 1});
    c.save_model = dir.path("base.h5");
    return c;
  }
  TrainConfig fine_tune() const {
    TrainConfig c = test::train_config(dir.path("new"), {.model = kMlp, .batch = 8, .epochs = 2, .lr = 0.01f,
                                                         .optimizer = OptimizerKind::adam, .weight_decay = 1e-3f});
    c.fine_tune = {dir.path("base.h5"), {layers(0, 3, ":3")}, true};
    return c;
  }
  TempDir dir;
};

TEST(FineTune, TheRunStartsFromTheFileKeepsTheFrozenLayersAndSaysSo) {
  TwoTasks tasks;
  std::ostringstream log;
  Trainer(tasks.base(), test::world()).run(log);
  Trainer tuned(tasks.fine_tune(), test::world());
  std::ostringstream tuned_log;
  tuned.run(tuned_log);
  const LoadedModel base = load_model(tasks.dir.path("base.h5"));
  const auto now = tuned.model().named_params(), then = base.model->named_params();
  for (size_t i = 0; i < now.size(); ++i) EXPECT_EQ(same_bits(now[i].param->value, then[i].param->value), i < 2) << now[i].name;
  for (const char* line : {": loaded 4 of 6 tensors: linear1, linear2\n", "    new linear3/weight, linear3/bias (--reset-head)\n",
                           "  --freeze: 3 layers frozen (flatten1, linear1, relu1): 136 of 226 parameters, 90 train\n"})
    EXPECT_NE(tuned_log.str().find(line), std::string::npos) << line << " in:\n" << tuned_log.str();
}

// A fine-tuning run cut by --steps and resumed (with --freeze again, without --init-from) ends bit for bit
// where the uninterrupted run ends; another --freeze is refused.
TEST(FineTune, ACutFineTuningRunResumesBitwise) {
  TwoTasks tasks;
  std::ostringstream log;
  Trainer(tasks.base(), test::world()).run(log);
  Trainer whole(tasks.fine_tune(), test::world());
  whole.run(log);

  TrainConfig cut = tasks.fine_tune();
  cut.checkpoint_dir = tasks.dir.path("checkpoints");
  cut.max_steps = 11;
  Trainer(cut, test::world()).run(log);
  TrainConfig rest = tasks.fine_tune();
  rest.fine_tune.init_from.clear();
  rest.fine_tune.reset_head = false;
  rest.checkpoint_dir = cut.checkpoint_dir;
  rest.resume = {ResumeFrom::newest, ""};
  TrainConfig other = rest;
  other.fine_tune.freeze = {layers(0, 2, ":2")};
  EXPECT_ERROR(Trainer(other, test::world()).run(log),
               "is another run's: --freeze is 'flatten1,linear1,relu1' in the checkpoint but 'flatten1,linear1' in this run");
  Trainer resumed(rest, test::world());
  EXPECT_EQ(resumed.run(log).steps, 16);
  const auto a = whole.model().params(), b = resumed.model().params();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(same_bits(a[i]->value, b[i]->value)) << i;
}

}  // namespace
}  // namespace ringtrain
