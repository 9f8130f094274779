#include "ringtrain/train/model_file.hpp"

#include <cstdio>
#include <filesystem>

#include "ringtrain/data/hdf5.hpp"
#include "ringtrain/data/prep.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/train/output_file.hpp"

namespace ringtrain {

void write_model(hid_t file, Model& model, bool classification) {
  h5::write_attr(file, "format", std::string(kModelFormat));
  h5::write_attr(file, "model_spec", model.spec());
  h5::write_attr(file, "input_shape", model.input_shape());
  h5::write_attr(file, "outputs", shape_numel(model.output_shape()));
  h5::write_attr(file, "task", name_of(classification ? TaskKind::classification : TaskKind::regression));
  auto write = [&](const std::string& name, const Tensor& t) {
    if (t.device() == Device::cpu) return h5::write_dataset(file, name, t.shape(), t.data(), h5::Checksum::fletcher32);
    const Tensor host = t.to(Device::cpu);
    h5::write_dataset(file, name, host.shape(), host.data(), h5::Checksum::fletcher32);
  };
  for (const NamedParam& p : model.named_params()) write(p.name, p.param->value);
  for (const NamedTensor& b : model.named_buffers()) write(b.name, *b.tensor);
}

void read_model_into(hid_t file, const std::string& path, Model& model) {
  for (const NamedParam& p : model.named_params())
    h5::read_f32_exact(file, path, p.name, p.param->value.shape(), p.param->value.data());
  for (const NamedTensor& b : model.named_buffers())
    h5::read_f32_exact(file, path, b.name, b.tensor->shape(), b.tensor->data());
}

void save_model(const std::string& path, Model& model, bool classification) {
  auto lock = h5::lock_library();
  write_atomically(path, [&](const std::string& tmp) {
    h5::H5Id file = h5::create_file(tmp);
    write_model(file.get(), model, classification);
    h5::flush(file.get());
  });
}

LoadedModel load_model(const std::string& path) {
  auto lock = h5::lock_library();
  h5::H5Id file = h5::open_file(path);
  if (!h5::has_attr(file.get(), "format") || h5::read_attr_str(file.get(), "format") != kModelFormat)
    throw Error("'" + path + "' is not a ringtrain model file (no format attribute '" + kModelFormat + "')");
  LoadedModel out;
  const std::string spec = h5::read_attr_str(file.get(), "model_spec");
  const std::vector<int64_t> input = h5::read_attr_i64s(file.get(), "input_shape");
  const int64_t outputs = h5::read_attr_i64(file.get(), "outputs");
  const std::string task = h5::read_attr_str(file.get(), "task");
  const std::optional<TaskKind> kind = enum_from_name<TaskKind>(task);
  if (!kind || kind == TaskKind::automatic)
    throw Error("'" + path + "' has task '" + task + "', neither classification nor regression");
  out.classification = kind == TaskKind::classification;
  out.model = std::make_unique<Model>(spec, Shape(input.begin(), input.end()), outputs, 0);
  read_model_into(file.get(), path, *out.model);
  return out;
}

}  // namespace ringtrain
