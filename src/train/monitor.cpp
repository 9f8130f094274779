#include "ringtrain/train/monitor.hpp"

#include <cmath>

namespace ringtrain {

bool monitor_fits(Monitor monitor, bool classification) {
  if (monitor == Monitor::val_accuracy) return classification;
  if (monitor == Monitor::val_mae) return !classification;
  return true;
}

bool BestEpoch::update(int64_t ended, const Score& val, double min_delta) {
  const double now = monitor == Monitor::val_loss ? val.loss() : val.metric();
  // Keras's rule, with the best of no epoch at all as the worst value there is: a NaN never improves.
  const bool rising = monitor == Monitor::val_accuracy;
  const double best = epoch > 0 ? value : rising ? -INFINITY : INFINITY;
  const bool improved = rising ? now - min_delta > best : now + min_delta < best;
  if (improved) *this = {monitor, ended, now, 0};
  else ++epochs_since;
  return improved;
}

}  // namespace ringtrain
