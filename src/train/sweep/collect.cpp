// `ringtrain sweep --collect DIR`: each trial's best epoch by one metric, the trials ranked, summary.csv, and
// the metric against each swept setting in sweep.png (drawn by ringtrain-plot-sweep, beside the binary).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <ostream>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/text.hpp"
#include "ringtrain/train/output_file.hpp"
#include "ringtrain/train/run_dir.hpp"
#include "ringtrain/train/sweep.hpp"
#include "sweep_files.hpp"

namespace fs = std::filesystem;

namespace ringtrain {

namespace {

using namespace sweep_files;

// One trial as trials.csv and its run directory say.
struct TrialResult {
  std::vector<std::string> row;  // trials.csv's: the name, then each swept value
  RunRecord record;
  std::vector<std::vector<std::string>> metrics;  // metrics.csv, its header first; empty when there is none
  std::optional<double> best;
  std::string best_epoch;
  std::string why;  // why it is not ranked; "" when it is
};

std::optional<double> number_in(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (*end != '\0' || !std::isfinite(v)) return std::nullopt;
  return v;
}

bool better(double a, double b, Goal goal) { return goal == Goal::max ? a > b : a < b; }

// The metric a sweep is ranked by unless --metric says: the validation metric (val_accuracy, val_mae: the 7th
// column, as metrics_log.hpp writes it), or the training one (the 5th) when no trial has validation values
// (data without a validation split).
std::string default_metric(const std::vector<TrialResult>& trials) {
  std::string training;
  for (const TrialResult& t : trials) {
    if (t.metrics.empty() || t.metrics[0].size() <= 6) continue;
    training = t.metrics[0][4];
    for (size_t r = 1; r < t.metrics.size(); ++r)
      if (t.metrics[r].size() > 6 && number_in(t.metrics[r][6])) return t.metrics[0][6];
  }
  return training.empty() ? "val_loss" : training;
}

// Its best epoch's value of `metric`, or why it has none; and whether it ran to its end.
void score(TrialResult& t, const std::string& metric, Goal goal) {
  if (t.record.status != RunStatus::finished) t.why = describe(t.record);
  if (t.metrics.empty()) {
    if (t.why.empty()) t.why = "finished, but wrote no metrics.csv";
    return;
  }
  const std::vector<std::string>& header = t.metrics[0];
  const auto column = std::find(header.begin(), header.end(), metric);
  if (column == header.end()) {
    if (t.why.empty()) t.why = "its metrics.csv has no column " + metric;
    return;
  }
  const size_t at = static_cast<size_t>(column - header.begin());
  for (size_t r = 1; r < t.metrics.size(); ++r) {
    const std::optional<double> v = at < t.metrics[r].size() ? number_in(t.metrics[r][at]) : std::nullopt;
    if (v && (!t.best || better(*v, *t.best, goal))) t.best = v, t.best_epoch = t.metrics[r][0];
  }
  if (!t.best && t.why.empty()) t.why = "no " + metric + " value in its metrics.csv (no validation split?)";
}

std::string value_text(const std::optional<double>& v) {
  if (!v) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", *v);
  return text;
}

// The trials in rank order: ranked ones by their best value (ties in trial order), then the others.
std::vector<const TrialResult*> ranking(const std::vector<TrialResult>& trials, Goal goal) {
  std::vector<const TrialResult*> order;
  for (const TrialResult& t : trials) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [&](const TrialResult* a, const TrialResult* b) {
    if (a->why.empty() != b->why.empty()) return a->why.empty();
    return a->why.empty() && better(*a->best, *b->best, goal);
  });
  return order;
}

// The table as the terminal shows it, columns aligned.
void print_table(const std::vector<std::vector<std::string>>& rows, std::ostream& out) {
  std::vector<size_t> width;
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], row[i].size());
    }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i)
      line += row[i] + (i + 1 < row.size() ? std::string(width[i] - row[i].size() + 2, ' ') : "");
    out << line << "\n";
  }
}

// The plot script beside the binary, run by /usr/bin/python3 (Debian's, with python3-matplotlib) unless
// RINGTRAIN_PYTHON names another. Returns the line to print: what it wrote, or why it did not.
std::string plot(const std::string& dir, const std::string& metric) {
  const std::string script = (fs::path(this_executable()).parent_path() / "ringtrain-plot-sweep").string();
  const std::string png = (fs::path(dir) / kPlot).string();
  if (!fs::exists(script)) return kPlot + std::string(" not written: no plot script at ") + script;
  const char* chosen = std::getenv("RINGTRAIN_PYTHON");
  const std::string python = chosen && *chosen ? chosen : fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
  const std::string command =
      shell_word(python) + " " + shell_word(script) + " " + shell_word(dir) + " " + shell_word(metric) + " 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
  if (!pipe) return std::string(kPlot) + " not written: cannot run " + python;
  std::string said;
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, pipe.get())) said += buffer;
  const int status = ::pclose(pipe.release());
  while (!said.empty() && said.back() == '\n') said.pop_back();
  const std::string last_line = said.substr(said.rfind('\n') == std::string::npos ? 0 : said.rfind('\n') + 1);
  if (status == 0) return "wrote " + png;
  return std::string(kPlot) + " not written: " + (last_line.empty() ? python + " failed" : last_line);
}

