// The GPT layers (embedding, layernorm, causal attention, the transformer block, per-token and tied linear):
// numeric gradient checks, causality, the token and context errors, the presets' sizes, dropout streams; and
// the reference file tests/transformer_vs_torch.py compares with PyTorch.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>

#include "ringtrain/data/hdf5.hpp"
#include "ringtrain/nn/attention.hpp"
#include "ringtrain/nn/embedding.hpp"
#include "ringtrain/nn/layernorm.hpp"
#include "ringtrain/nn/linear.hpp"
#include "ringtrain/nn/model.hpp"
#include "ringtrain/nn/transformer_block.hpp"
#include "ringtrain/tensor/error.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

using test::gradient_error;
using test::kGradientTolerance;
using test::random_tensor;


// Token ids in [0, vocabulary) as the model reads them: floats, [batch, T].
Tensor tokens(int64_t batch, int64_t t_len, int64_t vocabulary, uint64_t seed) {
  Rng rng(seed);
  Tensor x({batch, t_len});
  for (int64_t i = 0; i < x.numel(); ++i) x[i] = static_cast<float>(rng.below(static_cast<uint64_t>(vocabulary)));
  return x;
}

void check_all_gradients(Layer& layer, Tensor& x) {
  EXPECT_LT(gradient_error(layer, x, nullptr), kGradientTolerance) << layer.spec() << " input gradient";
  for (Param* p : layer.params())
    EXPECT_LT(gradient_error(layer, x, p), kGradientTolerance) << layer.spec() << " " << p->name;
}

// Draws the same dropout masks on every forward (its streams rewound first), so that a layer with dropout can
// be checked against central differences.
class SameMasks : public Layer {
 public:
  explicit SameMasks(Layer& inner) : inner_(inner) {}
  std::string kind() const override { return inner_.kind(); }
  std::string spec() const override { return inner_.spec(); }
  Shape build(const Shape& in, Rng& rng) override { return inner_.build(in, rng); }
  const Tensor& forward(const Tensor& x, Mode mode) override {
    for (uint64_t* s : inner_.random_streams()) *s = 0;
    return inner_.forward(x, mode);
  }
  const Tensor& backward(const Tensor& dy) override { return inner_.backward(dy); }
  ForwardState forward_state() override { return inner_.forward_state(); }
  std::vector<Param*> params() override { return inner_.params(); }

 private:
  Layer& inner_;
};

TEST(TransformerGradients, EmbeddingTables) {
  Embedding layer(7, 4, 6);
  Rng init(1);
  EXPECT_EQ(layer.build({5}, init), (Shape{5, 4}));
  Tensor x = tokens(3, 5, 7, 2);
  for (Param* p : layer.params()) EXPECT_LT(gradient_error(layer, x, p), kGradientTolerance) << p->name;
  EXPECT_EQ(layer.params()[0]->name, "token");
  EXPECT_EQ(layer.params()[1]->value.shape(), (Shape{6, 4}));
  EXPECT_TRUE(layer.params()[0]->kernel && layer.params()[1]->kernel);
}

TEST(TransformerGradients, LayerNorm) {
  LayerNorm layer;
  Rng init(1);
  layer.build({4, 6}, init);
  for (Param* p : layer.params())  // away from 1 and 0, so that their gradients matter
    for (int64_t i = 0; i < p->value.numel(); ++i) p->value[i] = 0.5f + 0.1f * static_cast<float>(i);
  Tensor x = random_tensor({3, 4, 6}, 3, -2.0f, 2.0f);
  check_all_gradients(layer, x);
}

// The weights scaled up from GPT-2's N(0, 0.02), so that attention is far from uniform and every path carries
// weight; biases and norms moved off 0 and 1. Not so far that central differences of step 1e-2 lose accuracy.
void sharpen(const std::vector<Param*>& params, float scale) {
  for (Param* p : params)
    for (int64_t i = 0; i < p->value.numel(); ++i) p->value[i] = p->value[i] * scale + (p->kernel ? 0.0f : 0.1f);
}

