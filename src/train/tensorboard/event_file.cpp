#include "ringtrain/train/event_file.hpp"

#include <unistd.h>

#include <atomic>
#include <boost/crc.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "ringtrain/comm/communicator.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/train/output_file.hpp"

namespace ringtrain {

namespace {

std::string little_endian_bytes(uint64_t value, int bytes) {
  std::string out;
  for (int i = 0; i < bytes; ++i) out += static_cast<char>((value >> (8 * i)) & 0xff);
  return out;
}

// The protobuf wire format (protobuf.dev/programming-guides/encoding), as much of it as an Event needs. A field
// is a key, the varint (field number << 3 | wire type), then its value: a varint (type 0), 8 bytes (type 1:
// a double), a varint length and that many bytes (type 2: a string, or an embedded message's encoding), or
// 4 bytes (type 5: a float). Numbers are little-endian; a varint is 7 bits a byte, low bits first, the high
// bit set on every byte but the last. Fields at their default (0, "") may be left out, as protobuf does.
class ProtoWriter {
 public:
  void varint(int field, uint64_t value) {
    key(field, 0);
    raw_varint(value);
  }
  void fixed64(int field, double value) {
    key(field, 1);
    uint64_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    out_ += little_endian_bytes(bits, 8);
  }
  void fixed32(int field, float value) {
    key(field, 5);
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    out_ += little_endian_bytes(bits, 4);
  }
  void bytes(int field, std::string_view value) {
    key(field, 2);
    raw_varint(value.size());
    out_.append(value);
  }
  const std::string& encoding() const { return out_; }

 private:
  void key(int field, int wire_type) { raw_varint(static_cast<uint64_t>(field) << 3 | static_cast<uint64_t>(wire_type)); }
  void raw_varint(uint64_t value) {
    for (; value >= 0x80; value >>= 7) out_ += static_cast<char>((value & 0x7f) | 0x80);
    out_ += static_cast<char>(value);
  }
  std::string out_;
};

// tensorflow.Event's fields (event.proto), Summary's and Summary.Value's (summary.proto).
enum EventField { kWallTime = 1, kStep = 2, kFileVersion = 3, kSummary = 5, kSessionLog = 7 };
enum SessionLogField { kStatus = 1 };
constexpr uint64_t kSessionStart = 1;  // SessionLog.SessionStatus.START
enum SummaryField { kValue = 1 };
enum ValueField { kTag = 1, kSimpleValue = 2 };

double seconds_since_epoch() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// TensorFlow's name for the file, with a number that keeps two writers of one process in one second apart.
std::string event_file_name() {
  static std::atomic<int> made{0};
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%010lld", static_cast<long long>(seconds_since_epoch()));
  return std::string("events.out.tfevents.") + seconds + "." + host_name() + "." + std::to_string(::getpid()) + "." +
         std::to_string(made++);
}

}  // namespace

uint32_t crc32c(std::string_view data) {
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(data.data(), data.size());
  return crc.checksum();
}

uint32_t masked_crc32c(std::string_view data) {
  const uint32_t crc = crc32c(data);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string tfrecord(std::string_view data) {
  const std::string length = little_endian_bytes(data.size(), 8);
  return length + little_endian_bytes(masked_crc32c(length), 4) + std::string(data) +
         little_endian_bytes(masked_crc32c(data), 4);
}

std::string file_version_event(double wall_time) {
  ProtoWriter event;
  event.fixed64(kWallTime, wall_time);
  event.bytes(kFileVersion, "brain.Event:2");
  return event.encoding();
}

std::string scalars_event(double wall_time, int64_t step, const Scalars& scalars) {
  ProtoWriter summary;
  for (const auto& [tag, value] : scalars) {
    ProtoWriter v;
    v.bytes(kTag, tag);
    v.fixed32(kSimpleValue, static_cast<float>(value));
    summary.bytes(kValue, v.encoding());
  }
  ProtoWriter event;
  event.fixed64(kWallTime, wall_time);
  event.varint(kStep, static_cast<uint64_t>(step));
  event.bytes(kSummary, summary.encoding());
  return event.encoding();
}

std::string session_start_event(double wall_time, int64_t step) {
  ProtoWriter log;
  log.varint(kStatus, kSessionStart);
  ProtoWriter event;
  event.fixed64(kWallTime, wall_time);
  event.varint(kStep, static_cast<uint64_t>(step));
  event.bytes(kSessionLog, log.encoding());
  return event.encoding();
}

void prepare_event_dir(const std::string& dir) {
  const std::string cannot = "cannot write TensorBoard events to '" + dir + "': ";
  std::error_code ec;
  if (std::filesystem::exists(dir, ec) && !std::filesystem::is_directory(dir, ec))
    throw Error(cannot + "it is not a directory (--tensorboard names the directory the event files go in)");
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(cannot + "cannot create the directory (" + ec.message() + ")");
  check_writable_dir(dir, cannot);
}

EventFile::EventFile(const std::string& dir)
    : path_((std::filesystem::path(dir) / event_file_name()).string()), file_(nullptr, std::fclose) {
  file_.reset(std::fopen(path_.c_str(), "wbx"));  // x: never replace a file
  if (!file_) throw Error("cannot create the TensorBoard event file '" + path_ + "': " + std::strerror(errno));
  write(tfrecord(file_version_event(seconds_since_epoch())));
}

void EventFile::add(int64_t step, const Scalars& scalars) { write(tfrecord(scalars_event(seconds_since_epoch(), step, scalars))); }

void EventFile::start_session(int64_t step) { write(tfrecord(session_start_event(seconds_since_epoch(), step))); }

void EventFile::flush() {
  if (std::fflush(file_.get()) != 0)
    throw Error("cannot write TensorBoard events to '" + path_ + "': " + std::strerror(errno));
}

void EventFile::write(const std::string& record) {
  if (std::fwrite(record.data(), 1, record.size(), file_.get()) != record.size())
    throw Error("cannot write TensorBoard events to '" + path_ + "': " + std::strerror(errno));
}

}  // namespace ringtrain
