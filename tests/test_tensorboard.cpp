// Watching a run: TensorBoard's event files byte for byte (tests/tensorboard_events.py decodes whole runs'
// files with the protobuf library), where --tensorboard may write, the score points, which display --progress
// auto chooses, and a bar that never reaches the log. The bar on a terminal: tests/progress_terminal.py.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/train/callbacks.hpp"
#include "ringtrain/train/event_file.hpp"
#include "ringtrain/train/trainer.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

using test::TempDir;

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out += static_cast<char>(v);
  return out;
}

template <typename T>
std::string raw(T value) {  // little-endian, as the x86 and Arm machines we run on store it
  std::string out(sizeof value, '\0');
  std::memcpy(out.data(), &value, sizeof value);
  return out;
}

std::string file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(EventFile, Crc32cMeetsTheStandardCheckValue) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);  // CRC-32C's check value (RFC 3720's polynomial)
  EXPECT_EQ(crc32c(""), 0u);
  // The mask: rotated right by 15, plus 0xa282ead8.
  const uint32_t crc = crc32c("123456789");
  EXPECT_EQ(masked_crc32c("123456789"), ((crc >> 15) | (crc << 17)) + 0xa282ead8u);
  EXPECT_EQ(masked_crc32c(""), 0xa282ead8u);
}

TEST(EventFile, ARecordIsLengthCrcDataCrc) {
  const std::string record = tfrecord("abc");
  ASSERT_EQ(record.size(), 8u + 4u + 3u + 4u);
  EXPECT_EQ(record.substr(0, 8), raw<uint64_t>(3));
  EXPECT_EQ(record.substr(8, 4), raw<uint32_t>(masked_crc32c(raw<uint64_t>(3))));
  EXPECT_EQ(record.substr(12, 3), "abc");
  EXPECT_EQ(record.substr(15, 4), raw<uint32_t>(masked_crc32c("abc")));
}

// The protobuf encodings, worked out by hand from the wire format: key = field << 3 | wire type.
TEST(EventFile, EventsAreEncodedAsProtobufDoes) {
  EXPECT_EQ(file_version_event(1.5),
            bytes({0x09}) + raw(1.5) +                        // wall_time = 1, fixed64
                bytes({0x1a, 13}) + "brain.Event:2");        // file_version = 3, length-delimited
  const std::string value = bytes({0x0a, 1}) + "a" + bytes({0x15}) + raw(0.5f);  // tag = 1; simple_value = 2, fixed32
  const std::string summary = bytes({0x0a, static_cast<int>(value.size())}) + value;  // value = 1, repeated
  EXPECT_EQ(scalars_event(2.0, 300, {{"a", 0.5}}),
            bytes({0x09}) + raw(2.0) +
                bytes({0x10, 0xac, 0x02}) +                   // step = 2: 300 as a varint, 7 bits a byte
                bytes({0x2a, static_cast<int>(summary.size())}) + summary);  // summary = 5
  // Several scalars go in one event, one value each, in order.
  const std::string b = bytes({0x0a, 1}) + "b" + bytes({0x15}) + raw(-2.0f);
  const std::string both = summary + bytes({0x0a, static_cast<int>(b.size())}) + b;
  EXPECT_EQ(scalars_event(2.0, 300, {{"a", 0.5}, {"b", -2.0}}),
            bytes({0x09}) + raw(2.0) + bytes({0x10, 0xac, 0x02}) + bytes({0x2a, static_cast<int>(both.size())}) + both);
}

TEST(EventFile, IsNamedAsTensorFlowNamesItAndNeverReplacesOne) {
  TempDir dir;
  EventFile first(dir.path()), second(dir.path());  // in the same second, of the same process
  EXPECT_NE(first.path(), second.path());
  const std::regex name(R"(events\.out\.tfevents\.\d{10}\..+\.\d+\.\d+)");
  EXPECT_TRUE(std::regex_match(std::filesystem::path(first.path()).filename().string(), name)) << first.path();
  first.add(7, {{"step/loss", 0.25}});
  first.flush();
  const std::string text = file_text(first.path());
  const std::string version = tfrecord(file_version_event(0.0));
  // The file_version record (its wall time aside), then the scalars' record.
  ASSERT_GT(text.size(), version.size());
  EXPECT_EQ(text.substr(0, 8), version.substr(0, 8));
  EXPECT_NE(text.find("brain.Event:2"), std::string::npos);
  EXPECT_NE(text.find("step/loss"), std::string::npos);
  EXPECT_EQ(text.size(), version.size() + tfrecord(scalars_event(0.0, 7, {{"step/loss", 0.25}})).size());
}

