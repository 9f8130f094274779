// The file `ringtrain predict` writes. Floats in the CSV are the shortest text that reads back as the same
// float, so that a CSV and an HDF5 file of the same predictions hold the same numbers.
#include <ostream>

#include "ringtrain/data/hdf5.hpp"
#include "ringtrain/tensor/text.hpp"
#include "ringtrain/train/output_file.hpp"
#include "ringtrain/train/predict.hpp"

namespace ringtrain {

namespace {

inline constexpr const char* kPredictionsFormat = "ringtrain-predictions-1";

// index, predicted, p_<class>...; or index, value (one target) or value_<t>... (several).
void write_csv(std::ostream& out, const Predictions& p) {
  out << "index";
  if (p.classification) out << ",predicted";
  for (int64_t c = 0; c < p.width; ++c) {
    if (p.classification) out << ",p_" << c;
    else if (p.width == 1) out << ",value";
    else out << ",value_" << c;
  }
  out << '\n';
  const auto width = static_cast<size_t>(p.width);
  for (size_t i = 0; i < static_cast<size_t>(p.rows()); ++i) {
    out << i;
    if (p.classification) out << ',' << p.predicted[i];
    for (size_t c = 0; c < width; ++c) out << ',' << float_text(p.values[i * width + c]);
    out << '\n';
  }
}

void write_hdf5(hid_t file, const Predictions& p) {
  const int64_t rows = p.rows();
  std::vector<int64_t> index(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) index[static_cast<size_t>(i)] = i;
  h5::write_attr(file, "format", std::string(kPredictionsFormat));
  h5::write_dataset(file, "index", {rows}, index.data());
  if (p.classification) {
    const std::vector<int64_t> predicted(p.predicted.begin(), p.predicted.end());
    h5::write_dataset(file, "predicted", {rows}, predicted.data());
    h5::write_dataset(file, "probabilities", {rows, p.width}, p.values.data());
  } else {
    h5::write_dataset(file, "values", {rows, p.width}, p.values.data());
  }
}

}  // namespace

void write_predictions(const std::string& path, PredictionFormat format, const Predictions& all) {
  if (format == PredictionFormat::csv) return write_text_atomically(path, [&](std::ostream& out) { write_csv(out, all); });
  write_sealed_hdf5(path, [&](hid_t file) { write_hdf5(file, all); });
}

}  // namespace ringtrain
