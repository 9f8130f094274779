// The per-epoch metrics CSV: one header line, one row per epoch, flushed as each epoch ends so a killed
// job keeps what it measured.
#pragma once
#include <fstream>
#include <string>
#include <vector>

#include "ringtrain/nn/loss.hpp"

namespace ringtrain {

struct EpochRecord {
  int64_t epoch = 0, step = 0;
  double lr = 0.0;
  Score train, val;  // val.samples == 0: no validation split
  double images_per_s = 0.0, seconds = 0.0;
  std::vector<std::string> extra;  // the mode's own columns (MetricsLog's extra_columns), in order
};

class MetricsLog {
 public:
  // path "" = disabled. extra_columns: a mode's own figures (parameter servers: staleness, latency, load).
  // append: a resumed run keeps the rows of the run it continues (when the file is there).
  MetricsLog(const std::string& path, const std::string& metric_name,
             const std::vector<std::string>& extra_columns = {}, bool append = false);
  void write(const EpochRecord& record);

 private:
  std::ofstream out_;
};

}  // namespace ringtrain
