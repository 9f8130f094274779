// `ringtrain generate`: text from a saved byte-level language model (a model trained on `prep --format text`
// shards). The prompt's bytes are the first tokens; each next byte is drawn from the model's distribution at the
// last position, sharpened or flattened by the temperature and cut to the k most likely (top-k), from a
// generator seeded with --seed, so the same seed gives the same text.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <string>

namespace ringtrain {

struct GenerateConfig {
  std::string model_file;
  std::string prompt;        // UTF-8; empty: the text starts after a line break
  int64_t tokens = 256;      // bytes to generate
  float temperature = 1.0f;  // 0: always the most likely byte
  int64_t top_k = 0;         // 0: every byte may be drawn
  uint64_t seed = 0;
  int threads = 1;
};

// Prints the prompt and its continuation to `out` as the bytes are drawn (a byte that would not make UTF-8, or
// a control character other than a line break or tab, prints as U+FFFD), and returns the bytes drawn.
std::string generate_text(const GenerateConfig& config, std::ostream& out);

}  // namespace ringtrain
