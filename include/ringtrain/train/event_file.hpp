// TensorBoard event files (--tensorboard DIR), as TensorFlow's summary writers make them, so that TensorBoard
// shows a run's scalars (and any reader of its files reads them):
// - a file, events.out.tfevents.<seconds, 10 digits>.<host>.<pid>.<n>, is a sequence of TFRecords: the data's
//   length (uint64), the masked CRC-32C of those 8 bytes (uint32), the data, the masked CRC-32C of the data
//   (uint32), little-endian;
// - each record's data is a tensorflow.Event protobuf (tensorflow/core/util/event.proto): the first holds
//   file_version "brain.Event:2", each later one wall_time, step and summary { value { tag, simple_value } }
//   (or, first in a resumed run's file, session_log { status: START }).
// The few protobuf fields are encoded here by hand (a varint, fixed64, fixed32 and length-delimited writer)
// rather than with libprotobuf: four fields do not justify a code generator in the build and a library every
// build and install needs. tests/tensorboard_events.py decodes the files with the protobuf library itself.
//
// The file is appended to as the run goes, like TensorFlow's (a live TensorBoard reads it as it grows), not
// written atomically: a run killed mid-record leaves a partial last record, which TensorBoard's reader stops at.
#pragma once
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ringtrain {

// CRC-32C (Castagnoli, iSCSI: polynomial 0x1EDC6F41, reflected), and TFRecord's masked form of it: rotated
// right by 15 bits plus 0xa282ead8. The mask is LevelDB's, whose log format TFRecord follows: computing the
// CRC of data that holds embedded CRCs is problematic, so a CRC stored in a file is masked.
uint32_t crc32c(std::string_view data);
uint32_t masked_crc32c(std::string_view data);

// One TFRecord holding `data`.
std::string tfrecord(std::string_view data);

// The Event protobufs ringtrain writes. `scalars`: (tag, value) pairs, one summary value each (a float:
// simple_value's type).
using Scalars = std::vector<std::pair<std::string, double>>;
std::string file_version_event(double wall_time);
std::string scalars_event(double wall_time, int64_t step, const Scalars& scalars);
// session_log { status: START } at `step`: TensorBoard then drops every point of the directory's earlier
// files from `step` on, as it does when a TensorFlow job restarts from a checkpoint.
std::string session_start_event(double wall_time, int64_t step);

// Creates `dir` (and its parents) if need be and proves a file can be made in it: an error naming it
// otherwise (a file, no permission). Before training, so that a bad directory costs no training.
void prepare_event_dir(const std::string& dir);

// One run's event file in a directory prepare_event_dir accepted.
class EventFile {
 public:
  // Creates the file (never replacing one) and writes the file_version record.
  explicit EventFile(const std::string& dir);
  const std::string& path() const { return path_; }
  // One record of `scalars` at `step`, stamped with the time now. Buffered until flush.
  void add(int64_t step, const Scalars& scalars);
  // A resumed run's mark (session_start_event), before its first point.
  void start_session(int64_t step);
  // Hands what was added to the file system, for a TensorBoard watching the directory.
  void flush();

 private:
  void write(const std::string& record);
  std::string path_;
  std::unique_ptr<FILE, int (*)(FILE*)> file_;
};

}  // namespace ringtrain
