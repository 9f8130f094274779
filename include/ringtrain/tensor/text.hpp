// Words for numbers and quotes of user text in what the program prints: "1 thread", "2 threads".
#pragma once
#include <cstdint>
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

}  // namespace ringtrain
