// --freeze: the top-level layers of a model that keep their parameters while the rest trains (Model::freeze:
// no update, no weight decay or momentum, their gradients off the wire, a batchnorm's running statistics
// fixed). Layers are named by the flag's selectors (config.hpp LayerSelector): names, globs, index ranges.
#pragma once
#include <string>
#include <vector>

#include "ringtrain/nn/model.hpp"
#include "ringtrain/train/config.hpp"

namespace ringtrain {

// The layers `selectors` name, in order, each checked against `model`: a selector that matches no layer, or
// an index past the last layer, is an Error naming it.
std::vector<size_t> select_layers(const std::vector<LayerSelector>& selectors, const Model& model);

// Freezes the layers `selectors` name (select_layers) in `model`. Also an Error: a choice that leaves no layer
// with parameters to train, that freezes `head` (the output layer --reset-head starts anew; model.size()
// when there is none), or that freezes a batchnorm above a layer that trains (backward would have to pass
// through a batchnorm on its running statistics, which ringtrain's batchnorm does not do).
void freeze_layers(const std::vector<LayerSelector>& selectors, Model& model, size_t head);

// The frozen layers' names ("" when none is); comma-separated, the run's --freeze setting, which every rank
// and a resumed run must share.
std::string frozen_names(const Model& model, const char* separator = ",");

// The header's line, "  --freeze: 7 layers frozen (conv1, ...): 52096 of 3274634 parameters, 3222538 train\n",
// or "" when no layer is frozen.
std::string describe_frozen(Model& model);

}  // namespace ringtrain
