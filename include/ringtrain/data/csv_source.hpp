// A raw CSV read through a trained model's input transform (model files carry it, InputTransform): the rows
// of new data become exactly the inputs the model's training shards gave it, for `ringtrain predict --input
// new.csv`. The same conversion as `prep --like` (csv_table.hpp): columns found by name, a missing or extra
// column an error naming it, a category or class the training data never had an error naming line, column
// and value.
#pragma once
#include <memory>
#include <string>

#include "ringtrain/data/prep.hpp"
#include "ringtrain/data/sample_source.hpp"
#include "ringtrain/data/shard.hpp"

namespace ringtrain {

// The CSV's rows in file order, one block. With the target column its samples carry labels or targets
// (standardised as `targets` says); without it they are features only. `missing`: error or mean (the training
// split's mean); drop is refused, since predictions are one per input row.
std::unique_ptr<SampleSource> open_csv_with_transform(const std::string& path, const InputTransform& input,
                                                      const TargetSpace& targets, MissingValues missing);

}  // namespace ringtrain
