// Words for numbers and quotes of user text in what the program prints and writes: "1 thread", "2 threads",
// a JSON string; and where text is not UTF-8.
#pragma once
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

namespace ringtrain {

// n and the noun, plural unless n is 1; nouns ending in s, x or sh take "es" ("1 class", "2 classes").
inline std::string counted(int64_t n, std::string_view noun) {
  std::string out = std::to_string(n) + " " + std::string(noun);
  if (n == 1) return out;
  const bool es = noun.ends_with("s") || noun.ends_with("x") || noun.ends_with("sh");
  return out + (es ? "es" : "s");
}

// `text` as quoted in a one-line message: whole when short, else its start and "..." (a spec of kilobytes,
// or a hostile one, must not turn an error into a page).
inline std::string excerpt(std::string_view text, size_t max = 120) {
  if (text.size() <= max) return std::string(text);
  return std::string(text.substr(0, max - 3)) + "...";
}

// `word` as one word of a POSIX shell's command line: as it is when that is safe, else in single quotes.
inline std::string shell_word(std::string_view word) {
  const bool plain = !word.empty() && word.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                             "0123456789_-+=.,/:@%") == std::string_view::npos;
  if (plain) return std::string(word);
  std::string quoted = "'";
  for (const char c : word) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// `text` as a JSON string, quotes included: '"' and '\\' escaped, control bytes as \u00XX (other bytes, UTF-8
// among them, as they are).
inline std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// The shortest text that reads back as the same float (written predictions: "0.25", not "0.250000000").
inline std::string float_text(float v) {
  char text[32];
  const auto end = std::to_chars(text, text + sizeof text, v).ptr;
  return std::string(text, end);
}

// `text` as a CSV field: quoted when it holds a separator, a quote or a line break (RFC 4180).
inline std::string csv_field(std::string_view text) {
  if (text.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(text);
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// The length of the UTF-8 sequence that a byte begins (1 to 4), or 0 when no well-formed sequence begins with it.
size_t utf8_length_from_lead(unsigned char lead);
// The length of the well-formed UTF-8 sequence that starts `text` (RFC 3629: no overlong forms, no surrogates,
// nothing above U+10FFFF), or 0 when it starts with none.
size_t utf8_sequence_length(std::string_view text);
// Whether all of `text` is the start of a well-formed sequence that it ends before finishing: a file cut inside
// a character, rather than one holding a byte that no character has there.
bool utf8_cut_short(std::string_view text);
// Where `text` stops being well-formed UTF-8: the offset of the first byte of the first bad sequence, or none.
std::optional<size_t> invalid_utf8_at(std::string_view text);

}  // namespace ringtrain
