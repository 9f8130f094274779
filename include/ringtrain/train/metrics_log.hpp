// The per-epoch metrics CSV: one header line, one row per epoch, flushed as each epoch ends so a killed
// job keeps what it measured.
#pragma once
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "ringtrain/nn/loss.hpp"

namespace ringtrain {

struct EpochRecord {
  int64_t epoch = 0, step = 0;
  double lr = 0.0;
  Score train, val;  // val.samples == 0: no validation split
  double images_per_s = 0.0, seconds = 0.0;
  std::string report;  // lines the callbacks add under the epoch's line (the mode's report)
  std::vector<std::pair<std::string, std::string>> columns;  // and extra CSV columns: name, value
};

class MetricsLog {
 public:
  // append: a resumed run keeps the rows of the run it continues (when the file is there). Opens (and
  // truncates, unless appending) the file now, so that a path that cannot be written fails at once.
  MetricsLog(const std::string& path, const std::string& metric_name, bool append = false);
  // The first record written to a new file writes the header, with the record's extra columns.
  void write(const EpochRecord& record);

 private:
  std::ofstream out_;
  std::string metric_;
  bool header_written_ = false;
};

}  // namespace ringtrain
