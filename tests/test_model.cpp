#include <gtest/gtest.h>

#include <cstring>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/nn/activation.hpp"
#include "ringtrain/nn/conv2d.hpp"
#include "ringtrain/nn/loss.hpp"
#include "ringtrain/nn/model.hpp"
#include "ringtrain/nn/model_spec.hpp"
#include "ringtrain/tensor/host_allocator.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

std::string error_of(const std::string& spec, const Shape& in = {1, 28, 28}, int64_t outputs = 10) {
  try {
    Model m(spec, in, outputs, 0);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ModelSpec, PresetsBuildThePeerArchitectures) {
  Model cnn("cnn", {1, 28, 28}, 10, 0);
  EXPECT_EQ(cnn.spec(),
            "conv(32,5,stride=1,pad=2),relu,maxpool(2),conv(64,5,stride=1,pad=2),relu,maxpool(2),flatten,"
            "linear(1024),relu,linear(10)");
  EXPECT_EQ(cnn.parameter_count(), 32 * 25 + 32 + 64 * 800 + 64 + 3136 * 1024 + 1024 + 10240 + 10);
  Model mlp("mlp", {1, 28, 28}, 10, 0);
  EXPECT_EQ(mlp.parameter_count(), 784 * 256 + 256 + 256 * 128 + 128 + 128 * 100 + 100 + 100 * 10 + 10);
  Model linreg("linreg", {5}, 1, 0);
  EXPECT_EQ(linreg.output_shape(), (Shape{1}));
}

// torchvision's counts (torchvision.models.resnet18() etc.: sum of p.numel() over parameters()) for 1000
// classes; the shapes of every layer follow from them, batchnorm's weight and bias included.
TEST(ModelSpec, ResNetAndVggPresetsHaveTorchvisionsParameterCounts) {
  EXPECT_EQ(Model("resnet18", {3, 224, 224}, 1000, 0).parameter_count(), 11'689'512);
  EXPECT_EQ(Model("resnet50", {3, 224, 224}, 1000, 0).parameter_count(), 25'557'032);
  EXPECT_EQ(Model("resnet101", {3, 224, 224}, 1000, 0).parameter_count(), 44'549'160);
  EXPECT_EQ(Model("vgg16", {3, 224, 224}, 1000, 0).parameter_count(), 138'357'544);
  // He et al.'s CIFAR ResNet-20 with projection shortcuts, as bench/torch_resnet.py builds it.
  Model resnet20("resnet20", {1, 28, 28}, 10, 0);
  EXPECT_EQ(resnet20.parameter_count(), 272'186);
  EXPECT_EQ(resnet20.output_shape(), (Shape{10}));
  EXPECT_EQ(Model("resnet50", {3, 224, 224}, 1000, 0).layer_input_shape(5), (Shape{256, 56, 56}));
}

TEST(ModelSpec, ResidualBlocksNameTheirPartsAndRebuildFromTheirSpec) {
  const std::string spec =
      "conv(4,3,pad=1),residual(conv(4,3,pad=1,bias=0),batchnorm,relu,conv(4,3,pad=1)),relu,"
      "residual(conv(8,3,stride=2,pad=1),batchnorm,shortcut=conv(8,1,stride=2),batchnorm),globalavgpool,linear(out)";
  Model a(spec, {1, 8, 8}, 3, 1);
  Model b(a.spec(), {1, 8, 8}, 3, 1);
  EXPECT_EQ(a.spec(), b.spec());
  EXPECT_EQ(a.size(), 6u);  // the blocks are one layer each, so a pipeline cuts between them
  EXPECT_EQ(a.output_shape(), (Shape{3}));
  std::vector<std::string> names;
  for (const NamedParam& p : a.named_params()) names.push_back(p.name);
  const std::vector<std::string> expected = {
      "conv1/weight", "conv1/bias",
      "residual1/conv1/weight", "residual1/batchnorm1/weight", "residual1/batchnorm1/bias",
      "residual1/conv2/weight", "residual1/conv2/bias",
      "residual2/conv1/weight", "residual2/conv1/bias", "residual2/batchnorm1/weight", "residual2/batchnorm1/bias",
      "residual2/shortcut/conv1/weight", "residual2/shortcut/conv1/bias",
      "residual2/shortcut/batchnorm1/weight", "residual2/shortcut/batchnorm1/bias",
      "linear1/weight", "linear1/bias"};
  EXPECT_EQ(names, expected);
  EXPECT_EQ(a.named_buffers().back().name, "residual2/shortcut/batchnorm1/running_var");
  // params() lists the same tensors in the same order as named_params().
  ASSERT_EQ(a.params().size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) EXPECT_EQ(a.params()[i], a.named_params()[i].param) << names[i];
  // Nested blocks and a dropout's random stream below them.
  Model c("flatten,residual(linear(6),residual(linear(6),dropout(0.1)),relu)", {6}, 0, 1);
  EXPECT_EQ(c.named_params()[2].name, "residual1/residual1/linear1/weight");
  ASSERT_EQ(c.named_random_streams().size(), 1u);
  EXPECT_EQ(c.named_random_streams()[0].first, "residual1/residual1/dropout1/stream0");
}

TEST(ModelSpec, BadResidualSpecsSayWhereTheProblemIs) {
  EXPECT_NE(error_of("residual(conv(8,3,pad=1)),flatten,linear(out)")
                .find("layer 1 (residual): the body maps [1, 28, 28] to [8, 28, 28], which an identity shortcut "
                      "cannot add to; give a projection shortcut (shortcut=conv(8,1,stride=S),batchnorm)"),
            std::string::npos)
      << error_of("residual(conv(8,3,pad=1)),flatten,linear(out)");
  EXPECT_NE(error_of("conv(4,3),residual(conv(4,3,stride=2,pad=1),shortcut=conv(4,1)),flatten,linear(out)")
                .find("layer 2 (residual): the body gives [4, 13, 13] but the shortcut gives [4, 26, 26]"),
            std::string::npos);
  EXPECT_NE(error_of("conv(4,3),residual(conv(4,3,pad=1),batchnorm(mom=1)),flatten,linear(out)")
                .find("layer 2 (residual): body layer 2 'batchnorm(mom=1)': batchnorm has no argument 'mom'"),
            std::string::npos);
  EXPECT_NE(error_of("conv(4,3),residual(conv(4,3,pad=1),shortcut=conv(4,1,strid=2)),flatten,linear(out)")
                .find("shortcut layer 1 'conv(4,1,strid=2)': conv has no argument 'strid'"),
            std::string::npos);
  EXPECT_NE(error_of("residual(conv(8,3,pad=1)").find("missing ')' for the '(' at character 9"), std::string::npos);
  EXPECT_NE(error_of("residual(relu))").find("unbalanced ')' at character 15"), std::string::npos);
  EXPECT_NE(error_of("residual(shortcut=relu),flatten,linear(out)").find("at least one layer in its body"),
            std::string::npos);
  EXPECT_NE(error_of("residual(relu,shortcut=relu,shortcut=relu)").find("a second 'shortcut='"), std::string::npos);
  EXPECT_NE(error_of("residual(relu,stride=2)").find("residual has no argument 'stride'"), std::string::npos);
  EXPECT_NE(error_of("resnet34").find("unknown preset 'resnet34' (presets: cnn, gpt-tiny, gpt2-124m, linreg, mlp, "
                                      "resnet101, resnet18, "
                                      "resnet20, resnet50, vgg16)"),
            std::string::npos);
  EXPECT_NE(error_of("flatten,resnet34").find("unknown layer 'resnet34'"), std::string::npos);
  // A hostile spec: nesting beyond the bound, and a page of text, answer with one short line.
  std::string deep;
  for (int i = 0; i < 40; ++i) deep += "residual(";
  deep += "relu" + std::string(40, ')');
  const std::string too_deep = error_of(deep);
  EXPECT_NE(too_deep.find("brackets nest more than 32 deep (blocks within blocks)"), std::string::npos) << too_deep;
  EXPECT_LT(too_deep.size(), 300u);
  std::string wide(100000, 'x');
  EXPECT_LT(error_of("flatten," + wide + "(1),linear(out)").size(), 600u);
  EXPECT_NE(error_of("maxpool(3,pad=2),flatten,linear(out)").find("padding 2 is more than half its kernel 3"),
            std::string::npos);
  EXPECT_NE(error_of("globalavgpool,linear(out)", {12}).find("globalavgpool needs [channels, height, width]"),
            std::string::npos);
}

TEST(ModelSpec, CanonicalSpecRebuildsTheSameModel) {
  Model a("conv(3,3,stride=2,pad=1,bias=0),batchnorm,tanh,avgpool(2),flatten,dropout(0.25),linear(out)", {2, 9, 9}, 4, 1);
  Model b(a.spec(), {2, 9, 9}, 4, 1);
  EXPECT_EQ(a.spec(), b.spec());
  ASSERT_EQ(a.named_params().size(), b.named_params().size());
  EXPECT_EQ(a.named_params()[0].name, "conv1/weight");
  EXPECT_EQ(a.named_buffers()[0].name, "batchnorm1/running_mean");
  // Activations with a parameter keep it; PyTorch's defaults when none is given.
  Model c("flatten,linear(8),leakyrelu(0.2),linear(8),elu,linear(8),gelu,linear(8),leakyrelu,linear(out)", {4}, 3, 1);
  EXPECT_EQ(c.spec(), Model(c.spec(), {4}, 3, 1).spec());
  for (const char* part : {"leakyrelu(0.200000003)", "elu(1)", "gelu", "leakyrelu(0.00999999978)"})
    EXPECT_NE(c.spec().find(part), std::string::npos) << c.spec();
}

TEST(ModelSpec, BadSpecsNameTheProblem) {
  EXPECT_NE(error_of("conv(32,5").find("missing ')'"), std::string::npos);
  EXPECT_NE(error_of("flatten,linear(10)),relu").find("unbalanced"), std::string::npos);
  EXPECT_NE(error_of("flatten,lineer(10)").find("unknown layer 'lineer'"), std::string::npos);
  EXPECT_NE(error_of("flatten,linear(-3)").find("integer from 1 to 2147483647"), std::string::npos);
  EXPECT_NE(error_of("flatten,linear(10,size=3)").find("no argument 'size'"), std::string::npos);
  EXPECT_NE(error_of("flatten,linear(7)").find("produces 7 outputs per sample but the data needs 10"),
            std::string::npos);
  EXPECT_NE(error_of("flatten,conv(4,3),linear(out)").find("conv needs image input [channels, height, width], got ["), std::string::npos);
  EXPECT_NE(error_of("maxpool(64),flatten,linear(out)").find("larger than its input"), std::string::npos);
  EXPECT_NE(error_of("dropout(1.5),flatten,linear(out)").find("'p' must be a number"), std::string::npos);
  EXPECT_NE(error_of("flatten,leakyrelu(-1),linear(out)").find("'negative_slope' must be a number in [0"), std::string::npos);
  EXPECT_NE(error_of("flatten,elu(alpha=-1),linear(out)").find("'alpha' must be a number in [0"), std::string::npos);
  EXPECT_NE(error_of("flatten,gelu(1),linear(out)").find("gelu"), std::string::npos);
  EXPECT_NE(error_of("flatten,,linear(out)").find("empty layer"), std::string::npos);
  EXPECT_NE(error_of("").find("empty"), std::string::npos);
  EXPECT_EQ(error_of("flatten,linear(out)"), "");
}

// Linux grants more memory than the node has and kills the process when it touches it, without a word: a
// buffer beyond what is available is refused up front, saying how large it was and what it was for.
TEST(Model, ALayerTooLargeForTheMachineIsNamedWithItsSize) {
  const size_t available = available_host_bytes();
  try {
    Model("flatten,linear(2000000000),relu,linear(out)", {1, 4, 4}, 3, 0);
    FAIL() << "a 128 GB layer was built";
  } catch (const OutOfMemory& e) {
    EXPECT_EQ(std::string(e.what()).rfind("the model's layer linear1 on input [16]: cannot allocate 128.0 GB of host "
                                          "memory: ", 0), 0u) << e.what();
  }
  EXPECT_THROW(allocate_host(available + (size_t{1} << 30)), OutOfMemory);
  EXPECT_THROW(Tensor({int64_t{1} << 40, int64_t{1} << 40}), OutOfMemory) << "a size that wraps is no small buffer";
  EXPECT_EQ(memory_size(size_t{9400} << 20), "9.9 GB");
  EXPECT_EQ(memory_size(size_t{512} << 20), "537 MB");
}

TEST(Model, SameSeedSameWeightsDifferentSeedDifferent) {
  Model a("mlp", {1, 28, 28}, 10, 5), b("mlp", {1, 28, 28}, 10, 5), c("mlp", {1, 28, 28}, 10, 6);
  const Tensor& wa = a.params()[0]->value;
  const Tensor& wb = b.params()[0]->value;
  const Tensor& wc = c.params()[0]->value;
  EXPECT_EQ(0, std::memcmp(wa.data(), wb.data(), sizeof(float) * static_cast<size_t>(wa.numel())));
  EXPECT_NE(0, std::memcmp(wa.data(), wc.data(), sizeof(float) * static_cast<size_t>(wa.numel())));
}

// The model folds each ReLU into the epilogue of the layer before it (conv, batchnorm, a residual block's
// sum); the same layers run unfolded, the ReLU as a layer of its own, must agree exactly.
void expect_folded_relu_is_bitwise_the_plain_one(const std::string& layer_spec, const Shape& sample) {
  Model m(layer_spec + ",relu", sample, 0, 4);
  auto plain = make_layer(parse_model_spec(layer_spec).front(), 0);
  Activation relu(ActivationKind::relu);
  Rng init(4);
  relu.build(plain->build(sample, init), init);
  plain->set_input_grad_needed(false);
  Shape batch = sample;
  batch.insert(batch.begin(), 2);
  const Tensor x = test::random_tensor(batch, 5);
  const Tensor folded = m.forward(x, Mode::train);
  const Tensor unfolded = relu.forward(plain->forward(x, Mode::train), Mode::train);
  ASSERT_EQ(folded.numel(), unfolded.numel()) << layer_spec;
  EXPECT_EQ(0, std::memcmp(folded.data(), unfolded.data(), sizeof(float) * static_cast<size_t>(folded.numel())))
      << layer_spec;
  const Tensor dy = test::random_tensor(folded.shape(), 6);
  m.zero_grad();
  m.backward(dy);
  plain->backward(relu.backward(dy));
  ASSERT_EQ(m.params().size(), plain->params().size());
  for (size_t i = 0; i < m.params().size(); ++i) {
    const Tensor& a = m.params()[i]->grad;
    const Tensor& b = plain->params()[i]->grad;
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), sizeof(float) * static_cast<size_t>(a.numel()))) << layer_spec << i;
  }
}

