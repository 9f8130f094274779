// `ringtrain eval --report DIR`: the metrics (metrics.hpp) written into DIR as report.json and CSV files,
// then drawn as PNG plots by our matplotlib script (share/ringtrain/plot_report.py). Every file is replaced
// atomically (output_file.hpp); nothing else in DIR is touched.
//
// Classification: report.json (accuracy, the confusion matrix, per-class precision/recall/F1/support, macro
// and weighted averages, AUC), confusion_matrix.csv, per_class.csv, roc.csv (every curve's points), and
// confusion_matrix.png, roc.png. Regression: report.json (MAE, RMSE, R^2, overall and per target),
// predictions.csv (true and predicted values), and predicted_vs_true.png.
#pragma once
#include <string>
#include <vector>

#include "ringtrain/train/report/metrics.hpp"

namespace ringtrain {

// What a report is about, besides its numbers.
struct ReportSubject {
  std::string model_file;
  std::string data;                // the scored data, as its source names it
  std::vector<std::string> names;  // the classes' or targets' names, when the data has them
};

// Before any work: creates DIR if missing. Error when DIR is a file or cannot be written in, or when a
// report file there could not be replaced (a directory of that name, a device, one of `inputs`).
void prepare_report_dir(const std::string& dir, const std::vector<std::string>& inputs);

void write_classification_report(const std::string& dir, const ReportSubject& subject, const ClassificationMetrics& m);
// truth, predicted: samples x targets, in the target's units (predictions.csv and the scatter plot).
void write_regression_report(const std::string& dir, const ReportSubject& subject, const RegressionMetrics& m,
                             const std::vector<float>& truth, const std::vector<float>& predicted);

// Runs the plotting script on DIR's report (/usr/bin/python3, the script beside this executable's install:
// <prefix>/share/ringtrain/, also in a build tree). Returns the plots it wrote, one line; or, when it could
// not (no python3, no matplotlib, the script missing or failing), a line saying that the plots were skipped
// and why: the report's JSON and CSV files stand without them.
std::string plot_report(const std::string& dir);

}  // namespace ringtrain
