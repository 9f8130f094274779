// The GPU's clipping by global norm (nn/gradient_clip.hpp): the sum of squares lands in a device float that
// an NCCL allreduce may add to, and the scaling kernel reads it there; nothing crosses to the host.
#include <algorithm>

#include "kernels/kernels.hpp"
#include "nn/cuda_factories.hpp"
#include "ringtrain/tensor/cuda_context.hpp"

namespace ringtrain::cuda {

namespace {

class CudaGradientClip final : public GradientClip {
 public:
  CudaGradientClip() : total_(sizeof(float)) {}

  void measure(const std::vector<GradSpan>& spans) override {
    prepare(spans);
    kernels::sum_squares(chunks(), chunk_count_, static_cast<double*>(partial_.get()), sum_squares(),
                         context().compute());
  }
  float* sum_squares() override { return static_cast<float*>(total_.get()); }
  void clip(const std::vector<GradSpan>& spans, float max_norm) override {
    prepare(spans);
    kernels::clip_to_norm(chunks(), chunk_count_, sum_squares(), max_norm, context().compute());
  }

 private:
  const kernels::GradChunk* chunks() const { return static_cast<const kernels::GradChunk*>(chunks_.get()); }
  // The chunk table of the spans, made again only when they change (a model's gradients keep their buffers).
  void prepare(const std::vector<GradSpan>& spans) {
    std::vector<kernels::GradChunk> table;
    for (const GradSpan& s : spans)
      for (int64_t begin = 0; begin < s.size; begin += kernels::kChunkElements)
        table.push_back({s.grad, begin, std::min(begin + kernels::kChunkElements, s.size)});
    const bool same = table.size() == table_.size() &&
                      std::equal(table.begin(), table.end(), table_.begin(), [](const auto& a, const auto& b) {
                        return a.g == b.g && a.begin == b.begin && a.end == b.end;
                      });
    if (same) return;
    table_ = std::move(table);
    chunk_count_ = static_cast<int>(table_.size());
    chunks_ = DeviceBuffer(sizeof(kernels::GradChunk) * std::max<size_t>(table_.size(), 1));
    partial_ = DeviceBuffer(sizeof(double) * std::max<size_t>(table_.size(), 1));
    if (table_.empty()) return;
    copy_bytes(chunks_.get(), Device::cuda, table_.data(), Device::cpu, sizeof(kernels::GradChunk) * table_.size());
    synchronize_device();  // the next change of spans replaces the host table the copy reads
  }

  std::vector<kernels::GradChunk> table_;  // the host's copy, to see whether the spans changed
  DeviceBuffer chunks_, partial_, total_;
  int chunk_count_ = 0;
};

}  // namespace

std::unique_ptr<GradientClip> make_cuda_gradient_clip() { return std::make_unique<CudaGradientClip>(); }

}  // namespace ringtrain::cuda
