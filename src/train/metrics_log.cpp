#include "ringtrain/train/metrics_log.hpp"

#include <filesystem>

#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

MetricsLog::MetricsLog(const std::string& path, const std::string& metric, const std::vector<std::string>& extra,
                       bool append) {
  if (path.empty()) return;
  std::error_code ec;
  const bool continuing = append && std::filesystem::file_size(path, ec) > 0 && !ec;
  out_.open(path, continuing ? std::ios::app : std::ios::trunc);
  if (!out_) throw Error("cannot write metrics file '" + path + "' (is the directory there and writable?)");
  if (continuing) return;  // a resumed run adds its epochs under the rows already there
  out_ << "epoch,step,lr,train_loss,train_" << metric << ",val_loss,val_" << metric << ",images_per_s,seconds";
  for (const std::string& column : extra) out_ << ',' << column;
  out_ << '\n';
  out_.flush();
}

void MetricsLog::write(const EpochRecord& r) {
  if (!out_.is_open()) return;
  out_ << r.epoch << ',' << r.step << ',' << r.lr << ',' << r.train.loss() << ',' << r.train.metric() << ',';
  if (r.val.samples) out_ << r.val.loss() << ',' << r.val.metric();
  else out_ << ',';
  out_ << ',' << r.images_per_s << ',' << r.seconds;
  for (const std::string& value : r.extra) out_ << ',' << value;
  out_ << '\n';
  out_.flush();
}

}  // namespace ringtrain
