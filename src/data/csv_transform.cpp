#include "ringtrain/data/csv_transform.hpp"

#include <algorithm>
#include <cmath>
#include <set>

#include "ringtrain/data/hdf5.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

int64_t CsvTransform::features() const {
  int64_t n = 0;
  for (const CsvColumn& c : columns) n += c.numeric() ? 1 : static_cast<int64_t>(c.categories.size());
  return n;
}

std::vector<std::string> CsvTransform::feature_names() const {
  std::vector<std::string> names;
  for (const CsvColumn& c : columns) {
    if (c.numeric()) names.push_back(c.name);
    for (const std::string& category : c.categories) names.push_back(c.name + "=" + category);
  }
  return names;
}

// Categories are stored flat, each column's after the one before (a column's count says how many are its):
// HDF5 attributes hold no ragged arrays.
void write_csv_transform(hid_t file, const CsvTransform& t) {
  std::vector<std::string> names, categories;
  std::vector<int64_t> counts;
  std::vector<float> means;
  for (const CsvColumn& c : t.columns) {
    names.push_back(c.name);
    counts.push_back(static_cast<int64_t>(c.categories.size()));
    means.push_back(c.mean);
    categories.insert(categories.end(), c.categories.begin(), c.categories.end());
  }
  h5::write_attr(file, "csv_target", t.target);
  h5::write_attr(file, "csv_columns", names);
  h5::write_attr(file, "csv_category_counts", counts);
  h5::write_attr(file, "csv_means", means);
  // Empty arrays are left out: an attribute of no strings is not something every HDF5 reader takes.
  if (!categories.empty()) h5::write_attr(file, "csv_categories", categories);
  if (!t.classes.empty()) h5::write_attr(file, "csv_classes", t.classes);
  if (!t.dropped.empty()) h5::write_attr(file, "csv_dropped", t.dropped);
}

namespace {

std::vector<std::string> optional_strings(hid_t file, const char* name) {
  return h5::has_attr(file, name) ? h5::read_attr_strs(file, name) : std::vector<std::string>{};
}

// The attributes as written, before they are checked against each other.
struct StoredTransform {
  std::string target;
  std::vector<std::string> columns, categories, classes, dropped;
  std::vector<int64_t> counts;
  std::vector<float> means;
};

StoredTransform read_stored(hid_t file) {
  StoredTransform s;
  s.target = h5::read_attr_str(file, "csv_target");
  s.columns = h5::read_attr_strs(file, "csv_columns");
  s.counts = h5::read_attr_i64s(file, "csv_category_counts");
  s.means = h5::read_attr_f32(file, "csv_means");
  s.categories = optional_strings(file, "csv_categories");
  s.classes = optional_strings(file, "csv_classes");
  s.dropped = optional_strings(file, "csv_dropped");
  return s;
}

// What a CSV is matched against by name must name one column each: the target, the features, --drop.
void check_names(const StoredTransform& s) {
  std::set<std::string> seen{s.target};
  if (s.target.empty()) throw Error("attribute csv_target is empty");
  for (const auto* list : {&s.columns, &s.dropped})
    for (const std::string& name : *list)
      if (name.empty() || !seen.insert(name).second)
        throw Error("the CSV transform names column '" + name + "' " + (name.empty() ? "without a name" : "twice"));
}

void check_shapes(const StoredTransform& s) {
  if (s.counts.size() != s.columns.size() || s.means.size() != s.columns.size())
    throw Error("attributes csv_category_counts and csv_means need one entry per csv_columns entry (" +
                std::to_string(s.columns.size()) + "), not " + std::to_string(s.counts.size()) + " and " +
                std::to_string(s.means.size()));
  int64_t total = 0;
  for (const int64_t n : s.counts) {
    if (n < 0 || n > static_cast<int64_t>(s.categories.size()))
      throw Error("attribute csv_category_counts holds " + std::to_string(n) + ", outside 0 .. " +
                  std::to_string(s.categories.size()) + " (csv_categories' length)");
    total += n;
  }
  if (total != static_cast<int64_t>(s.categories.size()))
    throw Error("attribute csv_category_counts adds up to " + std::to_string(total) + " but csv_categories holds " +
                std::to_string(s.categories.size()));
  for (const float m : s.means)
    if (!std::isfinite(m)) throw Error("attribute csv_means holds a value that is not finite");
  if (s.classes.size() == 1) throw Error("attribute csv_classes holds one class");
}

}  // namespace

std::optional<CsvTransform> read_csv_transform(hid_t file, const std::string& where) {
  if (!h5::has_attr(file, "csv_target")) return std::nullopt;
  CsvTransform t;
  try {
    StoredTransform s = read_stored(file);
    check_names(s);
    check_shapes(s);
    auto category = s.categories.begin();
    for (size_t j = 0; j < s.columns.size(); ++j) {
      const auto n = static_cast<std::ptrdiff_t>(s.counts[j]);
      t.columns.push_back({s.columns[j], std::vector<std::string>(category, category + n), s.means[j]});
      category += n;
    }
    t.target = std::move(s.target);
    t.classes = std::move(s.classes);
    t.dropped = std::move(s.dropped);
  } catch (const Error& e) {
    throw Error(e.what() + where);
  }
  return t;
}

}  // namespace ringtrain
