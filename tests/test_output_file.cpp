// Output files (train/output_file.hpp): what may be replaced is checked before training, a write is whole or
// not at all, and what a killed run left is cleared.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/train/output_file.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

using test::read_text;
using test::TempDir;

std::string refusal(const std::string& path, const std::vector<std::string>& inputs = {}) {
  try {
    check_output(path, "the model", inputs);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(OutputFile, RefusesWhatMustNotBeReplacedBeforeTraining) {
  TempDir dir;
  std::ofstream(dir.path("old.h5")) << "a previous model";
  std::ofstream(dir.path("train-00000.h5")) << "a shard";
  std::filesystem::create_symlink(dir.path("old.h5"), dir.path("link.h5"));
  EXPECT_EQ(refusal(dir.path("new.h5")), "");
  EXPECT_EQ(refusal(dir.path("old.h5")), "") << "a previous output is replaced, atomically";
  EXPECT_EQ(refusal(dir.path("link.h5")), "");
  EXPECT_EQ(refusal(dir.path()), "cannot write the model to '" + dir.path() + "': it is a directory");
  EXPECT_NE(refusal("/dev/null").find("it is not a regular file (a device, a pipe or a socket)"), std::string::npos);
  EXPECT_EQ(refusal(dir.path("train-00000.h5"), {dir.path("train-00000.h5")}),
            "cannot write the model to '" + dir.path("train-00000.h5") + "': it is one of this run's inputs");
  EXPECT_NE(refusal(dir.path("./train-00000.h5"), {dir.path("train-00000.h5")}).find("one of this run's inputs"),
            std::string::npos)
      << "the same file by another name";
  EXPECT_NE(refusal(dir.path("no/such/m.h5")).find("directory '" + dir.path("no/such") + "' does not exist"),
            std::string::npos);
  // Through a link, what counts is what it names.
  std::filesystem::create_symlink("/dev/null", dir.path("null.h5"));
  EXPECT_NE(refusal(dir.path("null.h5")).find("it is not a regular file"), std::string::npos);
  std::filesystem::create_symlink(dir.path("train-00000.h5"), dir.path("shard-link.h5"));
  EXPECT_NE(refusal(dir.path("shard-link.h5"), {dir.path("train-00000.h5")}).find("one of this run's inputs"),
            std::string::npos);
  // Root may write any directory as far as access() is concerned, /proc and /sys too; no file can be made there.
  EXPECT_NE(refusal("/proc/m.h5").find("cannot create a file in '/proc'"), std::string::npos) << refusal("/proc/m.h5");
  EXPECT_NE(refusal("/proc/self/status").find("cannot write the model to '/proc/self/status'"), std::string::npos);
}

// A write through a symbolic link replaces the file it names, and the link stays a link.
TEST(OutputFile, AWriteThroughALinkKeepsTheLink) {
  TempDir dir;
  std::filesystem::create_directory(dir.path("run42"));
  std::ofstream(dir.path("run42/metrics.csv")) << "old\n";
  std::filesystem::create_symlink(dir.path("run42/metrics.csv"), dir.path("latest.csv"));
  write_text_atomically(dir.path("latest.csv"), [](std::ostream& out) { out << "new\n"; });
  EXPECT_TRUE(std::filesystem::is_symlink(dir.path("latest.csv")));
  EXPECT_EQ(read_text(dir.path("run42/metrics.csv")), "new\n");
}

TEST(OutputFile, AFailedWriteKeepsThePreviousFileWhole) {
  TempDir dir;
  const std::string path = dir.path("metrics.csv");
  write_text_atomically(path, [](std::ostream& out) { out << "epoch\n1\n"; });
  EXPECT_EQ(read_text(path), "epoch\n1\n");
  try {
    write_text_atomically(path, [](std::ostream& out) {
      out << "epoch\n";
      out.setstate(std::ios::badbit);  // as a full disk leaves it
    });
    FAIL() << "a failed write passed";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("cannot write '" + path + "'", 0), 0u) << e.what();
  }
  EXPECT_THROW(write_text_atomically(path, [](std::ostream&) { throw Error("the writer failed"); }), Error);
  EXPECT_EQ(read_text(path), "epoch\n1\n");
  for (const auto& entry : std::filesystem::directory_iterator(dir.path()))
    EXPECT_EQ(entry.path().filename(), "metrics.csv") << "a temporary was left";
}

TEST(OutputFile, TemporariesOfARunThatNoLongerRunsAreRemoved) {
  TempDir dir;
  const std::string dead = dir.path("m.h5.tmp.4194305");  // above any pid_max: no such process
  const std::string alive = dir.path("m.h5.tmp." + std::to_string(::getpid()));
  const std::string other = dir.path("notes.tmp.4194305");
  for (const std::string& p : {dead, alive, other}) std::ofstream(p) << "partial";
  remove_stale_temporaries(dir.path(), "m.h5");
  EXPECT_FALSE(std::filesystem::exists(dead));
  EXPECT_TRUE(std::filesystem::exists(alive)) << "its process still writes it";
  EXPECT_TRUE(std::filesystem::exists(other)) << "not one of this output's";
}

}  // namespace
}  // namespace ringtrain
