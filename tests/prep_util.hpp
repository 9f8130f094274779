// Helpers of the prep tests (test_prep.cpp, test_prep_like.cpp).
#pragma once
#include <string>

#include "ringtrain/data/prep.hpp"
#include "test_util.hpp"

namespace ringtrain::test {

// The one-line error prep(c) throws, or "" when the input converts.
inline std::string prep_error(const PrepConfig& c) {
  return error_of([&] { prep(c); });
}

}  // namespace ringtrain::test
