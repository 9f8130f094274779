// Saved models: one HDF5 file, readable by h5py, with one float32 dataset per parameter named
// "<layer>/<param>" (e.g. "conv1/weight", "linear2/bias"), BatchNorm statistics likewise, and root
// attributes that rebuild the model: format, model_spec, input_shape, outputs, task, and for regression the
// targets' standardisation y_scale/y_shift (what the outputs mean in the targets' units); and the attributes
// that say how its inputs were made, copied from the training shards: x_scale/x_shift and, for data prep
// converted from a CSV, the CSV transform csv_* (what predict applies to a raw CSV). A checkpoint
// (checkpoint.hpp) is such a file with the training state added, so `ringtrain eval` reads either.
#pragma once
#include <hdf5.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "ringtrain/data/shard.hpp"
#include "ringtrain/nn/model.hpp"
#include "ringtrain/tensor/targets.hpp"

namespace ringtrain {

inline constexpr const char* kModelFormat = "ringtrain-model-1";

// Writes atomically: a temporary file beside `path`, flushed and fsynced, then renamed over it, so an
// interrupted save never destroys the previous file.
void save_model(const std::string& path, Model& model, const TargetSpace& targets, const InputTransform& inputs);

// How model files and checkpoints are written: `fill` writes into a new HDF5 file built in memory and sealed
// (hdf5.hpp file_image), whose bytes then go to `path` atomically (write_atomically). The disk write
// is ours, so a full disk is an Error naming the path, not a failure inside HDF5.
void write_sealed_hdf5(const std::string& path, const std::function<void(hid_t file)>& fill);

struct LoadedModel {
  std::unique_ptr<Model> model;
  TargetSpace targets;
  InputTransform inputs;  // x_scale 1 and x_shift 0 in files from before they were recorded
};
LoadedModel load_model(const std::string& path);

// The model's part of an open file: the root attributes and a dataset per parameter and buffer. Every file
// that holds a model (--save, checkpoints) writes its attributes here.
void write_model(hid_t file, Model& model, const TargetSpace& targets, const InputTransform& inputs);
// What an open model file's or checkpoint's outputs are: its task, and a regression's target standardisation.
TargetSpace read_target_space(hid_t file, const std::string& path);
// Loads `file`'s parameters and buffers into `model`, which must have the file's architecture, input shape
// and output count.
void read_model_into(hid_t file, const std::string& path, Model& model);

}  // namespace ringtrain
