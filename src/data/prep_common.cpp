#include "prep_common.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/rng.hpp"

namespace ringtrain::prep_detail {

Table take_rows(const Table& t, const std::vector<int64_t>& rows) {
  Table out;
  out.meta = t.meta;
  out.meta.samples = static_cast<int64_t>(rows.size());
  const size_t f = static_cast<size_t>(t.meta.features()), k = static_cast<size_t>(t.meta.target_dim);
  const size_t per_sample = static_cast<size_t>(t.meta.labels_per_sample());
  for (int64_t r : rows) {
    const size_t i = static_cast<size_t>(r);
    if (t.meta.x_type == PixelType::u8)
      out.data.x_u8.insert(out.data.x_u8.end(), t.data.x_u8.begin() + i * f, t.data.x_u8.begin() + (i + 1) * f);
    else
      out.data.x_f32.insert(out.data.x_f32.end(), t.data.x_f32.begin() + i * f, t.data.x_f32.begin() + (i + 1) * f);
    if (t.meta.features_only) continue;
    if (t.meta.classification())
      out.data.labels.insert(out.data.labels.end(), t.data.labels.begin() + i * per_sample,
                             t.data.labels.begin() + (i + 1) * per_sample);
    else out.data.targets.insert(out.data.targets.end(), t.data.targets.begin() + i * k, t.data.targets.begin() + (i + 1) * k);
  }
  return out;
}

void split_off(const Table& all, double fraction, uint64_t seed, Table& kept, Table& held_out) {
  const int64_t n = all.meta.samples;
  int64_t held = fraction > 0.0 ? std::max<int64_t>(1, std::llround(fraction * static_cast<double>(n))) : 0;
  if (held >= n) throw Error("cannot hold out " + std::to_string(held) + " of " + std::to_string(n) + " samples");
  std::vector<int64_t> rows(static_cast<size_t>(n));
  std::iota(rows.begin(), rows.end(), 0);
  Rng rng(seed);
  for (size_t i = rows.size(); i > 1; --i) std::swap(rows[i - 1], rows[rng.below(i)]);
  std::vector<int64_t> out_rows(rows.begin(), rows.begin() + held), in_rows(rows.begin() + held, rows.end());
  std::sort(out_rows.begin(), out_rows.end());
  std::sort(in_rows.begin(), in_rows.end());
  held_out = take_rows(all, out_rows);
  kept = take_rows(all, in_rows);
}

void check_config(const PrepConfig& c) {
  if (c.input.empty()) throw Error("prep needs --input");
  if (c.out_dir.empty()) throw Error("prep needs --out");
  if (c.shards < 1) throw Error("--shards must be at least 1");
  if (!(c.val_fraction >= 0.0 && c.val_fraction < 1.0)) throw Error("--val-fraction must be in [0, 1)");
  if (!(c.test_fraction >= 0.0 && c.test_fraction < 1.0)) throw Error("--test-fraction must be in [0, 1)");
}

namespace {

// Writes <dir>/<split>-NNNNN.h5 in `shards` nearly equal parts; returns the sample count.
int64_t write_split(const std::string& dir, const std::string& split, const Table& t, int64_t shards) {
  const int64_t n = t.meta.samples;
  if (n == 0) return 0;
  shards = std::min(shards, n);
  for (int64_t s = 0; s < shards; ++s) {
    std::vector<int64_t> rows;
    for (int64_t r = s * n / shards; r < (s + 1) * n / shards; ++r) rows.push_back(r);
    const Table part = take_rows(t, rows);
    char name[64];
    std::snprintf(name, sizeof name, "%s-%05lld.h5", split.c_str(), static_cast<long long>(s));
    write_shard((std::filesystem::path(dir) / name).string(), part.meta, part.data);
  }
  return n;
}

// What a prep killed while writing left: its temporary directory, named by a process no longer running.
void remove_dead_staging(const std::string& dir) {
  std::error_code ec;
  for (const std::filesystem::directory_entry& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string(), prefix = ".prep.tmp.";
    if (!name.starts_with(prefix)) continue;
    const std::string pid = name.substr(prefix.size());
    if (pid.empty() || pid.size() > 9 || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (::kill(static_cast<pid_t>(std::stol(pid)), 0) == 0 || errno != ESRCH) continue;
    std::error_code ignored;
    std::filesystem::remove_all(entry.path(), ignored);
  }
}

bool is_shard_name(const std::string& name) {
  return name.ends_with(".h5") && (name.starts_with("train-") || name.starts_with("val-") || name.starts_with("test-"));
}

}  // namespace

void publish_splits(const std::string& dir, const Table& train, const Table& val, const Table& test,
                    int64_t train_shards, PrepReport& report) {
  namespace fs = std::filesystem;
  const fs::path staging = fs::path(dir) / (".prep.tmp." + std::to_string(::getpid()));
  std::error_code ignored, ec;
  // Made only now that the input converted, and removed again if nothing could be written into it: a
  // failed prep leaves no empty directory behind, nor the parents it made for it (--out new/data).
  fs::path first_made = fs::absolute(dir, ec);
  while (first_made.parent_path() != first_made && !fs::exists(first_made.parent_path(), ignored))
    first_made = first_made.parent_path();
  const bool created = fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create output directory '" + dir + "': " + ec.message());
  auto remove_created = [&] {
    if (!created) return;
    for (fs::path p = fs::absolute(dir, ignored); fs::remove(p, ignored) && p != first_made; p = p.parent_path()) {
    }  // fs::remove takes only empty directories
  };
  remove_dead_staging(dir);
  try {
    fs::create_directory(staging);
    report.train = write_split(staging.string(), "train", train, train_shards);
    report.val = write_split(staging.string(), "val", val, 1);
    report.test = write_split(staging.string(), "test", test, 1);
    // Old shards from an earlier run would silently join the new dataset.
    for (const fs::directory_entry& entry : fs::directory_iterator(dir))
      if (is_shard_name(entry.path().filename().string())) fs::remove(entry.path());
    for (const fs::directory_entry& entry : fs::directory_iterator(staging))
      fs::rename(entry.path(), fs::path(dir) / entry.path().filename());
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(staging, ignored);
    remove_created();
    throw Error("cannot write the shards to '" + dir + "': " + e.code().message());
  } catch (const Error& e) {
    fs::remove_all(staging, ignored);
    remove_created();
    throw Error(std::string(e.what()) + (created ? std::string(" (nothing was written)")
                                                 : " (the shards already in '" + dir + "' are kept)"));
  }
  fs::remove(staging, ignored);
}

}  // namespace ringtrain::prep_detail
