#include "ringtrain/data/csv_source.hpp"

#include "csv_table.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

namespace {

// The whole file, converted once when opened (a CSV is read whole anyway); normalised as a sample is read.
class CsvSource final : public SampleSource {
 public:
  CsvSource(const std::string& path, const InputTransform& input, const TargetSpace& targets, MissingValues missing) {
    int64_t dropped = 0;
    table_ = csv_detail::convert_with_transform(path, *input.csv, missing, {}, dropped);
    ShardMeta& m = table_.meta;
    m.path = path;
    m.x_scale = input.x_scale;
    m.x_shift = input.x_shift;
    m.y_scale = targets.scale;
    m.y_shift = targets.shift;
  }

  const ShardMeta& meta() const override { return table_.meta; }
  int64_t samples() const override { return table_.meta.samples; }
  std::vector<int64_t> block_sizes() const override { return {table_.meta.samples}; }
  std::vector<std::string> paths() const override { return {table_.meta.path}; }
  std::string origin() const override { return "in CSV file '" + table_.meta.path + "'"; }
  std::unique_ptr<SampleReader> reader(int64_t) const override;

 private:
  prep_detail::Table table_;
};

class CsvReader final : public SampleReader {
 public:
  explicit CsvReader(const prep_detail::Table& table) : table_(table) {}
  void read(int64_t index, float* x, Targets& y, int64_t row) override {
    sample_into_batch(table_.meta, table_.data, index, x, y, row);
  }

 private:
  const prep_detail::Table& table_;
};

std::unique_ptr<SampleReader> CsvSource::reader(int64_t) const { return std::make_unique<CsvReader>(table_); }

}  // namespace

std::unique_ptr<SampleSource> open_csv_with_transform(const std::string& path, const InputTransform& input,
                                                      const TargetSpace& targets, MissingValues missing) {
  if (!input.csv)
    throw Error("the model was not trained on data prep made from a CSV (its file holds no CSV transform): it "
                "cannot read CSV file '" + path + "'");
  if (missing == MissingValues::drop)
    throw Error("--missing drop would leave rows of '" + path + "' without a prediction: use error or mean");
  if (input.csv->classification() != targets.classification)
    throw Error("the model's CSV transform is for " +
                std::string(input.csv->classification() ? "classification" : "regression") + ", its outputs for " +
                (targets.classification ? "classification" : "regression"));
  return std::make_unique<CsvSource>(path, input, targets, missing);
}

}  // namespace ringtrain