TEST(TransformerGradients, Attention) {
  Attention layer(2, 0.0f);
  Rng init(1);
  EXPECT_EQ(layer.build({5, 8}, init), (Shape{5, 8}));
  sharpen(layer.params(), 25.0f);
  Tensor x = random_tensor({2, 5, 8}, 3);
  check_all_gradients(layer, x);
}

TEST(TransformerGradients, AttentionOverSeveralRowBlocks) {
  Attention layer(2, 0.0f);  // 67 tokens: two blocks of query rows, the second partial
  Rng init(1);
  layer.build({67, 4}, init);
  sharpen(layer.params(), 25.0f);
  Tensor x = random_tensor({1, 67, 4}, 3);
  check_all_gradients(layer, x);
}

TEST(TransformerGradients, AttentionWithDropout) {
  Attention attention(2, 0.3f);
  SameMasks layer(attention);
  Rng init(1);
  layer.build({6, 8}, init);
  sharpen(attention.params(), 25.0f);
  Tensor x = random_tensor({2, 6, 8}, 3);
  check_all_gradients(layer, x);
}

TEST(TransformerGradients, Block) {
  TransformerBlock layer(2, 0.0f);
  Rng init(1);
  EXPECT_EQ(layer.build({5, 8}, init), (Shape{5, 8}));
  sharpen(layer.params(), 2.0f);  // more, and seven layers' curvature spoils central differences of step 1e-2
  Tensor x = random_tensor({2, 5, 8}, 3);
  check_all_gradients(layer, x);
}

TEST(TransformerGradients, BlockWithDropout) {
  TransformerBlock block(2, 0.2f);
  SameMasks layer(block);
  Rng init(1);
  layer.build({4, 8}, init);
  Tensor x = random_tensor({2, 4, 8}, 3);
  check_all_gradients(layer, x);
  EXPECT_EQ(block.random_streams().size(), 3u);  // attention's, and the two residual dropouts'
}

TEST(TransformerGradients, PerTokenLinear) {
  Linear layer(3, true, true, false);
  Rng init(1);
  EXPECT_EQ(layer.build({4, 5}, init), (Shape{4, 3}));
  Tensor x = random_tensor({2, 4, 5}, 3);
  check_all_gradients(layer, x);
  EXPECT_EQ(layer.spec(), "linear(3,per_token=1)");
  EXPECT_EQ(layer.flops_per_sample(), 6.0 * 4 * 5 * 3);
}

TEST(TransformerGradients, TiedHeadAddsIntoTheTokenTable) {
  Embedding embedding(6, 4, 8);
  Linear head(6, false, true, true);
  Rng init(1);
  embedding.build({5}, init);
  head.build({5, 4}, init);
  EXPECT_EQ(head.tied_weight_shape(), (Shape{6, 4}));
  EXPECT_TRUE(head.params().empty());
  Param* table = embedding.tied_weight_source();
  head.tie(table);
  Tensor x = random_tensor({2, 5, 4}, 3);
  EXPECT_LT(gradient_error(head, x, nullptr), kGradientTolerance);
  EXPECT_LT(gradient_error(head, x, table), kGradientTolerance);
}

// sum(w .* model(x)) against central differences for every `stride`-th element of every parameter.
double model_gradient_error(Model& model, const Tensor& x, int64_t stride) {
  const Tensor w = random_tensor(model.forward(x, Mode::train).shape(), 99);
  auto objective = [&] {
    const Tensor& y = model.forward(x, Mode::train);
    double s = 0.0;
    for (int64_t i = 0; i < y.numel(); ++i) s += static_cast<double>(w[i]) * y[i];
    return s;
  };
  model.zero_grad();
  model.forward(x, Mode::train);
  model.backward(w);
  double worst = 0.0;
  const float eps = 1e-2f;
  for (Param* p : model.params())
    for (int64_t i = 0; i < p->value.numel(); i += stride) {
      const float saved = p->value[i];
      p->value[i] = saved + eps;
      const double up = objective();
      p->value[i] = saved - eps;
      const double down = objective();
      p->value[i] = saved;
      const double numeric = (up - down) / (2.0 * eps), analytic = p->grad[i];
      worst = std::max(worst, std::fabs(numeric - analytic) / std::max(1.0, std::fabs(numeric) + std::fabs(analytic)));
    }
  return worst;
}

