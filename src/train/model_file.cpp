#include "ringtrain/train/model_file.hpp"

#include <cstdio>
#include <filesystem>
#include <optional>
#include <tuple>

#include "ringtrain/data/hdf5.hpp"
#include "ringtrain/data/prep.hpp"
#include "ringtrain/data/shard.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/train/output_file.hpp"

namespace ringtrain {

void write_model(hid_t file, Model& model, const TargetSpace& targets, const InputTransform& inputs) {
  h5::write_attr(file, "format", std::string(kModelFormat));
  h5::write_attr(file, "model_spec", model.spec());
  h5::write_attr(file, "input_shape", model.input_shape());
  h5::write_attr(file, "outputs", model.outputs());
  h5::write_attr(file, "task", name_of(targets.classification ? TaskKind::classification : TaskKind::regression));
  if (!targets.classification) write_target_standardisation(file, targets.scale, targets.shift);
  write_input_transform(file, inputs);
  auto write = [&](const std::string& name, const Tensor& t) {
    if (t.device() == Device::cpu) return h5::write_dataset(file, name, t.shape(), t.data(), h5::Checksum::fletcher32);
    const Tensor host = t.to(Device::cpu);
    h5::write_dataset(file, name, host.shape(), host.data(), h5::Checksum::fletcher32);
  };
  for (const NamedParam& p : model.named_params()) write(p.name, p.param->value);
  for (const NamedTensor& b : model.named_buffers()) write(b.name, *b.tensor);
}

namespace {

// A shape from a file is checked before anything is allocated by it.
Shape checked_input_shape(hid_t file, const std::string& path) {
  const std::vector<int64_t> dims = h5::read_attr_i64s(file, "input_shape");
  constexpr int64_t kMaxElements = int64_t{1} << 31;
  int64_t elements = 1;
  for (const int64_t d : dims) {
    if (d < 1 || d > kMaxElements || (elements *= d) > kMaxElements)
      throw Error("'" + path + "' has input_shape " + shape_str(Shape(dims.begin(), dims.end())) +
                  ": each size must be positive and the sample at most 2^31 values");
  }
  if (dims.empty()) throw Error("'" + path + "' has an empty input_shape");
  return Shape(dims.begin(), dims.end());
}

int64_t checked_outputs(hid_t file, const std::string& path) {
  const int64_t outputs = h5::read_attr_i64(file, "outputs");
  if (outputs < 1 || outputs > (int64_t{1} << 24))
    throw Error("'" + path + "' has outputs = " + std::to_string(outputs) + ", outside 1 .. 2^24");
  return outputs;
}

}  // namespace

TargetSpace read_target_space(hid_t file, const std::string& path) {
  const std::string task = h5::read_attr_str(file, "task");
  const std::optional<TaskKind> kind = enum_from_name<TaskKind>(task);
  if (!kind || kind == TaskKind::automatic)
    throw Error("'" + path + "' has task '" + task + "', neither classification nor regression");
  if (kind == TaskKind::classification) return TargetSpace{true};
  // Files from before targets were standardised have none: their outputs are the targets as they were.
  TargetSpace t{false};
  std::tie(t.scale, t.shift) = read_target_standardisation(file, " in '" + path + "'");
  return t;
}

void read_model_into(hid_t file, const std::string& path, Model& model) {
  const Shape input = checked_input_shape(file, path);
  const int64_t outputs = checked_outputs(file, path);
  if (input != model.input_shape() || outputs != model.outputs())
    throw Error("'" + path + "' holds a model for input " + shape_str(input) + " and " + std::to_string(outputs) +
                " outputs, not this run's " + shape_str(model.input_shape()) + " and " +
                std::to_string(model.outputs()));
  for (const NamedParam& p : model.named_params())
    h5::read_f32_exact(file, path, p.name, p.param->value.shape(), p.param->value.data());
  for (const NamedTensor& b : model.named_buffers())
    h5::read_f32_exact(file, path, b.name, b.tensor->shape(), b.tensor->data());
}

void write_sealed_hdf5(const std::string& path, const std::function<void(hid_t file)>& fill) {
  std::vector<char> image;
  {
    auto lock = h5::lock_library();
    image = h5::file_image(fill, true);
  }
  write_atomically(path, [&](const std::string& tmp) {
    try {
      h5::write_image(tmp, image, path);
    } catch (const Error& e) {
      throw Error(std::string(e.what()) + " (the previous file, if any, is kept)");
    }
  });
}

void save_model(const std::string& path, Model& model, const TargetSpace& targets, const InputTransform& inputs) {
  write_sealed_hdf5(path, [&](hid_t file) { write_model(file, model, targets, inputs); });
}

LoadedModel load_model(const std::string& path) {
  auto lock = h5::lock_library();
  h5::H5Id file = h5::open_sealed_file(path);
  if (!h5::has_attr(file.get(), "format") || h5::read_attr_str(file.get(), "format") != kModelFormat)
    throw Error("'" + path + "' is not a ringtrain model file (no format attribute '" + kModelFormat + "')");
  LoadedModel out;
  const std::string spec = h5::read_attr_str(file.get(), "model_spec");
  const Shape input = checked_input_shape(file.get(), path);
  const int64_t outputs = checked_outputs(file.get(), path);
  out.targets = read_target_space(file.get(), path);
  out.inputs = read_input_transform(file.get(), shape_numel(input), out.targets.classification ? outputs : 0,
                                    " in '" + path + "'");
  out.model = std::make_unique<Model>(spec, input, outputs, 0);
  read_model_into(file.get(), path, *out.model);
  return out;
}

}  // namespace ringtrain
