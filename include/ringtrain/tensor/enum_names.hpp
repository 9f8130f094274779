// The one table of names for each setting's enum. The CLI reads a flag's text through it (parse_choice in
// src/cli), file readers a stored name (enum_from_name); everything else prints with name_of and never
// compares a setting's text. An enum takes part by
// declaring, beside itself, its table and `constexpr const auto& enum_names(E)` returning it (found by ADL).
#pragma once
#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace ringtrain {

template <typename E, size_t N>
using EnumNames = std::array<std::pair<E, std::string_view>, N>;

// The value's name in its table ("adam").
template <typename E>
std::string name_of(E value) {
  for (const auto& [e, name] : enum_names(E{}))
    if (e == value) return std::string(name);
  return "?";
}

// The value named `name`, or none.
template <typename E>
std::optional<E> enum_from_name(std::string_view name) {
  for (const auto& [e, n] : enum_names(E{}))
    if (n == name) return e;
  return std::nullopt;
}

// "sgd, adam or rmsprop": the choices, for messages and --help.
template <typename E>
std::string choices_of() {
  const auto& table = enum_names(E{});
  std::string text;
  for (size_t i = 0; i < table.size(); ++i)
    text += std::string(i == 0 ? "" : i + 1 == table.size() ? " or " : ", ") + std::string(table[i].second);
  return text;
}

}  // namespace ringtrain