constexpr const char* kTiedNet = "embedding(out,8,context=8),block(2),layernorm,linear(out,per_token=1,bias=0,tied=1)";

TEST(TransformerModel, TiedModelGradientsAndNames) {
  Model model(kTiedNet, {6}, 11, 4);
  EXPECT_TRUE(model.has_tied_weights());
  EXPECT_EQ(model.tied_layers(), (std::vector<std::pair<size_t, size_t>>{{3, 0}}));
  EXPECT_EQ(model.output_shape(), (Shape{6, 11}));
  // The tied weight is counted once, under the embedding.
  const int64_t block = 2 * 8 + (24 * 8 + 24) + (8 * 8 + 8) + 2 * 8 + (32 * 8 + 32) + (8 * 32 + 8);
  EXPECT_EQ(model.parameter_count(), 11 * 8 + 8 * 8 + block + 2 * 8);
  std::vector<std::string> names;
  for (const NamedParam& p : model.named_params()) names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{
                       "embedding1/token", "embedding1/position", "block1/ln1/weight", "block1/ln1/bias",
                       "block1/attention/qkv_weight", "block1/attention/qkv_bias", "block1/attention/proj_weight",
                       "block1/attention/proj_bias", "block1/ln2/weight", "block1/ln2/bias", "block1/fc/weight",
                       "block1/fc/bias", "block1/proj/weight", "block1/proj/bias", "layernorm1/weight",
                       "layernorm1/bias"}));
  sharpen(model.layer(0).params(), 25.0f);  // LayerNorm's inputs of order 1: its curvature small for the step
  EXPECT_LT(model_gradient_error(model, tokens(2, 6, 11, 5), 3), kGradientTolerance);
  EXPECT_EQ(Model(model.spec(), {6}, 11, 4).spec(), model.spec());
}

TEST(TransformerModel, LaterTokensDoNotChangeEarlierOutputs) {
  Model model("embedding(out,8,context=80),block(2),block(4),layernorm,linear(out,per_token=1)", {70}, 13, 2);
  Tensor x = tokens(1, 70, 13, 3);
  const Tensor before = model.forward(x, Mode::eval);
  x[66] = x[66] == 0.0f ? 1.0f : 0.0f;
  const Tensor& after = model.forward(x, Mode::eval);
  for (int64_t i = 0; i < 66 * 13; ++i) ASSERT_EQ(before[i], after[i]) << "position " << i / 13;
  bool changed = false;
  for (int64_t i = 66 * 13; i < 70 * 13; ++i) changed |= before[i] != after[i];
  EXPECT_TRUE(changed);
  // A shorter window (generation's prompt) runs through the same model and gives the same first positions.
  Tensor first({1, 66});
  for (int64_t i = 0; i < 66; ++i) first[i] = x[i];
  const Tensor& shorter = model.forward(first, Mode::eval);
  ASSERT_EQ(shorter.shape(), (Shape{1, 66, 13}));
  for (int64_t i = 0; i < 66 * 13; ++i) ASSERT_NEAR(before[i], shorter[i], 1e-5) << "position " << i / 13;
}

