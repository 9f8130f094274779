// A sweep's trials: the grid's product, each point with its random draws.
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "ringtrain/tensor/counter_rng.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/train/sweep.hpp"

namespace ringtrain {

namespace {

// Uniform in [0, 1] from 53 random bits: a pure function of (seed, axis, trial), so that a trial's draws do
// not depend on how many trials come before it or how many axes follow.
double uniform_unit(uint64_t seed, size_t axis, int64_t trial) {
  const uint64_t bits = counter_hash(seed, axis, static_cast<uint64_t>(trial)) >> 11;
  return static_cast<double>(bits) / static_cast<double>((uint64_t{1} << 53) - 1);
}

double draw(const RandomAxis& axis, double u) {
  if (axis.distribution == Distribution::uniform) return axis.low + u * (axis.high - axis.low);
  return std::exp(std::log(axis.low) + u * (std::log(axis.high) - std::log(axis.low)));
}

// Six significant digits, what a setting needs, and what trials.csv and settings.ini then both say; more where
// six would round past a bound given with more.
std::string value_text(double v, const RandomAxis& axis) {
  char text[32];
  for (int digits = 6;; ++digits) {
    std::snprintf(text, sizeof text, "%.*g", digits, v);
    const double rounded = std::strtod(text, nullptr);
    if ((rounded >= axis.low && rounded <= axis.high) || digits == 17) return text;
  }
}

// Without random axes each grid point is one trial.
int64_t draws_per_point(const SweepSpace& space) { return space.random.empty() ? 1 : space.draws; }

std::string trial_name(int64_t index, int64_t trials) {
  const int digits = trials > 1000 ? static_cast<int>(std::to_string(trials - 1).size()) : 3;
  char name[32];
  std::snprintf(name, sizeof name, "trial-%0*lld", digits, static_cast<long long>(index));
  return name;
}

}  // namespace

int64_t trial_count(const SweepSpace& space) {
  int64_t points = 1;
  for (const GridAxis& axis : space.grid) {
    points *= static_cast<int64_t>(axis.values.size());
    if (points > kMaxTrials) break;  // before the product can overflow
  }
  const int64_t draws = draws_per_point(space);
  if (points > kMaxTrials || draws > kMaxTrials || points * draws > kMaxTrials)
    throw Error("the sweep would have more than " + std::to_string(kMaxTrials) + " trials");
  return points * draws;
}

std::vector<Trial> make_trials(const SweepSpace& space) {
  const int64_t count = trial_count(space);
  const int64_t draws = draws_per_point(space);
  std::vector<Trial> trials;
  trials.reserve(static_cast<size_t>(count));
  for (int64_t t = 0; t < count; ++t) {
    Trial trial{t, trial_name(t, count), {}};
    // Grid point t / draws in mixed radix, the last axis fastest.
    int64_t point = t / draws;
    std::vector<std::pair<std::string, std::string>> grid_values(space.grid.size());
    for (size_t a = space.grid.size(); a-- > 0;) {
      const auto n = static_cast<int64_t>(space.grid[a].values.size());
      grid_values[a] = {space.grid[a].key, space.grid[a].values[static_cast<size_t>(point % n)]};
      point /= n;
    }
    trial.values = std::move(grid_values);
    for (size_t a = 0; a < space.random.size(); ++a) {
      const RandomAxis& axis = space.random[a];
      trial.values.emplace_back(axis.key, value_text(draw(axis, uniform_unit(space.seed, a, t)), axis));
    }
    trials.push_back(std::move(trial));
  }
  return trials;
}

}  // namespace ringtrain