TEST(Model, FoldedRelusGiveBitwiseTheSameResults) {
  expect_folded_relu_is_bitwise_the_plain_one("conv(3,3,pad=1)", {2, 5, 5});
  expect_folded_relu_is_bitwise_the_plain_one("batchnorm", {2, 5, 5});
  expect_folded_relu_is_bitwise_the_plain_one("residual(conv(2,3,pad=1),batchnorm,relu,conv(2,3,pad=1),batchnorm)",
                                              {2, 5, 5});
}

TEST(Model, WholeModelGradientMatchesNumeric) {
  // The chain through every layer kind at once: d loss / d first weight by central differences.
  // Smooth layers only (kinked ones are checked alone, on inputs kept away from their kinks).
  Model m("conv(2,3,pad=1),sigmoid,avgpool(2),batchnorm,flatten,linear(5),tanh,linear(out)", {1, 6, 6}, 3, 2);
  SoftmaxCrossEntropy loss;
  Tensor x = test::random_tensor({4, 1, 6, 6}, 3);
  Targets t;
  t.labels = {0, 1, 2, 1};
  m.zero_grad();
  loss.forward(m.forward(x, Mode::train), t);
  m.backward(loss.backward(1.0f));
  Param* w = m.params()[0];
  const float eps = 1e-2f;
  for (int64_t i = 0; i < w->value.numel(); ++i) {
    const float saved = w->value[i];
    w->value[i] = saved + eps;
    const double up = test::score_of(loss, m.forward(x, Mode::train), t).loss();
    w->value[i] = saved - eps;
    const double down = test::score_of(loss, m.forward(x, Mode::train), t).loss();
    w->value[i] = saved;
    EXPECT_NEAR((up - down) / (2 * eps), w->grad[i], 2e-3) << "weight " << i;
  }
}

}  // namespace
}  // namespace ringtrain