TEST(TransformerModel, RefusesTokensOutsideTheVocabularyAndLongContexts) {
  Embedding layer(256, 4, 8);
  Rng init(1);
  layer.build({8}, init);
  Tensor x = tokens(2, 8, 256, 1);
  x[13] = 300.0f;
  EXPECT_EQ(test::error_of([&] { layer.forward(x, Mode::train); }),
            "token id 300 at position 5 is outside the vocabulary of 256");
  x[13] = 2.5f;
  EXPECT_EQ(test::error_of([&] { layer.forward(x, Mode::train); }),
            "token id 2.5 at position 5 is outside the vocabulary of 256");
  x[13] = -1.0f;
  EXPECT_NE(test::error_of([&] { layer.forward(x, Mode::train); }), "");
  const std::string long_context = test::error_of([] {
    Model("embedding(out,8,context=128),block(2),layernorm,linear(out,per_token=1)", {256}, 10, 0);
  });
  EXPECT_NE(long_context.find("the data's context of 256 tokens is longer than the model's 128 (embedding "
                              "context=128)"),
            std::string::npos)
      << long_context;
}

TEST(TransformerModel, SpecErrorsNameTheLayer) {
  auto error = [](const std::string& spec, int64_t outputs = 10) {
    return test::error_of([&] { Model(spec, {6}, outputs, 0); });
  };
  EXPECT_NE(error("embedding(out,8,context=8),block(3)").find("layer 2 'block(3)': attention: 3 heads do not divide 8 "
                                                             "channels"),
            std::string::npos);
  EXPECT_NE(error("embedding(out,8,context=8),attention(5)").find("5 heads do not divide 8"), std::string::npos);
  EXPECT_NE(error("embedding(out,8,context=8),block(2,drop=0.1)").find("block has no argument 'drop'"),
            std::string::npos);
  EXPECT_NE(error("embedding(out,8,context=8),block(2,dropout=1.5)").find("'dropout' must be a number in"),
            std::string::npos);
  EXPECT_NE(error("embedding(out,8,context=8),layernorm(eps=x)").find("'eps' must be a number"), std::string::npos);
  EXPECT_NE(error("embedding(out,8),layernorm").find("embedding needs 'context'"), std::string::npos);
  EXPECT_NE(error("embedding(out,8,context=8),linear(out,tied=1)").find("tied=1 needs per_token=1"),
            std::string::npos);
  const std::string mismatch = error("embedding(20,8,context=8),linear(out,per_token=1,tied=1)");
  EXPECT_NE(mismatch.find("layer 2 'linear(10,per_token=1,tied=1)' needs a weight of [10, 8]"), std::string::npos)
      << mismatch;
  EXPECT_NE(mismatch.find("layer 1 'embedding(20,8,context=8)' has a token table of [20, 8]"), std::string::npos);
  EXPECT_NE(error("block(2)").find("block takes [T, C]"), std::string::npos);
}

TEST(TransformerModel, Gpt2PresetHasThePublishedParameterCount) {
  Model model("gpt2-124m", {1024}, 50257, 0);
  EXPECT_EQ(model.parameter_count(), 124'439'808);
  EXPECT_EQ(model.output_shape(), (Shape{1024, 50257}));
  EXPECT_EQ(model.size(), 15u);  // embedding, 12 blocks, layernorm, head: the pipeline cuts between them
  EXPECT_TRUE(model.has_tied_weights());
}

TEST(TransformerModel, GptTinyTrainsAStep) {
  Model model("gpt-tiny", {16}, 256, 0);
  EXPECT_FALSE(model.has_tied_weights());
  const Tensor x = tokens(2, 16, 256, 1);
  const Tensor& y = model.forward(x, Mode::train);
  ASSERT_EQ(y.shape(), (Shape{2, 16, 256}));
  model.zero_grad();
  model.backward(random_tensor(y.shape(), 2));
  for (const NamedParam& p : model.named_params()) {
    double norm = 0.0;
    for (int64_t i = 0; i < p.param->grad.numel(); ++i) norm += static_cast<double>(p.param->grad[i]) * p.param->grad[i];
    EXPECT_TRUE(std::isfinite(norm) && norm > 0.0) << p.name;
  }
}

