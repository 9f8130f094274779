// A small platform-independent random generator (splitmix64). std:: distributions differ between
// standard libraries, and a seed must give the same run everywhere, so every random number ringtrain
// draws comes from this class.
#pragma once
#include <cstdint>

namespace ringtrain {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) : state_(seed) {}

  uint64_t next_u64() {  // splitmix64
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 24 random bits: exactly representable as float.
  float uniform() { return static_cast<float>(next_u64() >> 40) * (1.0f / 16777216.0f); }
  float uniform(float lo, float hi) { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [0, n), n > 0 (Lemire's multiply-shift; bias below 2^-32 for n < 2^32).
  uint64_t below(uint64_t n) { return static_cast<uint64_t>((static_cast<__uint128_t>(next_u64()) * n) >> 64); }

  uint64_t state() const { return state_; }
  void set_state(uint64_t s) { state_ = s; }

 private:
  uint64_t state_;
};

// A seed for stream `stream` derived from a base seed, so that independent consumers (init, dropout,
// shuffling) never share a sequence.
inline uint64_t derive_seed(uint64_t base, uint64_t stream) {
  Rng r(base ^ (0xD1B54A32D192ED03ull * (stream + 1)));
  return r.next_u64();
}

}  // namespace ringtrain
