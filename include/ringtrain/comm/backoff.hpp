// Polling without hogging a core. A rank waiting for a peer that is still computing shares the machine with
// compute (2 ranks on 2 cores, or a training thread beside a progress thread), and MPI's own waits spin at
// 100%: so poll busily for `spin`, then nap between polls, 20 us doubling up to 250 us.
#pragma once
#include <chrono>

namespace ringtrain {

class Backoff {
 public:
  explicit Backoff(std::chrono::microseconds spin = std::chrono::microseconds(20))
      : spin_(spin), start_(Clock::now()) {}
  // Nothing to do this round: spin on while young, else nap.
  void idle();
  // Something happened: the next wait spins first again.
  void reset() {
    start_ = Clock::now();
    nap_ns_ = kFirstNapNs;
  }

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr long kFirstNapNs = 20'000, kLongestNapNs = 250'000;
  std::chrono::microseconds spin_;
  Clock::time_point start_;
  long nap_ns_ = kFirstNapNs;
};

}  // namespace ringtrain
