// What workers and parameter servers say to each other (parameter_server.hpp). Every message starts with a
// Header; pushes and replies carry the server's shard of the flat parameter vector after it. Messages go
// over a communicator of the mode's own, tagged by kind; between two ranks they arrive in order.
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace ringtrain::ps {

enum Tag : int {
  kPull = 1,      // worker -> server: parameters for the next step (or for evaluation)
  kPush = 2,      // worker -> server: the gradient of a step, to apply once
  kEndEpoch = 3,  // worker -> server: this worker's epoch is over
  kBye = 4,       // worker -> server: this worker is done with the servers
  kReply = 5,     // server -> worker: the answer to a pull
  kHalt = 6,      // worker -> server: stop the job early (a rank got SIGTERM): see Server::halt
  kState = 7,     // server -> worker 0: after the reply to a snapshot pull, the shard's optimizer state
};

enum Flags : int64_t {
  kEvaluate = 1,  // pull: now, whatever the staleness bound (evaluation, saving)
  kStop = 2,      // reply: the epoch's updates are all in; no parameters follow
  kSnapshot = 4,  // pull (worker 0, for a checkpoint): under the bound, epoch over or not; a kState follows
  kHalted = 8,    // reply: the job is stopping early (a rank got SIGTERM); no parameters follow
  kFailed = 16,   // goodbye: the job ends with an error (a worker's non-finite stop, which the workers report)
};

// Plain bytes on the wire (trivial, so it is copied with memcpy): value-initialise it, Header h{}.
struct Header {
  int64_t step;       // pull: the step about to run; push: the step the gradient is of (worker-local count);
                      // kState: the server's optimizer steps
  int64_t epoch;      // pull, push, end of epoch: the worker's epoch
  int64_t staleness;  // reply: how many steps the slowest worker is behind; push: the same, echoed
  int64_t flags;
  double lr;          // push: the learning rate of the step
  double sum_squares; // push with --clip-grad-norm and a staleness bound above 0: the sum of the squares of
                      // the whole gradient pushed (every shard's), by which every server clips its shard alike
};

inline constexpr size_t kHeaderFloats = sizeof(Header) / sizeof(float);
static_assert(sizeof(Header) % sizeof(float) == 0 && std::is_trivial_v<Header>);

// Server k of `servers` owns elements [shard_begin(k), shard_begin(k + 1)) of the flat parameter vector.
inline int64_t shard_begin(int64_t total, int servers, int k) { return total * k / servers; }

}  // namespace ringtrain::ps
