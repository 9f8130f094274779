// The sweep's directory: its record (sweep.json), trials.csv and each trial's run directory, made before any
// trial runs, and checked so that no sweep writes over another.
#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/text.hpp"
#include "ringtrain/train/output_file.hpp"
#include "ringtrain/train/run_dir.hpp"
#include "ringtrain/train/sweep.hpp"
#include "sweep_files.hpp"

namespace fs = std::filesystem;

namespace ringtrain {

namespace sweep_files {

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string quoted = "\"";
  for (const char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

std::string csv_line(const std::vector<std::string>& fields) {
  std::string line;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) line += ',';
    line += csv_field(fields[i]);
  }
  return line + "\n";
}

std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted && c == '"' && i + 1 < line.size() && line[i + 1] == '"') fields.back() += line[i++];
    else if (c == '"') quoted = !quoted;
    else if (c == ',' && !quoted) fields.emplace_back();
    else if (c != '\r') fields.back() += c;
  }
  return fields;
}

std::vector<std::vector<std::string>> csv_rows(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    if (!line.empty()) rows.push_back(csv_fields(line));
  return rows;
}

}  // namespace sweep_files

namespace {

using namespace sweep_files;

std::string json_list(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ", ") + json_string(item);
  return "[" + out + "]";
}

// The shortest text that reads back as `v`: 0.9, not 0.90000000000000002.
std::string number(double v) {
  char text[32];
  const auto [end, error] = std::to_chars(text, text + sizeof text, v);
  return error == std::errc() ? std::string(text, end) : "0";
}

// What the sweep is, and nothing about how it runs (locally or as a job array, on how many ranks): --resume
// continues a sweep only with the same record. The plot reads the distributions from it.
std::string sweep_record(const SweepConfig& c, size_t trials) {
  std::ostringstream json;
  json << "{\n  \"trials\": " << trials << ",\n  \"seed\": " << c.space.seed << ",\n  \"draws\": " << c.space.draws
       << ",\n  \"base_config\": " << json_string(c.base_config) << ",\n  \"train_flags\": "
       << json_list(c.train_flags) << ",\n  \"grid\": [";
  for (size_t i = 0; i < c.space.grid.size(); ++i)
    json << (i ? "," : "") << "\n    {\"key\": " << json_string(c.space.grid[i].key)
         << ", \"values\": " << json_list(c.space.grid[i].values) << "}";
  json << (c.space.grid.empty() ? "" : "\n  ") << "],\n  \"random\": [";
  for (size_t i = 0; i < c.space.random.size(); ++i) {
    const RandomAxis& a = c.space.random[i];
    json << (i ? "," : "") << "\n    {\"key\": " << json_string(a.key) << ", \"distribution\": "
         << json_string(name_of(a.distribution)) << ", \"low\": " << number(a.low) << ", \"high\": " << number(a.high)
         << "}";
  }
  json << (c.space.random.empty() ? "" : "\n  ") << "]\n}\n";
  return json.str();
}

std::string trials_csv(const std::vector<PlannedTrial>& trials) {
  std::vector<std::string> header = {"trial"};
  for (const auto& [key, value] : trials.front().trial.values) header.push_back(key);
  std::string csv = csv_line(header);
  for (const PlannedTrial& t : trials) {
    std::vector<std::string> row = {t.trial.name};
    for (const auto& [key, value] : t.trial.values) row.push_back(value);
    csv += csv_line(row);
  }
  return csv;
}

// A new or empty directory, or with --resume the one this very sweep was written to.
void check_out_dir(const SweepConfig& c, const std::string& record) {
  const fs::path out(c.out);
  std::error_code ec;
  if (fs::exists(out, ec) && !fs::is_directory(out, ec)) throw Error("--out '" + c.out + "' is not a directory");
  if (fs::exists(out / kRecord, ec)) {
    if (!c.resume)
      throw Error("--out '" + c.out + "' already holds a sweep: add --resume to continue it (its finished trials "
                  "are kept), or give another directory");
    if (read_text((out / kRecord).string()) != record)
      throw Error("--out '" + c.out + "' holds another sweep (its " + kRecord + " differs from this one's: other "
                  "settings swept, values, seed, base config or flags after --): give another directory");
    return;
  }
  if (fs::exists(out, ec) && !fs::is_empty(out, ec))
    throw Error("--out '" + c.out + "' is not empty and holds no sweep (no " + kRecord +
                "): give a new or empty directory");
  fs::create_directories(out, ec);
  if (ec) throw Error("cannot create --out '" + c.out + "': " + ec.message());
}

}  // namespace

std::vector<const PlannedTrial*> prepare_sweep(const SweepConfig& c, const std::vector<PlannedTrial>& trials) {
  const std::string record = sweep_record(c, trials.size());
  check_out_dir(c, record);
  check_writable_dir(c.out, "cannot write to --out '" + c.out + "': ");
  std::vector<const PlannedTrial*> pending;
  for (const PlannedTrial& t : trials) {
    const std::string dir = (fs::path(c.out) / t.trial.name).string();
    if (read_run_record(dir).status != RunStatus::finished) {
      pending.push_back(&t);
      continue;
    }
    // A finished trial is kept: it must be the trial planned now.
    if (read_text((fs::path(dir) / kSettingsFile).string()) != t.settings)
      throw Error(t.trial.name + " of --out '" + c.out + "' finished with other settings than this sweep gives it "
                  "(its " + kSettingsFile + " differs: the base config or the flags after -- changed): give "
                  "another directory");
  }
  write_text_atomically((fs::path(c.out) / kRecord).string(), [&](std::ostream& out) { out << record; });
  write_text_atomically((fs::path(c.out) / kTrials).string(), [&](std::ostream& out) { out << trials_csv(trials); });
  for (const PlannedTrial* t : pending) {
    const fs::path dir = fs::path(c.out) / t->trial.name;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw Error("cannot create '" + dir.string() + "': " + ec.message());
    write_text_atomically((dir / kSettingsFile).string(), [&](std::ostream& out) { out << t->settings; });
  }
  return pending;
}

std::string this_executable() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw Error("cannot find this program's own path (/proc/self/exe): " + ec.message());
  return self.string();
}

}  // namespace ringtrain
