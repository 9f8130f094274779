// Builds a small convolutional model from a spec and runs one forward pass on the CPU, printing what the
// installed library did: tests/build_consumer.sh checks the line.
#include <cstdio>

#include "ringtrain/nn/model.hpp"
#include "ringtrain/tensor/cpu_features.hpp"

int main() {
  using namespace ringtrain;
  Model model("conv(4,3,pad=1),relu,maxpool(2),flatten,linear(out)", {1, 8, 8}, 3, 7);
  Tensor x({2, 1, 8, 8});
  x.fill(0.5f);
  const Tensor& y = model.forward(x, Mode::eval);
  std::printf("consumer: %s -> %s, %lld parameters, cpu path %s\n", model.spec().c_str(),
              shape_str(y.shape()).c_str(), static_cast<long long>(model.parameter_count()),
              name_of(cpu_path()).c_str());
}