TEST(EventFile, TheDirectoryIsMadeOrRefusedBeforeTraining) {
  TempDir dir;
  prepare_event_dir(dir.path("runs/a/b"));
  EXPECT_TRUE(std::filesystem::is_directory(dir.path("runs/a/b")));
  std::ofstream(dir.path("file")) << "x";
  try {
    prepare_event_dir(dir.path("file"));
    FAIL() << "a file taken for a directory";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot write TensorBoard events to '" + dir.path("file") +
                                         "': it is not a directory"),
              std::string::npos)
        << e.what();
  }
  try {
    prepare_event_dir(dir.path("file/below"));
    FAIL() << "a directory under a file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot create the directory"), std::string::npos) << e.what();
  }
  try {
    prepare_event_dir("/proc");  // root may write anywhere access() asks about; no file can be made here
    FAIL() << "/proc taken as writable";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot create a file in '/proc'"), std::string::npos) << e.what();
  }
}

TEST(Progress, ScorePointsComeFromLogEveryOrAHundredAnEpoch) {
  TrainConfig c;
  c.progress = ProgressKind::lines;
  EXPECT_EQ(score_every(c, 843), 0);  // the lines of before: none without --log-every
  c.log_every = 50;
  EXPECT_EQ(score_every(c, 843), 50);
  c.log_every = 0;
  c.progress = ProgressKind::bar;
  EXPECT_EQ(score_every(c, 843), 8);
  EXPECT_EQ(score_every(c, 37), 1);
  c.progress = ProgressKind::none;
  c.tensorboard_dir = "tb";
  EXPECT_EQ(score_every(c, 843), 8);
}

// Under ctest stdout is a file or a pipe: auto is lines; a choice given is kept.
TEST(Progress, AutoIsLinesWithoutATerminal) {
  if (::isatty(STDOUT_FILENO)) GTEST_SKIP() << "stdout is a terminal here";
  EXPECT_EQ(choose_progress(ProgressKind::automatic, test::world()), ProgressKind::lines);
  for (ProgressKind kind : {ProgressKind::bar, ProgressKind::lines, ProgressKind::none})
    EXPECT_EQ(choose_progress(kind, test::world()), kind);
}

// The bar is the terminal's: it goes to stdout, and the log (which a run directory keeps a copy of) has the
// lines it had without one, the step lines aside.
TEST(Progress, TheBarNeverReachesTheLog) {
  TempDir dir;
  for (const char* split : {"train", "val"})
    test::write_classification_shard(dir.path(std::string(split) + "-00000.h5"), 64, {4}, 3, split[0]);
  TrainConfig c = test::train_config(dir.path(), {.batch = 4, .epochs = 2});
  c.progress = ProgressKind::bar;
  c.log_every = 4;
  c.tensorboard_dir = dir.path("tb");
  std::ostringstream log;
  ::testing::internal::CaptureStdout();
  Trainer(c, test::world()).run(log);
  const std::string terminal = ::testing::internal::GetCapturedStdout();
  EXPECT_NE(terminal.find("\repoch 1/2  0/16"), std::string::npos) << terminal;
  EXPECT_NE(terminal.find("\r\033[K"), std::string::npos) << terminal;  // erased before the epoch's line
  EXPECT_EQ(log.str().find('\r'), std::string::npos) << log.str();
  EXPECT_EQ(log.str().find("  step "), std::string::npos) << log.str();  // the bar shows the steps
  EXPECT_NE(log.str().find("epoch 2/2  loss"), std::string::npos) << log.str();
  // And TensorBoard has its points: one file.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path("tb")), {}), 1);
}

}  // namespace
}  // namespace ringtrain
