#include "ringtrain/train/metrics_log.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "ringtrain/train/output_file.hpp"

namespace ringtrain {

MetricsLog::MetricsLog(const std::string& path, const std::string& metric, bool append)
    : path_(path), metric_(metric) {
  std::error_code ec;
  if (!append || std::filesystem::file_size(path, ec) == 0 || ec) return;
  // A resumed run adds its epochs under the rows already there.
  std::ifstream in(path);
  std::ostringstream rows;
  rows << in.rdbuf();
  text_ = rows.str();
  header_written_ = !text_.empty();
}

void MetricsLog::write(const EpochRecord& r) {
  std::ostringstream out;
  if (!header_written_) {
    out << "epoch,step,lr,train_loss,train_" << metric_ << ",val_loss,val_" << metric_ << ",images_per_s,epoch_seconds,elapsed_seconds";
    for (const auto& [name, value] : r.columns) out << ',' << name;
    out << '\n';
    header_written_ = true;
  }
  out << r.epoch << ',' << r.step << ',' << r.lr << ',' << r.train.loss() << ',' << r.train.metric() << ',';
  if (r.val.samples) out << r.val.loss() << ',' << r.val.metric();
  else out << ',';
  out << ',' << r.images_per_s << ',' << r.epoch_seconds << ',' << r.elapsed_seconds;
  for (const auto& [name, value] : r.columns) out << ',' << value;
  out << '\n';
  text_ += out.str();
  write_text_atomically(path_, [&](std::ostream& file) { file << text_; });
}

}  // namespace ringtrain
