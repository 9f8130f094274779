// One exception type for every user-facing failure: its message is the whole one-line error the CLI prints.
#pragma once
#include <stdexcept>
#include <string>

namespace ringtrain {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace ringtrain
