#include "ringtrain/train/init_from.hpp"

#include <map>

#include "ringtrain/data/hdf5.hpp"
#include "ringtrain/nn/linear.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/text.hpp"
#include "ringtrain/train/model_file.hpp"

namespace ringtrain {

namespace {

std::string quoted(const std::string& path) { return "--init-from '" + path + "'"; }

std::string what_it_predicts(bool classification, int64_t outputs) {
  return classification ? counted(outputs, "class") : counted(outputs, "regression target");
}

// Without --reset-head the output layer is loaded too, so it must mean what this data's outputs mean.
void check_same_outputs(hid_t file, const std::string& path, const Model& model, const TargetSpace& data) {
  const TargetSpace trained = read_target_space(file, path);
  const int64_t theirs = h5::read_attr_i64(file, "outputs"), ours = model.outputs();
  if (trained.classification == data.classification && theirs == ours) return;
  throw Error(quoted(path) + " was trained for " + what_it_predicts(trained.classification, theirs) +
              ", this data has " + what_it_predicts(data.classification, ours) +
              ": add --reset-head to start a new output layer for them");
}

// Every parameter and buffer of layer i, named as files name them.
std::vector<NamedTensor> tensors_of(Model& model, size_t i) {
  std::vector<NamedTensor> out;
  for (const NamedParam& p : model.named_params(i)) out.push_back({p.name, &p.param->value});
  for (const NamedTensor& b : model.named_buffers(i)) out.push_back(b);
  return out;
}

// Loads `t` from the file when a dataset of its name and shape is there.
InitFromItem load_one(hid_t file, const std::string& path, const NamedTensor& t, size_t layer) {
  InitFromItem item{t.name, layer, InitFromItem::fresh, "not in the file"};
  if (!h5::has_dataset(file, t.name)) return item;
  const h5::DatasetInfo info = h5::dataset_info(file, path, t.name);
  if (info.dims != t.tensor->shape()) {
    item.outcome = InitFromItem::skipped;
    item.why = shape_str(t.tensor->shape()) + " here, " + shape_str(info.dims) + " in the file";
    return item;
  }
  h5::read_f32_exact(file, path, t.name, t.tensor->shape(), t.tensor->data());
  item.outcome = InitFromItem::loaded;
  return item;
}

}  // namespace

size_t head_layer(Model& model) {
  for (size_t i = model.size(); i-- > 0;)
    if (dynamic_cast<Linear*>(&model.layer(i))) return i;
  throw Error("--reset-head: the model has no linear layer, the output layer it would start anew");
}

InitFromReport init_from(const std::string& path, bool reset_head, Model& model, const TargetSpace& data) {
  auto lock = h5::lock_library();
  h5::H5Id file;
  try {
    file = h5::open_sealed_file(path);
  } catch (const Error& e) {
    throw Error("--init-from: " + std::string(e.what()));
  }
  const hid_t f = file.get();
  if (!h5::has_attr(f, "format") || h5::read_attr_str(f, "format") != kModelFormat)
    throw Error(quoted(path) + " is not a ringtrain model file or checkpoint (no format attribute '" +
                kModelFormat + "')");
  const size_t head = reset_head ? head_layer(model) : model.size();
  if (!reset_head) check_same_outputs(f, path, model, data);
  InitFromReport report{path, {}};
  int64_t loaded = 0;
  for (size_t i = 0; i < model.size(); ++i)
    for (const NamedTensor& t : tensors_of(model, i)) {
      report.items.push_back(i == head ? InitFromItem{t.name, i, InitFromItem::fresh, "--reset-head"}
                                       : load_one(f, path, t, i));
      loaded += report.items.back().outcome == InitFromItem::loaded;
    }
  if (loaded == 0)
    throw Error(quoted(path) + " holds none of this model's " + std::to_string(report.items.size()) +
                " parameters and buffers under its name and shape (the file's model is '" + excerpt(h5::read_attr_str(f, "model_spec")) +
                "', this run's '" + excerpt(model.spec()) + "')");
  return report;
}

std::string describe(const InitFromReport& report, const Model& model) {
  // Loaded: a layer's name where all of its tensors were, else the tensors' own names.
  std::map<size_t, std::vector<const InitFromItem*>> by_layer;
  for (const InitFromItem& item : report.items) by_layer[item.layer].push_back(&item);
  std::string loaded;
  int64_t count = 0;
  for (const auto& [layer, items] : by_layer) {
    size_t whole = 0;
    for (const InitFromItem* item : items) whole += item->outcome == InitFromItem::loaded;
    count += static_cast<int64_t>(whole);
    if (whole == items.size()) loaded += (loaded.empty() ? "" : ", ") + model.layer_name(layer);
    else
      for (const InitFromItem* item : items)
        if (item->outcome == InitFromItem::loaded) loaded += (loaded.empty() ? "" : ", ") + item->name;
  }
  std::string out = "  --init-from " + report.path + ": loaded " + std::to_string(count) + " of " +
                    counted(static_cast<int64_t>(report.items.size()), "tensor") + ": " + excerpt(loaded, 400) + "\n";
  std::map<std::string, std::string> fresh;  // why -> names
  for (const InitFromItem& item : report.items) {
    if (item.outcome == InitFromItem::skipped) out += "    skipped " + item.name + ": " + item.why + "\n";
    if (item.outcome == InitFromItem::fresh) fresh[item.why] += (fresh[item.why].empty() ? "" : ", ") + item.name;
  }
  for (const auto& [why, names] : fresh) out += "    new " + excerpt(names, 400) + " (" + why + ")\n";
  return out;
}

}  // namespace ringtrain
