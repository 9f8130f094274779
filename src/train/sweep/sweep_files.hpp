// What the sweep's parts share about its directory: the names of its files and how they are read.
#pragma once
#include <string>
#include <vector>

namespace ringtrain::sweep_files {

inline constexpr const char* kRecord = "sweep.json";
inline constexpr const char* kTrials = "trials.csv";
inline constexpr const char* kScript = "sweep.sbatch";
inline constexpr const char* kSummary = "summary.csv";
inline constexpr const char* kPlot = "sweep.png";
inline constexpr const char* kTrialOutput = "output.txt";  // a local trial's stdout and stderr

// The whole file; "" when it cannot be read.
std::string read_text(const std::string& path);

// A CSV field: as it is, or quoted when it holds a comma, a quote or a line break.
std::string csv_field(const std::string& text);
// The fields as one CSV line, line break included.
std::string csv_line(const std::vector<std::string>& fields);
// The fields of a CSV line as csv_field writes them.
std::vector<std::string> csv_fields(const std::string& line);
// The lines of a CSV file's text (no line breaks inside fields: none of the sweep's files has them).
std::vector<std::vector<std::string>> csv_rows(const std::string& text);

}  // namespace ringtrain::sweep_files
