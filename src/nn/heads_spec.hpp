// The canonical spec text of a layer made of attention heads with an optional dropout (attention, block):
// "block(4)", "attention(4,dropout=0.1)". Dropout prints with 9 digits so that the spec rebuilds it exactly.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>

namespace ringtrain {

inline std::string heads_spec(const char* kind, int64_t heads, float dropout) {
  if (dropout == 0.0f) return std::string(kind) + "(" + std::to_string(heads) + ")";
  char text[96];
  std::snprintf(text, sizeof text, "%s(%lld,dropout=%.9g)", kind, static_cast<long long>(heads),
                static_cast<double>(dropout));
  return text;
}

}  // namespace ringtrain
