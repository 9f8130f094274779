#include "ringtrain/parallel/parallel_mode.hpp"

#include "ringtrain/error.hpp"
#include "ringtrain/parallel/data_parallel.hpp"

namespace ringtrain {

Score sum_scores(Communicator& comm, const Score& mine) {
  if (comm.size() == 1) return mine;
  double sums[3] = {mine.loss_sum, mine.metric_sum, static_cast<double>(mine.samples)};
  comm.allreduce_sum(sums, 3);
  return {sums[0], sums[1], static_cast<int64_t>(sums[2])};
}

std::unique_ptr<ParallelMode> make_parallel_mode(const ParallelConfig& config, Communicator& world, Model& model,
                                                 Loss& loss, Optimizer& optimizer, Timeline* timeline,
                                                 std::ostream& warnings) {
  if (config.mode == "sync")
    return std::make_unique<DataParallel>(world, model, loss, optimizer, config.engine, timeline, warnings);
  throw Error("unknown parallel mode '" + config.mode + "' (expected sync)");
}

}  // namespace ringtrain
