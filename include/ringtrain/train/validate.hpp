// Every rule a configuration must meet, in one place, checked once before any rank starts work. Each broken
// rule is an Error naming the flag and the value. The parallel modes, the schedule and the engine trust
// what passed.
#pragma once
#include <cstddef>

#include "ringtrain/train/config.hpp"
#include "ringtrain/train/generate.hpp"

namespace ringtrain {

// The rules of the settings themselves and of a world of `world` ranks.
void validate(const TrainConfig& config, int world);
// The rules that need the data: what it is for (classification or regression: --label-smoothing, --monitor)
// and whether it has a validation split (early stopping and --save-best watch one).
void validate_for_data(const TrainConfig& config, bool classification, bool validation_split);
// The rules that need the built model: the pipeline's stages and --split against its `layers` layers.
void validate_stages(const PipelineConfig& pipeline, size_t layers);
void validate(const EvalConfig& config);
void validate(const PredictConfig& config);
void validate(const DoctorConfig& config);
// Error naming the setting that is out of range, or where the prompt stops being UTF-8.
void validate(const GenerateConfig& config);

}  // namespace ringtrain