TEST(TransformerModel, DropoutMasksFollowTheStreamPosition) {
  Model model("embedding(out,8,context=8),block(2,dropout=0.3),layernorm,linear(out,per_token=1)", {8}, 9, 1);
  const auto streams = model.named_random_streams();
  ASSERT_EQ(streams.size(), 3u);
  EXPECT_EQ(streams[0].first, "block1/attention/stream0");
  const Tensor x = tokens(2, 8, 9, 1);
  model.forward(x, Mode::train);
  std::vector<uint64_t> saved;
  for (const auto& s : streams) saved.push_back(*s.second);
  const Tensor first = model.forward(x, Mode::train);
  const Tensor second = model.forward(x, Mode::train);
  for (size_t k = 0; k < streams.size(); ++k) *streams[k].second = saved[k];
  const Tensor& again = model.forward(x, Mode::train);
  bool differ = false;
  for (int64_t i = 0; i < first.numel(); ++i) {
    ASSERT_EQ(first[i], again[i]);
    differ |= first[i] != second[i];
  }
  EXPECT_TRUE(differ);
}

// For tests/transformer_vs_torch.py, which runs this test with RINGTRAIN_TRANSFORMER_REFERENCE naming the file to
// write: a tied 2-block model's parameters (under their model-file names), the tokens, labels, logits, mean
// cross-entropy over every position and the gradients of that loss.
TEST(TransformerReference, WritesWeightsLogitsLossAndGradients) {
  const char* path = std::getenv("RINGTRAIN_TRANSFORMER_REFERENCE");
  if (!path) GTEST_SKIP() << "tests/transformer_vs_torch.py runs this one";
  const int64_t vocabulary = 11, batch = 2, t_len = 7;
  Model model("embedding(out,16,context=10),block(2),block(4),layernorm,linear(out,per_token=1,bias=0,tied=1)",
              {t_len}, vocabulary, 3);
  for (Param* p : model.params())  // GPT-2's initial biases and norms are 0 and 1: something less regular
    if (!p->kernel)
      for (int64_t i = 0; i < p->value.numel(); ++i) p->value[i] += 0.1f * std::sin(static_cast<float>(i));
  const Tensor x = tokens(batch, t_len, vocabulary, 4);
  const Tensor labels_f = tokens(batch, t_len, vocabulary, 5);
  const Tensor logits = model.forward(x, Mode::train);
  const int64_t rows = batch * t_len;
  Tensor dlogits(logits.shape());
  double loss = 0.0;
  std::vector<int64_t> labels(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    labels[static_cast<size_t>(r)] = static_cast<int64_t>(labels_f[r]);
    const float* z = logits.data() + r * vocabulary;
    double top = z[0], sum = 0.0;
    for (int64_t j = 1; j < vocabulary; ++j) top = std::max(top, static_cast<double>(z[j]));
    for (int64_t j = 0; j < vocabulary; ++j) sum += std::exp(z[j] - top);
    loss += (std::log(sum) + top - z[labels[static_cast<size_t>(r)]]) / static_cast<double>(rows);
    for (int64_t j = 0; j < vocabulary; ++j)
      dlogits[r * vocabulary + j] = static_cast<float>(
          (std::exp(z[j] - top) / sum - (j == labels[static_cast<size_t>(r)] ? 1.0 : 0.0)) / static_cast<double>(rows));
  }
  model.zero_grad();
  model.backward(dlogits);
  h5::H5Id file = h5::create_file(path);
  for (const NamedParam& p : model.named_params()) {
    h5::write_dataset(file.get(), "params/" + p.name, p.param->value.shape(), p.param->value.data());
    h5::write_dataset(file.get(), "grads/" + p.name, p.param->grad.shape(), p.param->grad.data());
  }
  h5::write_dataset(file.get(), "tokens", x.shape(), x.data());
  h5::write_dataset(file.get(), "labels", {batch, t_len}, labels.data());
  h5::write_dataset(file.get(), "logits", logits.shape(), logits.data());
  const float loss_f = static_cast<float>(loss);
  h5::write_dataset(file.get(), "loss", {1}, &loss_f);
  h5::write_attr(file.get(), "model_spec", model.spec());
}

}  // namespace
}  // namespace ringtrain
