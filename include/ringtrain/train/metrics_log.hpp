// The per-epoch metrics CSV: one header line, one row per epoch, flushed as each epoch ends so a killed
// job keeps what it measured.
#pragma once
#include <fstream>
#include <string>

#include "ringtrain/nn/loss.hpp"

namespace ringtrain {

struct EpochRecord {
  int64_t epoch = 0, step = 0;
  double lr = 0.0;
  Score train, val;  // val.samples == 0: no validation split
  double images_per_s = 0.0, seconds = 0.0;
};

class MetricsLog {
 public:
  MetricsLog(const std::string& path, const std::string& metric_name);  // "" = disabled
  void write(const EpochRecord& record);

 private:
  std::ofstream out_;
};

}  // namespace ringtrain
