// --init-from: a run's model starts from another run's saved model or checkpoint (model_file.hpp), tensor by
// tensor. The model is built as usual from --model and the data; then every parameter and buffer whose name
// ("conv1/weight", "residual3/shortcut/conv1/weight", "batchnorm1/running_mean") and shape match a dataset of
// the file takes the file's values, and the rest keep the run's own initialisation. With --reset-head the
// output layer (the model's last linear layer) keeps its initialisation whatever the file holds: a model
// trained on other classes is fine-tuned for this data's. Every rank loads the file alike, so replicas start
// equal, pipeline stages find their layers loaded, and parameter servers shard the loaded values.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "ringtrain/nn/model.hpp"
#include "ringtrain/tensor/targets.hpp"

namespace ringtrain {

// What became of one parameter or buffer of the model.
struct InitFromItem {
  enum Outcome { loaded, skipped, fresh };
  std::string name;  // "conv1/weight"
  size_t layer = 0;  // the top-level layer it belongs to
  Outcome outcome = fresh;
  std::string why;   // skipped: "[5, 128] here, [10, 128] in the file"; fresh: "not in the file", "--reset-head"
};

struct InitFromReport {
  std::string path;
  std::vector<InitFromItem> items;  // every parameter and buffer of the model, in the model's order
};

// Loads `path` into `model` (on the host) as above. `data`: what this run's data trains for; without
// `reset_head`, a file trained for another task or number of outputs is an Error that says to add
// --reset-head. Also an Error: a file that cannot be read, is not a model file or checkpoint, or holds
// nothing this model can take.
InitFromReport init_from(const std::string& path, bool reset_head, Model& model, const TargetSpace& data);

// The output layer --reset-head starts anew: the model's last top-level linear layer. Error when it has none.
size_t head_layer(Model& model);

// The lines of the run's header that say what was loaded (by layer where a layer was loaded whole), what was
// skipped (both shapes) and what starts new (and why), each indented by two spaces and ending in a newline.
std::string describe(const InitFromReport& report, const Model& model);

}  // namespace ringtrain
