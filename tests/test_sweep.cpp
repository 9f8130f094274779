// A sweep's trials (train/sweep.hpp): the grid's product, seeded draws within their bounds and with their
// distribution.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/train/sweep.hpp"

namespace ringtrain {
namespace {

std::string value(const Trial& t, const std::string& key) {
  for (const auto& [k, v] : t.values)
    if (k == key) return v;
  return "";
}

TEST(SweepTrials, TheGridIsTheProductOfItsAxesTheLastFastest) {
  SweepSpace space;
  space.grid = {{"lr", {"0.1", "0.03", "0.01"}}, {"batch", {"32", "64"}}};
  const std::vector<Trial> trials = make_trials(space);
  ASSERT_EQ(trials.size(), 6u);
  const char* expected[][2] = {{"0.1", "32"},  {"0.1", "64"},  {"0.03", "32"},
                               {"0.03", "64"}, {"0.01", "32"}, {"0.01", "64"}};
  for (size_t i = 0; i < trials.size(); ++i) {
    EXPECT_EQ(trials[i].index, static_cast<int64_t>(i));
    EXPECT_EQ(trials[i].name, "trial-00" + std::to_string(i));
    ASSERT_EQ(trials[i].values.size(), 2u);
    EXPECT_EQ(trials[i].values[0], std::make_pair(std::string("lr"), std::string(expected[i][0])));
    EXPECT_EQ(trials[i].values[1], std::make_pair(std::string("batch"), std::string(expected[i][1])));
  }
}

TEST(SweepTrials, EachGridPointGetsItsDraws) {
  SweepSpace space;
  space.grid = {{"batch", {"32", "64"}}};
  space.random = {{"lr", Distribution::loguniform, 1e-4, 1e-1}, {"momentum", Distribution::uniform, 0.5, 0.9}};
  space.draws = 3;
  const std::vector<Trial> trials = make_trials(space);
  ASSERT_EQ(trials.size(), 6u);
  std::set<std::string> lrs;
  for (size_t i = 0; i < trials.size(); ++i) {
    EXPECT_EQ(value(trials[i], "batch"), i < 3 ? "32" : "64");
    lrs.insert(value(trials[i], "lr"));
    EXPECT_EQ(trials[i].values.size(), 3u);
  }
  EXPECT_EQ(lrs.size(), 6u) << "every trial draws anew";
  space.grid.clear();  // draws alone: --trials of them in all
  EXPECT_EQ(make_trials(space).size(), 3u);
}

TEST(SweepTrials, TheSameSeedGivesTheSameTrialsAndAnotherOthers) {
  SweepSpace space;
  space.random = {{"lr", Distribution::loguniform, 1e-4, 1e-1}};
  space.draws = 20;
  space.seed = 7;
  const std::vector<Trial> a = make_trials(space), b = make_trials(space);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].values, b[i].values);
  // A trial's draw depends on its seed, axis and index alone: fewer trials draw the same first ones.
  space.draws = 5;
  const std::vector<Trial> fewer = make_trials(space);
  for (size_t i = 0; i < fewer.size(); ++i) EXPECT_EQ(fewer[i].values, a[i].values);
  space.seed = 8;
  const std::vector<Trial> other = make_trials(space);
  int same = 0;
  for (size_t i = 0; i < other.size(); ++i) same += other[i].values == a[i].values;
  EXPECT_EQ(same, 0);
}

// Draws stay within their bounds (as printed), uniform's spread evenly, loguniform's evenly over the decades.
TEST(SweepTrials, DrawsFollowTheirDistributionWithinBounds) {
  SweepSpace space;
  space.random = {{"lr", Distribution::loguniform, 1e-4, 1e-1}, {"momentum", Distribution::uniform, 0.5, 0.9}};
  space.draws = 3000;
  int decades[3] = {0, 0, 0};
  double log_sum = 0.0, sum = 0.0;
  for (const Trial& t : make_trials(space)) {
    const double lr = std::stod(value(t, "lr")), momentum = std::stod(value(t, "momentum"));
    ASSERT_GE(lr, 1e-4);
    ASSERT_LE(lr, 1e-1);
    ASSERT_GE(momentum, 0.5);
    ASSERT_LE(momentum, 0.9);
    ++decades[std::min(2, static_cast<int>(std::floor(std::log10(lr) + 4.0)))];
    log_sum += std::log10(lr);
    sum += momentum;
  }
  for (int d = 0; d < 3; ++d) EXPECT_NEAR(decades[d] / 3000.0, 1.0 / 3.0, 0.04) << "decade " << d;
  EXPECT_NEAR(log_sum / 3000.0, -2.5, 0.05);  // the middle of log10's range [-4, -1]
  EXPECT_NEAR(sum / 3000.0, 0.7, 0.01);
}

TEST(SweepTrials, ASweepOfMoreThanAThousandTrialsNamesThemWithMoreDigits) {
  SweepSpace space;
  space.random = {{"lr", Distribution::uniform, 0.1, 0.2}};
  space.draws = 1001;
  const std::vector<Trial> trials = make_trials(space);
  EXPECT_EQ(trials.front().name, "trial-0000");
  EXPECT_EQ(trials.back().name, "trial-1000");
}

TEST(SweepTrials, TooManyTrialsIsAnError) {
  SweepSpace space;
  GridAxis axis{"seed", {}};
  for (int i = 0; i < 400; ++i) axis.values.push_back(std::to_string(i));
  space.grid = {axis, axis};  // 160000
  try {
    make_trials(space);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("more than 100000 trials"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ringtrain
