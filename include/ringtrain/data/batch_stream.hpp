// This rank's training batches, pass after pass over the data (pass k shuffled by the seed and k), remembering
// where the job stands so that a checkpoint can record the place and a resumed run restart there. The place
// is the job's, not the rank's: the pass, and the samples of the pass's order taken so far by all ranks
// together (the loader's order does not depend on the number of ranks, loader.hpp), so that a run on another
// number of ranks can continue it.
// Where an epoch ends is the parallel mode's to say: at the end of a pass (next_in_pass gives null), or after
// as many steps as the servers count (next runs on into the following pass).
#pragma once
#include <cstdint>

#include "ringtrain/data/device_batches.hpp"

namespace ringtrain {

class BatchStream {
 public:
  // Starts at position `sample` of pass `pass`'s order (a resumed run's place).
  BatchStream(DeviceBatches& batches, int64_t pass, int64_t sample) : batches_(batches), pass_(pass), sample_(sample) {}

  // The next batch of the current pass, or null at its end; the call after that starts the next pass.
  const Batch* next_in_pass() {
    if (!started_) batches_.start_epoch(pass_, sample_), started_ = true;
    const Batch* batch = batches_.next();
    if (batch) {
      sample_ += batches_.loader().global_batch();
    } else {
      started_ = false, ++pass_, sample_ = 0;
    }
    return batch;
  }
  // The next batch, running on into the next pass at a pass's end.
  const Batch* next() {
    const Batch* batch = next_in_pass();
    return batch ? batch : next_in_pass();
  }

  int64_t pass() const { return pass_; }
  // Within the pass, all ranks together: where the next global batch starts.
  int64_t sample() const { return sample_; }
  // Fewer samples than a global batch are left in the pass: the next batch is the next pass's.
  bool pass_done() const { return batches_.loader().batches_from(sample_) == 0; }

 private:
  DeviceBatches& batches_;
  int64_t pass_ = 0, sample_ = 0;
  bool started_ = false;
};

}  // namespace ringtrain
