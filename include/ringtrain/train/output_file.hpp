// Every file a training run writes (the model, checkpoints, the metrics CSV, the timeline) goes through here,
// so that none can clobber what it should not or be left half written:
// - before training, check_output refuses a path that could not be written at the end (no directory, not
//   writable, a directory) and one that must not be replaced (a device such as /dev/null, a pipe, one of the
//   run's input files), so hours of training are never lost to it;
// - each write goes to a temporary file beside the target (<name>.tmp.<pid>; through a symbolic link, beside
//   the file it names), flushed, fsynced and renamed over it: a failed write (disk full, permission) names the path and the reason and keeps the previous
//   file whole;
// - temporaries a killed run left are removed when the next run starts.
#pragma once
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

namespace ringtrain {

// Error naming `what` and `path` unless the file can be written there and replaced safely. `inputs`: the
// run's input files (shards, the checkpoint it resumes), which an output must not be.
void check_output(const std::string& path, const std::string& what, const std::vector<std::string>& inputs);

// Error `cannot` + the reason unless a file can be created in `dir` (tried, not asked of access()).
void check_writable_dir(const std::string& dir, const std::string& cannot);

// Writes `path` whole or not at all: `write` fills a temporary file beside it, by name (HDF5 creates its own
// files), which is then fsynced and renamed over `path`, and the directory fsynced. On any failure the
// temporary is removed, the error names the path, and whatever was at `path` is untouched.
void write_atomically(const std::string& path, const std::function<void(const std::string& tmp)>& write);

// write_atomically for text: `write` fills a stream; a stream that fails (disk full) is an error naming
// `path` and the reason.
void write_text_atomically(const std::string& path, const std::function<void(std::ostream&)>& write);

// Removes the temporaries (<name>.tmp.<pid>, <name> starting with `prefix`) in `dir` that a run killed while
// writing left: those whose process no longer runs on this node.
void remove_stale_temporaries(const std::string& dir, const std::string& prefix);
// Those of the output `path` (beside the file a symbolic link names).
void remove_stale_temporaries_of(const std::string& path);

}  // namespace ringtrain
