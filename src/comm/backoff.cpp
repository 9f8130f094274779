#include "ringtrain/comm/backoff.hpp"

#include <time.h>

#include <algorithm>

namespace ringtrain {

void Backoff::idle() {
  if (Clock::now() - start_ < spin_) return;
  const timespec nap{0, nap_ns_};
  nanosleep(&nap, nullptr);
  nap_ns_ = std::min(2 * nap_ns_, kLongestNapNs);
}

}  // namespace ringtrain
