#include "ringtrain/train/metrics_log.hpp"

#include <filesystem>

#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

MetricsLog::MetricsLog(const std::string& path, const std::string& metric, bool append) : metric_(metric) {
  std::error_code ec;
  const bool continuing = append && std::filesystem::file_size(path, ec) > 0 && !ec;
  out_.open(path, continuing ? std::ios::app : std::ios::trunc);
  if (!out_) throw Error("cannot write metrics file '" + path + "' (is the directory there and writable?)");
  header_written_ = continuing;  // a resumed run adds its epochs under the rows already there
}

void MetricsLog::write(const EpochRecord& r) {
  if (!header_written_) {
    out_ << "epoch,step,lr,train_loss,train_" << metric_ << ",val_loss,val_" << metric_ << ",images_per_s,seconds";
    for (const auto& [name, value] : r.columns) out_ << ',' << name;
    out_ << '\n';
    header_written_ = true;
  }
  out_ << r.epoch << ',' << r.step << ',' << r.lr << ',' << r.train.loss() << ',' << r.train.metric() << ',';
  if (r.val.samples) out_ << r.val.loss() << ',' << r.val.metric();
  else out_ << ',';
  out_ << ',' << r.images_per_s << ',' << r.seconds;
  for (const auto& [name, value] : r.columns) out_ << ',' << value;
  out_ << '\n';
  out_.flush();
}

}  // namespace ringtrain
