// The per-epoch metrics CSV: one header line, one row per epoch. The whole file is rewritten atomically as
// each epoch ends (output_file.hpp; a CSV is small), so a killed job keeps what it measured and a failed
// write (disk full) is an error that keeps the previous file whole.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "ringtrain/nn/loss.hpp"

namespace ringtrain {

struct EpochRecord {
  int64_t epoch = 0, step = 0;
  double lr = 0.0;
  Score train, val;  // val.samples == 0: no validation split
  double images_per_s = 0.0;
  double epoch_seconds = 0.0;    // this epoch's training and validation
  double elapsed_seconds = 0.0;  // since this run (process) began training, to the epoch's end
  std::string report;  // lines the callbacks add under the epoch's line (the mode's report)
  std::vector<std::pair<std::string, std::string>> columns;  // and extra CSV columns: name, value
};

class MetricsLog {
 public:
  // append: a resumed run keeps the rows of the run it continues (when the file is there). Nothing is
  // written before the first record (the trainer checks the path first: check_output).
  MetricsLog(const std::string& path, const std::string& metric_name, bool append = false);
  // The first record written to a new file writes the header, with the record's extra columns.
  void write(const EpochRecord& record);

 private:
  std::string path_;
  std::string metric_;
  std::string text_;  // the whole file
  bool header_written_ = false;
};

}  // namespace ringtrain
