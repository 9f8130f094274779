// Node-local staging: copies of shard files on a node's own disk, so that every epoch reads local storage
// rather than the shared filesystem. A manifest in the staging directory remembers each copy's source size,
// modification time and checksum (CRC-32): a copy that is still identical is not made again, and one whose
// bytes no longer match its checksum is rejected and made anew. Files only; which rank stages for a node
// is the trainer's business (train/staging.hpp).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ringtrain {

struct StageReport {
  std::vector<std::string> local;  // the staged copies, in the order of the sources
  int copied = 0, kept = 0;        // made now / already there and identical
  int replaced = 0;                // of `copied`: there before but no longer matching (corrupt or stale)
  int64_t bytes_copied = 0;
};

// Stages `sources` into `dir` (created if needed). Each copy is written to a temporary name, its checksum
// checked against what was read, synced and renamed into place. Throws Error naming the file when a source
// cannot be read, the directory cannot be written, or a fresh copy does not match its source.
StageReport stage_files(const std::vector<std::string>& sources, const std::string& dir);

// Removes what stage_files made in `dir`: the copies its manifest lists, the manifest and its lock, and `dir`
// itself when that leaves it empty. Anything else there (a user's file) stays. Errors are ignored: what cannot
// be removed is left to the site's clean-up of node-local disks.
void remove_staged_files(const std::string& dir);

// CRC-32 of a file's bytes (zlib's).
uint32_t file_crc32(const std::string& path);

}  // namespace ringtrain
