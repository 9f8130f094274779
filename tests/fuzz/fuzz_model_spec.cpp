// libFuzzer: any text as a model spec. The parser, preset expansion and each layer's argument checks must
// answer with an Error or a layer, never crash, overflow or invoke undefined behaviour. Layers are made, not
// built: building allocates what the spec asks for, which is the user's to choose.
#include <cstddef>
#include <cstdint>
#include <string>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/nn/model_spec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    for (const ringtrain::LayerSpec& spec : ringtrain::parse_model_spec(ringtrain::expand_preset(text)))
      ringtrain::make_layer(spec, 10);
  } catch (const ringtrain::Error&) {
  }
  return 0;
}
