// libFuzzer: any input as `ringtrain train`'s flags (one per line) or, when it starts with '[' or '#', as a
// --config INI file. parse_train must return a config or throw UsageError (or Error), never crash, overflow
// or invoke undefined behaviour. (--help prints the options to stdout, which the test discards.)
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "options.hpp"
#include "ringtrain/tensor/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> args;
  if (!text.empty() && (text[0] == '[' || text[0] == '#')) {
    static const std::string path = "/tmp/ringtrain-fuzz-config-" + std::to_string(::getpid()) + ".ini";
    std::ofstream(path, std::ios::binary) << text;
    args = {"--config", path};
  } else {
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) args.push_back(line);
  }
  try {
    ringtrain::cli::parse_train(args);
  } catch (const ringtrain::cli::UsageError&) {
  } catch (const ringtrain::Error&) {
  }
  return 0;
}
