#include "ringtrain/train/model_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "ringtrain/data/hdf5.hpp"
#include "ringtrain/error.hpp"

namespace ringtrain {

namespace {

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error("cannot reopen '" + path + "' to sync it");
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw Error("cannot sync '" + path + "' to disk");
}

}  // namespace

void save_model(const std::string& path, Model& model, bool classification) {
  auto lock = h5::lock_library();
  const std::filesystem::path target(path);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  try {
    {
      h5::H5Id file = h5::create_file(tmp);
      h5::write_attr(file.get(), "format", std::string(kModelFormat));
      h5::write_attr(file.get(), "model_spec", model.spec());
      h5::write_attr(file.get(), "input_shape", model.input_shape());
      h5::write_attr(file.get(), "outputs", shape_numel(model.output_shape()));
      h5::write_attr(file.get(), "task", std::string(classification ? "classification" : "regression"));
      auto write = [&](const std::string& name, const Tensor& t) {
        if (t.device() == Device::cpu) return h5::write_dataset(file.get(), name, t.shape(), t.data());
        const Tensor host = t.to(Device::cpu);
        h5::write_dataset(file.get(), name, host.shape(), host.data());
      };
      for (const NamedParam& p : model.named_params()) write(p.name, p.param->value);
      for (const NamedTensor& b : model.named_buffers()) write(b.name, *b.tensor);
      h5::flush(file.get());
    }
    fsync_path(tmp);
    std::error_code ec;
    std::filesystem::rename(tmp, target, ec);
    if (ec) throw Error("cannot move the saved model into place at '" + path + "': " + ec.message());
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw;
  }
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
  out.classification = h5::read_attr_str(file.get(), "task") == "classification";
  out.model = std::make_unique<Model>(spec, Shape(input.begin(), input.end()), outputs, 0);
  for (const NamedParam& p : out.model->named_params())
    h5::read_f32_exact(file.get(), path, p.name, p.param->value.shape(), p.param->value.data());
  for (const NamedTensor& b : out.model->named_buffers())
    h5::read_f32_exact(file.get(), path, b.name, b.tensor->shape(), b.tensor->data());
  return out;
}

}  // namespace ringtrain
