#include "ringtrain/data/synthetic.hpp"

#include "ringtrain/tensor/counter_rng.hpp"
#include "ringtrain/tensor/rng.hpp"
#include "ringtrain/tensor/text.hpp"

namespace ringtrain {

namespace {

// derive_seed streams of the synthetic splits, apart from initialisation's (0) and shuffling's (1000 + epoch).
constexpr uint64_t kSyntheticStream = uint64_t{1} << 40;
// counter_hash streams under a split's key.
constexpr uint64_t kValueStream = 0, kLabelStream = 1, kTokenStream = 2;

// Lemire's multiply-shift: uniform in [0, n) with a bias below n / 2^64.
inline int32_t below(uint64_t bits, int64_t n) {
  return static_cast<int32_t>((static_cast<__uint128_t>(bits) * static_cast<uint64_t>(n)) >> 64);
}

// 24 random bits as noise of mean 0 and variance 1: (u + 1/2) / 2^24 is uniform on (0, 1) and symmetric
// about 1/2, so the result is uniform on (-sqrt(3), sqrt(3)) with a mean of exactly 0. Every step is exact in
// float but the last multiplication.
inline float noise(uint64_t bits24) {
  constexpr float kScale = 3.4641016151377544f / 16777216.0f;  // 2 sqrt(3) / 2^24
  return (static_cast<float>(bits24) - 8388607.5f) * kScale;
}

class SyntheticReader final : public SampleReader {
 public:
  explicit SyntheticReader(const SyntheticSource& source) : source_(source) {}
  void read(int64_t index, float* x, Targets& y, int64_t row) override {
    if (const int64_t tokens = source_.meta().tokens) {
      source_.window(index, x, y.labels.data() + row * tokens);
      return;
    }
    source_.values(index, x);
    y.labels[static_cast<size_t>(row)] = source_.label(index);
  }

 private:
  const SyntheticSource& source_;
};

}  // namespace

std::string synthetic_spec(const SyntheticData& data) {
  std::string text = data.tokens ? "synthetic-tokens:" : "synthetic:";
  for (size_t d = 0; d < data.sample.size(); ++d) {
    if (d) text += 'x';
    text += std::to_string(data.sample[d]);
  }
  text += ':';
  text += std::to_string(data.classes);
  if (data.samples) {
    text += ':';
    text += std::to_string(*data.samples);
  }
  return text;
}

SyntheticSource::SyntheticSource(const SyntheticData& data, uint64_t seed, Split split, int replicas)
    : key_(derive_seed(seed, kSyntheticStream + static_cast<uint64_t>(split))) {
  meta_.path = synthetic_spec(data);
  meta_.samples = data.samples.value_or(kSyntheticSamplesPerReplica * replicas);
  meta_.sample_shape = data.sample;
  meta_.x_type = PixelType::f32;
  meta_.num_classes = data.classes;
  meta_.tokens = data.tokens ? data.sample.at(0) : 0;
  meta_.x_scale = {1.0f};
  meta_.x_shift = {0.0f};
}

std::string SyntheticSource::origin() const {
  if (meta_.tokens)
    return "made in memory (" + meta_.path + ", windows of " + counted(meta_.tokens, "token") + ", vocabulary " +
           std::to_string(meta_.num_classes) + ")";
  return "made in memory (" + meta_.path + ", " + counted(meta_.num_classes, "class") + ")";
}

std::unique_ptr<SampleReader> SyntheticSource::reader(int64_t) const {
  return std::make_unique<SyntheticReader>(*this);
}

// Two values from each 64-bit draw (bits 40..63 and 16..39): the noise costs half a hash a value.
void SyntheticSource::values(int64_t index, float* x) const {
  const uint64_t sample_key = counter_hash(key_, kValueStream, static_cast<uint64_t>(index));
  const int64_t n = meta_.features();
  for (int64_t j = 0; j < n; j += 2) {
    const uint64_t bits = counter_hash(sample_key, 0, static_cast<uint64_t>(j / 2));
    x[j] = noise(bits >> 40);
    if (j + 1 < n) x[j + 1] = noise((bits >> 16) & 0xFFFFFF);
  }
}

int32_t SyntheticSource::label(int64_t index) const {
  return below(counter_hash(key_, kLabelStream, static_cast<uint64_t>(index)), meta_.num_classes);
}

// Token j of the window is draw j of the sample's stream: x is tokens 0 .. T-1, the labels tokens 1 .. T.
void SyntheticSource::window(int64_t index, float* x, int32_t* labels) const {
  const uint64_t sample_key = counter_hash(key_, kTokenStream, static_cast<uint64_t>(index));
  int32_t token = below(counter_hash(sample_key, 0, 0), meta_.num_classes);
  for (int64_t j = 0; j < meta_.tokens; ++j) {
    x[j] = static_cast<float>(token);
    labels[j] = token = below(counter_hash(sample_key, 0, static_cast<uint64_t>(j + 1)), meta_.num_classes);
  }
}

}  // namespace ringtrain
