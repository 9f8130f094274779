// ringtrain generate on a tiny untrained byte-level model saved to a file: the seed decides the text,
// temperature 0 and top-k 1 take the most likely byte whatever the seed, a prompt longer than the context is
// cut to its last window, and bytes that make no UTF-8 print as U+FFFD.
#include <gtest/gtest.h>

#include <sstream>

#include "ringtrain/nn/model.hpp"
#include "ringtrain/tensor/text.hpp"
#include "ringtrain/train/generate.hpp"
#include "ringtrain/train/model_file.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

constexpr int64_t kContext = 16;
const std::string kReplacement = "\xef\xbf\xbd";  // U+FFFD

class Generate : public ::testing::Test {
 protected:
  // An untrained model: its scores are nearly equal, so draws at temperature 1 are spread over all 256 bytes.
  // `favourite` >= 0 makes that byte the most likely at every position (a large bias on its score).
  std::string save_byte_model(int favourite = -1) {
    Model model("embedding(out,8,context=16),block(2),layernorm,linear(out,per_token=1)", {kContext}, 256, 11);
    if (favourite >= 0) {
      Param* bias = nullptr;
      for (const NamedParam& p : model.named_params(model.size() - 1))
        if (p.name.ends_with("/bias")) bias = p.param;
      if (!bias) ADD_FAILURE() << "the output layer has no bias";
      else bias->value[favourite] = 10.0f;
    }
    const std::string path = dir_.path("lm" + std::to_string(favourite) + ".h5");
    save_model(path, model, TargetSpace{}, InputTransform{});
    return path;
  }

  // The bytes drawn, and what was printed in `printed`.
  std::string generate(GenerateConfig c, std::string* printed = nullptr) {
    if (c.model_file.empty()) c.model_file = model_;
    std::ostringstream out;
    const std::string drawn = generate_text(c, out);
    EXPECT_EQ(static_cast<int64_t>(drawn.size()), c.tokens);
    if (printed) *printed = out.str();
    return drawn;
  }

  test::TempDir dir_;
  std::string model_ = save_byte_model();
};

TEST_F(Generate, TheSameSeedGivesTheSameText) {
  std::string a, b;
  EXPECT_EQ(generate({.prompt = "hi", .tokens = 24, .seed = 7}, &a), generate({.prompt = "hi", .tokens = 24, .seed = 7}, &b));
  EXPECT_EQ(a, b);
}

TEST_F(Generate, DifferentSeedsGiveDifferentText) {
  EXPECT_NE(generate({.tokens = 24, .seed = 1}), generate({.tokens = 24, .seed = 2}));
}

TEST_F(Generate, TemperatureZeroAndTopKOneTakeTheMostLikelyByteWhateverTheSeed) {
  const std::string greedy = generate({.prompt = "abc", .tokens = 12, .temperature = 0.0f, .seed = 1});
  EXPECT_EQ(generate({.prompt = "abc", .tokens = 12, .temperature = 0.0f, .seed = 2}), greedy);
  EXPECT_EQ(generate({.prompt = "abc", .tokens = 12, .top_k = 1, .seed = 3}), greedy);
}

TEST_F(Generate, APromptLongerThanTheContextContinuesFromItsLastWindow) {
  const std::string prompt(40, 'x');
  std::string printed;
  const std::string drawn = generate({.prompt = prompt, .tokens = 8, .temperature = 0.0f}, &printed);
  EXPECT_EQ(printed.rfind(prompt, 0), 0u) << "the prompt is printed first";
  // Only the last kContext bytes reach the model: another start before them changes nothing.
  EXPECT_EQ(generate({.prompt = "yy" + prompt, .tokens = 8, .temperature = 0.0f}), drawn);
}

TEST_F(Generate, BytesThatMakeNoUtf8PrintAsReplacementCharacters) {
  std::string printed;
  const std::string drawn = generate({.model_file = save_byte_model(0xff), .prompt = "ok", .tokens = 3,
                                      .temperature = 0.0f}, &printed);
  EXPECT_EQ(drawn, "\xff\xff\xff");
  EXPECT_EQ(printed, "ok" + kReplacement + kReplacement + kReplacement);
  // A byte drawn from all 256 is often no character (or a control byte): whatever comes, the text printed is
  // UTF-8.
  generate({.tokens = 64, .seed = 5}, &printed);
  EXPECT_FALSE(invalid_utf8_at(printed).has_value()) << printed;
  EXPECT_NE(printed.find(kReplacement), std::string::npos) << printed;
}

TEST_F(Generate, APrintableFavouriteIsPrintedAsItIs) {
  std::string printed;
  EXPECT_EQ(generate({.model_file = save_byte_model('a'), .tokens = 4, .temperature = 0.0f}, &printed), "aaaa");
  EXPECT_EQ(printed, "aaaa");
}

}  // namespace
}  // namespace ringtrain
