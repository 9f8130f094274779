// Words for numbers in what the program prints: "1 thread", "2 threads".
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

}  // namespace ringtrain
