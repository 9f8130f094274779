// Shared by the IDX and CSV converters: split a sample table and write it as shards.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ringtrain/data/prep.hpp"
#include "ringtrain/data/shard.hpp"

namespace ringtrain::prep_detail {

// All samples of a converted dataset, in one ShardData with `meta` describing a single sample.
struct Table {
  ShardMeta meta;  // samples = row count
  ShardData data;
};

// Rows [rows] of `table` as a new table (in that order).
Table take_rows(const Table& table, const std::vector<int64_t>& rows);
// Splits off `fraction` of the rows (at least one when fraction > 0), chosen by a seeded shuffle.
void split_off(const Table& all, double fraction, uint64_t seed, Table& kept, Table& held_out);
// Writes <dir>/<split>-NNNNN.h5 in `shards` nearly equal parts; returns the sample count.
int64_t write_split(const std::string& dir, const std::string& split, const Table& table, int64_t shards);

void check_config(const PrepConfig& config);
// Removes train-/val-/test-*.h5 left by an earlier run; called only once the new data converted cleanly.
void clear_old_shards(const std::string& dir);

}  // namespace ringtrain::prep_detail
