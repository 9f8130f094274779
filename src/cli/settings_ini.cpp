#include "settings_ini.hpp"

#include <charconv>
#include <cstdint>

#include "options.hpp"

namespace po = boost::program_options;

namespace ringtrain::cli {

namespace {

// The shortest text that reads back as the same number (0.1 for the float 0.1f, not 0.100000001).
template <typename T>
std::string number_text(T value) {
  char text[64];
  const auto [end, error] = std::to_chars(text, text + sizeof text, value);
  return error == std::errc() ? std::string(text, end) : std::string();
}

// The value as the option's parser reads it: a number, a switch's true or false, or the text.
std::string value_text(const boost::any& value, const std::string& key) {
  if (const auto* v = boost::any_cast<std::string>(&value)) return *v;
  if (const auto* v = boost::any_cast<bool>(&value)) return *v ? "true" : "false";
  if (const auto* v = boost::any_cast<float>(&value)) return number_text(*v);
  if (const auto* v = boost::any_cast<double>(&value)) return number_text(*v);
  if (const auto* v = boost::any_cast<int>(&value)) return number_text(*v);
  if (const auto* v = boost::any_cast<long>(&value)) return number_text(*v);
  if (const auto* v = boost::any_cast<long long>(&value)) return number_text(*v);
  if (const auto* v = boost::any_cast<unsigned long>(&value)) return number_text(*v);
  if (const auto* v = boost::any_cast<unsigned long long>(&value)) return number_text(*v);
  throw UsageError("--" + key + " has a value settings.ini cannot record");  // a list flag: none of train's
}

// Boost's INI reader ends a line's value at '#' (a comment) and trims spaces from its ends.
void check_ini_value(const std::string& key, const std::string& text) {
  const bool unreadable = text.find_first_of("#\n\r") != std::string::npos ||
                          (!text.empty() && (text.front() == ' ' || text.front() == '\t' || text.back() == ' ' ||
                                             text.back() == '\t'));
  if (unreadable)
    throw UsageError("--" + key + " '" + text + "' cannot be recorded in settings.ini: an INI value holds no '#' or "
                     "line break and does not start or end with a space");
}

}  // namespace

std::string settings_ini(const po::options_description& options, const po::variables_map& vm,
                         const std::set<std::string>& leave_out) {
  std::string ini;
  for (const auto& option : options.options()) {
    const std::string& key = option->long_name();
    if (leave_out.count(key) || !vm.count(key)) continue;
    const std::string text = value_text(vm[key].value(), key);
    check_ini_value(key, text);
    ini += key + " = " + text + "\n";
  }
  return ini;
}

}  // namespace ringtrain::cli
