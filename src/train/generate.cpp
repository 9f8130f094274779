#include "ringtrain/train/generate.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <ostream>
#include <vector>

#include "ringtrain/tensor/blas.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/rng.hpp"
#include "ringtrain/tensor/text.hpp"
#include "ringtrain/train/model_file.hpp"

namespace ringtrain {

namespace {

constexpr int64_t kByteVocabulary = 256;

// The model's context: a byte-level language model maps [T] tokens to [T, 256] next-token scores.
int64_t byte_model_context(const Model& model, const std::string& path) {
  const Shape& in = model.input_shape();
  const Shape& out = model.output_shape();
  if (in.size() != 1 || out != Shape{in[0], kByteVocabulary})
    throw Error("'" + path + "' is not a byte-level language model: it maps " + shape_str(in) + " to " + shape_str(out) +
                ", and generate needs one trained on `prep --format text` shards ([T] tokens to [T, 256])");
  return in[0];
}

// The next byte from the scores of every byte: the most likely at temperature 0, else a draw from
// softmax(scores / temperature) over the top_k most likely (all when top_k is 0 or covers them all).
int draw_byte(const float* scores, const GenerateConfig& c, Rng& rng) {
  std::vector<int> order(kByteVocabulary);
  std::iota(order.begin(), order.end(), 0);
  // Ties keep the lower byte first, so a draw does not depend on the sort.
  const auto likelier = [&](int a, int b) { return scores[a] > scores[b] || (scores[a] == scores[b] && a < b); };
  if (c.temperature == 0.0f) return *std::min_element(order.begin(), order.end(), likelier);
  const int64_t k = c.top_k > 0 ? std::min(c.top_k, kByteVocabulary) : kByteVocabulary;
  std::partial_sort(order.begin(), order.begin() + k, order.end(), likelier);
  std::vector<double> weight(static_cast<size_t>(k));
  const double top = scores[order[0]];
  for (int64_t i = 0; i < k; ++i)
    weight[static_cast<size_t>(i)] = std::exp((scores[order[static_cast<size_t>(i)]] - top) / c.temperature);
  double u = static_cast<double>(rng.uniform()) * std::accumulate(weight.begin(), weight.end(), 0.0);
  for (int64_t i = 0; i < k; ++i)
    if ((u -= weight[static_cast<size_t>(i)]) < 0.0) return order[static_cast<size_t>(i)];
  return order[static_cast<size_t>(k - 1)];  // u landed on the sum's last rounding
}

// Bytes to a terminal, a character at a time: a model may draw bytes that make no UTF-8, or control bytes a
// terminal would obey; each such byte prints as U+FFFD. Holds the start of a character until it is whole.
class TerminalText {
 public:
  explicit TerminalText(std::ostream& out) : out_(out) {}
  ~TerminalText() { flush(); }

  void put(char byte) {
    pending_ += byte;
    while (!pending_.empty()) {
      const size_t need = utf8_length_from_lead(static_cast<unsigned char>(pending_[0]));
      if (need > pending_.size()) return;  // the rest of the character is still to come
      const size_t n = need ? utf8_sequence_length(pending_) : 0;
      if (n == 0 || !printable(pending_.substr(0, n))) {
        out_ << "\xef\xbf\xbd";
        pending_.erase(0, 1);
      } else {
        out_ << pending_.substr(0, n);
        pending_.erase(0, n);
      }
    }
  }
  void flush() {
    for (size_t i = 0; i < pending_.size(); ++i) out_ << "\xef\xbf\xbd";  // a character the text ended inside
    pending_.clear();
    out_.flush();
  }

 private:
  // Not a C0 control but line breaks and tabs, not DEL, not a C1 control (U+0080..U+009F).
  static bool printable(const std::string& c) {
    const auto b = static_cast<unsigned char>(c[0]);
    if (c.size() == 1) return b == '\n' || b == '\t' || (b >= 0x20 && b != 0x7f);
    return !(b == 0xc2 && static_cast<unsigned char>(c[1]) < 0xa0);
  }

  std::ostream& out_;
  std::string pending_;
};

}  // namespace

std::string generate_text(const GenerateConfig& c, std::ostream& out) {
  set_compute_threads(c.threads);
  LoadedModel loaded = load_model(c.model_file);
  Model& model = *loaded.model;
  const int64_t context = byte_model_context(model, c.model_file);
  std::string text = c.prompt.empty() ? std::string("\n") : c.prompt;
  TerminalText terminal(out);
  for (const char byte : c.prompt) terminal.put(byte);

  // Each step runs the model over the last `context` bytes, placed from position 0; the positions after them
  // hold zeros, which causal attention keeps from reaching the last byte's scores.
  Tensor window({1, context});
  Rng rng(derive_seed(c.seed, /*stream=*/0));
  std::string drawn;
  for (int64_t t = 0; t < c.tokens; ++t) {
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(text.size()), context);
    const size_t first = text.size() - static_cast<size_t>(n);
    window.fill(0.0f);
    for (int64_t i = 0; i < n; ++i) window[i] = static_cast<unsigned char>(text[first + static_cast<size_t>(i)]);
    const Tensor& scores = model.forward(window, Mode::eval);
    const char byte = static_cast<char>(draw_byte(scores.data() + (n - 1) * kByteVocabulary, c, rng));
    text += byte;
    drawn += byte;
    terminal.put(byte);
  }
  terminal.flush();
  return drawn;
}

}  // namespace ringtrain
