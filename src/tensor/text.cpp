#include "ringtrain/tensor/text.hpp"

namespace ringtrain {

size_t utf8_length_from_lead(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  return lead >= 0xf0 && lead <= 0xf4 ? 4 : 0;
}

namespace {

// How many of text's first `length` bytes (its lead's sequence) are there and fit it, the lead included. The
// second byte's range rules out overlong forms (E0, F0), surrogates (ED) and code points above U+10FFFF (F4),
// as RFC 3629's table has it; later bytes are any continuation byte.
size_t fitting_bytes(std::string_view text, size_t length) {
  const auto lead = static_cast<unsigned char>(text[0]);
  const unsigned char low = lead == 0xe0 ? 0xa0 : lead == 0xf0 ? 0x90 : 0x80;
  const unsigned char high = lead == 0xed ? 0x9f : lead == 0xf4 ? 0x8f : 0xbf;
  size_t i = 1;
  for (; i < length && i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (i == 1 ? byte < low || byte > high : (byte & 0xc0) != 0x80) break;
  }
  return i;
}

}  // namespace

size_t utf8_sequence_length(std::string_view text) {
  if (text.empty()) return 0;
  const size_t length = utf8_length_from_lead(static_cast<unsigned char>(text[0]));
  return length > 0 && fitting_bytes(text, length) == length ? length : 0;
}

bool utf8_cut_short(std::string_view text) {
  if (text.empty()) return false;
  const size_t length = utf8_length_from_lead(static_cast<unsigned char>(text[0]));
  return length > text.size() && fitting_bytes(text, length) == text.size();
}

std::optional<size_t> invalid_utf8_at(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const size_t n = utf8_sequence_length(text.substr(i));
    if (n == 0) return i;
    i += n;
  }
  return std::nullopt;
}

}  // namespace ringtrain
