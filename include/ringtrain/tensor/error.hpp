// One exception type for every user-facing failure: its message is the whole one-line error the CLI prints.
#pragma once
#include <stdexcept>
#include <string>

namespace ringtrain {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// An error every rank of the job raises at the same point with the same message (ranks disagree on the
// configuration, a tensor differs in size across ranks...): rank 0 reports it and every rank exits normally,
// with no MPI_Abort. Any other Error may be one rank's alone, and that rank takes the job down.
class CollectiveError : public Error {
 public:
  using Error::Error;
};

// An allocation that cannot be made, saying how large it was; code that knows what it was for adds that.
class OutOfMemory : public Error {
 public:
  using Error::Error;
};

}  // namespace ringtrain
