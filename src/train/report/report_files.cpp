// The report's JSON and CSV files. Numbers are written with 17 significant digits, so that they read back as
// the doubles they were (the report is checked against scikit-learn to 1e-6); an undefined one is null.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <ostream>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/text.hpp"
#include "ringtrain/train/output_file.hpp"
#include "ringtrain/train/report/report.hpp"

namespace fs = std::filesystem;

namespace ringtrain {

namespace {

// Every file a report may write, the plots included: each is checked before any work.
constexpr const char* kReportFiles[] = {"report.json",  "confusion_matrix.csv", "per_class.csv",
                                        "roc.csv",      "predictions.csv",      "confusion_matrix.png",
                                        "roc.png",      "predicted_vs_true.png"};

std::string number(double v) {
  if (!std::isfinite(v)) return v > 0 ? "inf" : v < 0 ? "-inf" : "nan";
  char text[32];
  std::snprintf(text, sizeof text, "%.17g", v);
  return text;
}

std::string json_number(std::optional<double> v) { return v && std::isfinite(*v) ? number(*v) : "null"; }

// Class or target i's name: the data's, else its index.
std::string name_of_output(const ReportSubject& s, int64_t i) {
  return static_cast<size_t>(i) < s.names.size() ? s.names[static_cast<size_t>(i)] : std::to_string(i);
}

std::string json_names(const ReportSubject& s, int64_t count) {
  std::string out = "[";
  for (int64_t i = 0; i < count; ++i) out += (i ? ", " : "") + json_string(name_of_output(s, i));
  return out + "]";
}

void write_file(const std::string& dir, const char* name, const std::function<void(std::ostream&)>& write) {
  write_text_atomically((fs::path(dir) / name).string(), write);
}

std::string json_scores(double precision, double recall, double f1) {
  return "\"precision\": " + number(precision) + ", \"recall\": " + number(recall) + ", \"f1\": " + number(f1);
}

void write_classification_json(std::ostream& out, const ReportSubject& s, const ClassificationMetrics& m) {
  const auto k = static_cast<size_t>(m.classes);
  out << "{\n  \"task\": \"classification\",\n  \"model_file\": " << json_string(s.model_file)
      << ",\n  \"data\": " << json_string(s.data) << ",\n  \"samples\": " << m.samples << ",\n  \"classes\": "
      << m.classes << ",\n  \"class_names\": " << json_names(s, m.classes) << ",\n  \"accuracy\": "
      << number(m.accuracy) << ",\n  \"confusion_matrix\": [";
  for (size_t t = 0; t < k; ++t) {
    out << (t ? ",\n    [" : "\n    [");
    for (size_t p = 0; p < k; ++p) out << (p ? ", " : "") << m.confusion[t * k + p];
    out << "]";
  }
  out << "\n  ],\n  \"per_class\": [";
  for (size_t c = 0; c < k; ++c) {
    const ClassScores& cs = m.per_class[c];
    out << (c ? ",\n    " : "\n    ") << "{\"class\": " << c << ", \"name\": "
        << json_string(name_of_output(s, static_cast<int64_t>(c))) << ", "
        << json_scores(cs.precision, cs.recall, cs.f1) << ", \"support\": " << cs.support << "}";
  }
  out << "\n  ],\n  \"macro_avg\": {" << json_scores(m.macro.precision, m.macro.recall, m.macro.f1)
      << "},\n  \"weighted_avg\": {" << json_scores(m.weighted.precision, m.weighted.recall, m.weighted.f1)
      << "},\n  \"roc_auc\": " << json_number(m.auc);
  if (m.classes == 2) {
    out << ",\n  \"roc_positive_class\": 1";
  } else {
    out << ",\n  \"roc_auc_per_class\": [";
    for (size_t c = 0; c < m.roc.size(); ++c) out << (c ? ", " : "") << json_number(m.roc[c].auc);
    out << "]";
  }
  out << "\n}\n";
}

void write_confusion_csv(std::ostream& out, const ReportSubject& s, const ClassificationMetrics& m) {
  out << "true\\predicted";
  for (int64_t c = 0; c < m.classes; ++c) out << "," << csv_field(name_of_output(s, c));
  out << "\n";
  const auto k = static_cast<size_t>(m.classes);
  for (size_t t = 0; t < k; ++t) {
    out << csv_field(name_of_output(s, static_cast<int64_t>(t)));
    for (size_t p = 0; p < k; ++p) out << "," << m.confusion[t * k + p];
    out << "\n";
  }
}

void write_per_class_csv(std::ostream& out, const ReportSubject& s, const ClassificationMetrics& m) {
  out << "class,name,precision,recall,f1,support\n";
  for (size_t c = 0; c < m.per_class.size(); ++c) {
    const ClassScores& cs = m.per_class[c];
    out << c << "," << csv_field(name_of_output(s, static_cast<int64_t>(c))) << "," << number(cs.precision) << ","
        << number(cs.recall) << "," << number(cs.f1) << "," << cs.support << "\n";
  }
  for (const auto& [name, avg] : {std::pair{"macro avg", m.macro}, std::pair{"weighted avg", m.weighted}})
    out << "," << name << "," << number(avg.precision) << "," << number(avg.recall) << "," << number(avg.f1) << ","
        << m.samples << "\n";
}

// One row per point of every curve: the curve's class (class 1 of two), fpr, tpr, and the threshold.
void write_roc_csv(std::ostream& out, const ReportSubject& s, const ClassificationMetrics& m) {
  out << "class,name,fpr,tpr,threshold\n";
  const int64_t first = m.classes == 2 ? 1 : 0;
  for (size_t r = 0; r < m.roc.size(); ++r) {
    const int64_t c = first + static_cast<int64_t>(r);
    const std::string name = csv_field(name_of_output(s, c));
    const RocCurve& curve = m.roc[r];
    for (size_t i = 0; i < curve.fpr.size(); ++i)
      out << c << "," << name << "," << number(curve.fpr[i]) << "," << number(curve.tpr[i]) << ","
          << number(curve.thresholds[i]) << "\n";
  }
}

void write_regression_json(std::ostream& out, const ReportSubject& s, const RegressionMetrics& m) {
  auto scores = [](const RegressionScores& r) {
    return "\"mae\": " + number(r.mae) + ", \"rmse\": " + number(r.rmse) + ", \"r2\": " + number(r.r2);
  };
  out << "{\n  \"task\": \"regression\",\n  \"model_file\": " << json_string(s.model_file) << ",\n  \"data\": "
      << json_string(s.data) << ",\n  \"samples\": " << m.samples << ",\n  \"targets\": " << m.targets
      << ",\n  \"target_names\": " << json_names(s, m.targets) << ",\n  " << scores(m.overall)
      << ",\n  \"per_target\": [";
  for (size_t t = 0; t < m.per_target.size(); ++t)
    out << (t ? ",\n    " : "\n    ") << "{\"target\": " << t << ", \"name\": "
        << json_string(name_of_output(s, static_cast<int64_t>(t))) << ", " << scores(m.per_target[t]) << "}";
  out << "\n  ]\n}\n";
}

void write_predictions_csv(std::ostream& out, const ReportSubject& s, int64_t targets, const std::vector<float>& truth,
                           const std::vector<float>& predicted) {
  out << "index";
  for (int64_t t = 0; t < targets; ++t) out << "," << csv_field("true_" + name_of_output(s, t));
  for (int64_t t = 0; t < targets; ++t) out << "," << csv_field("predicted_" + name_of_output(s, t));
  out << "\n";
  const auto k = static_cast<size_t>(targets);
  for (size_t i = 0; i < truth.size() / k; ++i) {
    out << i;
    for (size_t t = 0; t < k; ++t) out << "," << float_text(truth[i * k + t]);
    for (size_t t = 0; t < k; ++t) out << "," << float_text(predicted[i * k + t]);
    out << "\n";
  }
}

}  // namespace

void prepare_report_dir(const std::string& dir, const std::vector<std::string>& inputs) {
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    throw Error("--report '" + dir + "' is a file; it names the directory the report goes into");
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create the report directory '" + dir + "': " + ec.message());
  for (const char* name : kReportFiles) check_output((fs::path(dir) / name).string(), "the report", inputs);
}

void write_classification_report(const std::string& dir, const ReportSubject& subject, const ClassificationMetrics& m) {
  write_file(dir, "report.json", [&](std::ostream& out) { write_classification_json(out, subject, m); });
  write_file(dir, "confusion_matrix.csv", [&](std::ostream& out) { write_confusion_csv(out, subject, m); });
  write_file(dir, "per_class.csv", [&](std::ostream& out) { write_per_class_csv(out, subject, m); });
  write_file(dir, "roc.csv", [&](std::ostream& out) { write_roc_csv(out, subject, m); });
}

void write_regression_report(const std::string& dir, const ReportSubject& subject, const RegressionMetrics& m,
                             const std::vector<float>& truth, const std::vector<float>& predicted) {
  write_file(dir, "report.json", [&](std::ostream& out) { write_regression_json(out, subject, m); });
  write_file(dir, "predictions.csv",
             [&](std::ostream& out) { write_predictions_csv(out, subject, m.targets, truth, predicted); });
}

}  // namespace ringtrain
