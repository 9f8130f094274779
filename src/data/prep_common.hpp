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

void check_config(const PrepConfig& config);

// Writes the three splits as shards into `dir` (train in `train_shards` parts, val and test in one each),
// replacing an earlier run's: they are written into a temporary directory inside `dir` first and moved in
// once all are written, so a failure (a full disk) leaves the earlier shards as they were. Fills the report's
// sample counts.
void publish_splits(const std::string& dir, const Table& train, const Table& val, const Table& test,
                    int64_t train_shards, PrepReport& report);

}  // namespace ringtrain::prep_detail