std::vector<TrialResult> read_trials(const std::string& dir, std::vector<std::string>& header) {
  const std::string path = (fs::path(dir) / kTrials).string();
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    throw Error("--collect '" + dir + "' holds no sweep (no " + kTrials + ": `ringtrain sweep --out` writes one)");
  std::vector<std::vector<std::string>> rows = csv_rows(read_text(path));
  if (rows.size() < 2 || rows[0].empty() || rows[0][0] != "trial")
    throw Error("--collect '" + dir + "': " + kTrials + " lists no trials");
  header = rows[0];
  std::vector<TrialResult> trials;
  for (size_t r = 1; r < rows.size(); ++r) {
    TrialResult t;
    t.row = rows[r];
    t.row.resize(header.size());
    const std::string trial_dir = (fs::path(dir) / t.row[0]).string();
    t.record = read_run_record(trial_dir);
    t.metrics = csv_rows(read_text((fs::path(trial_dir) / kRunMetricsFile).string()));
    trials.push_back(std::move(t));
  }
  return trials;
}

// No trial has the column at all: a misspelt --metric, said once rather than once per trial.
void check_metric_exists(const std::vector<TrialResult>& trials, const std::string& metric) {
  const TrialResult* example = nullptr;
  for (const TrialResult& t : trials) {
    if (t.metrics.empty()) continue;
    if (std::find(t.metrics[0].begin(), t.metrics[0].end(), metric) != t.metrics[0].end()) return;
    if (!example) example = &t;
  }
  if (!example) return;  // no trial wrote metrics yet: each says why
  std::string columns;
  for (const std::string& name : example->metrics[0]) columns += (columns.empty() ? "" : ", ") + name;
  throw Error("--metric " + metric + ": no trial's metrics.csv has that column (" + example->row[0] + "'s has " +
              columns + ")");
}

}  // namespace

void collect_sweep(const CollectConfig& c, std::ostream& out) {
  std::vector<std::string> keys;  // trials.csv's header: trial, then the swept settings
  std::vector<TrialResult> trials = read_trials(c.dir, keys);
  const std::string metric = c.metric.empty() ? default_metric(trials) : c.metric;
  check_metric_exists(trials, metric);
  const Goal goal = c.goal ? *c.goal : metric.ends_with("accuracy") ? Goal::max : Goal::min;
  for (TrialResult& t : trials) score(t, metric, goal);
  std::vector<std::vector<std::string>> table = {{"rank", "trial", metric, "epoch"}};
  table[0].insert(table[0].end(), keys.begin() + 1, keys.end());
  std::vector<std::string> header = {"rank", "trial", "status", metric, "epoch"};
  header.insert(header.end(), keys.begin() + 1, keys.end());
  header.push_back("note");
  std::string csv = csv_line(header);
  int64_t rank = 0, ranked = 0;
  for (const TrialResult* t : ranking(trials, goal)) {
    const std::string place = t->why.empty() ? std::to_string(++rank) : "-";
    ranked += t->why.empty();
    std::vector<std::string> row = {place, t->row[0], value_text(t->best), t->best ? t->best_epoch : "-"};
    row.insert(row.end(), t->row.begin() + 1, t->row.end());
    if (!t->why.empty()) row.push_back(t->why);
    table.push_back(row);
    std::vector<std::string> fields = {t->why.empty() ? place : "", t->row[0], name_of(t->record.status),
                                       t->best ? value_text(t->best) : "", t->best ? t->best_epoch : ""};
    fields.insert(fields.end(), t->row.begin() + 1, t->row.end());
    fields.push_back(t->why);
    csv += csv_line(fields);
  }
  out << counted(static_cast<int64_t>(trials.size()), "trial") << " in " << c.dir << ", " << ranked
      << " ranked by their best epoch's " << metric << " (" << (goal == Goal::max ? "highest" : "lowest")
      << " first):\n";
  print_table(table, out);
  const std::string summary = (fs::path(c.dir) / kSummary).string();
  write_text_atomically(summary, [&](std::ostream& file) { file << csv; });
  out << "wrote " << summary << "\n" << plot(c.dir, metric) << std::endl;
}

}  // namespace ringtrain
