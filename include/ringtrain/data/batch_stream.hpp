// This rank's training batches, pass after pass over its share of the data (pass k shuffled by the seed and
// k), remembering where it stands so that a checkpoint can record the place and a resumed run restart there.
// Where an epoch ends is the parallel mode's to say: at the end of a pass (next_in_pass gives null), or after
// as many steps as the servers count (next runs on into the following pass).
#pragma once
#include <cstdint>

#include "ringtrain/data/device_batches.hpp"

namespace ringtrain {

class BatchStream {
 public:
  // Starts at batch `batch` of pass `pass` (a resumed run's place).
  BatchStream(DeviceBatches& batches, int64_t pass, int64_t batch) : batches_(batches), pass_(pass), batch_(batch) {}

  // The next batch of the current pass, or null at its end; the call after that starts the next pass.
  const Batch* next_in_pass() {
    if (!started_) batches_.start_epoch(pass_, batch_), started_ = true;
    const Batch* batch = batches_.next();
    if (batch) {
      ++batch_;
    } else {
      started_ = false, ++pass_, batch_ = 0;
    }
    return batch;
  }
  // The next batch, running on into the next pass at a pass's end.
  const Batch* next() {
    const Batch* batch = next_in_pass();
    return batch ? batch : next_in_pass();
  }

  int64_t pass() const { return pass_; }
  int64_t batch() const { return batch_; }  // within the pass: the one taken next

 private:
  DeviceBatches& batches_;
  int64_t pass_ = 0, batch_ = 0;
  bool started_ = false;
};

}  // namespace ringtrain
