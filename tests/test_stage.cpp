// Staging shards to node-local disk: copies match their sources, an identical copy is kept rather than made
// again, and a copy whose bytes no longer match is rejected and made anew.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "ringtrain/data/shard_set.hpp"
#include "ringtrain/data/stage.hpp"
#include "ringtrain/tensor/error.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

TEST(Stage, CopiesKeepsIdenticalCopiesAndReplacesCorruptOnes) {
  test::TempDir source, stage;
  test::write_classification_shard(source.path("train-00000.h5"), 40, {1, 4, 4}, 3, 1);
  test::write_classification_shard(source.path("train-00001.h5"), 30, {1, 4, 4}, 3, 2);
  const std::vector<std::string> files = ShardSet::files(source.path());

  const StageReport first = stage_files(files, stage.path("node0"));
  EXPECT_EQ(first.copied, 2);
  EXPECT_EQ(first.kept, 0);
  ASSERT_EQ(first.local.size(), 2u);
  for (size_t i = 0; i < files.size(); ++i) EXPECT_EQ(file_crc32(first.local[i]), file_crc32(files[i]));
  EXPECT_EQ(ShardSet::open(stage.path("node0")).samples(), 70) << "the copies are shards";

  const StageReport again = stage_files(files, stage.path("node0"));
  EXPECT_EQ(again.copied, 0);
  EXPECT_EQ(again.kept, 2);

  {  // one byte of a staged copy flips (a bad disk, a stray write): same size, other checksum
    std::fstream f(first.local[1], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x5a');
  }
  const StageReport repaired = stage_files(files, stage.path("node0"));
  EXPECT_EQ(repaired.copied, 1);
  EXPECT_EQ(repaired.replaced, 1);
  EXPECT_EQ(repaired.kept, 1);
  EXPECT_EQ(file_crc32(first.local[1]), file_crc32(files[1]));
}

TEST(Stage, ASourceThatChangedIsCopiedAgain) {
  test::TempDir source, stage;
  test::write_classification_shard(source.path("train-00000.h5"), 40, {1, 4, 4}, 3, 1);
  const std::vector<std::string> files = ShardSet::files(source.path());
  stage_files(files, stage.path());
  test::write_classification_shard(source.path("train-00000.h5"), 50, {1, 4, 4}, 3, 9);  // rewritten
  const StageReport r = stage_files(files, stage.path());
  EXPECT_EQ(r.copied, 1);
  EXPECT_EQ(ShardSet::open(stage.path()).samples(), 50);
}

TEST(Stage, ErrorsNameTheFile) {
  test::TempDir stage;
  try {
    stage_files({"/nonexistent/train-00000.h5"}, stage.path());
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot stage '/nonexistent/train-00000.h5'"), std::string::npos) << e.what();
  }
  test::TempDir source;
  test::write_classification_shard(source.path("a.h5"), 10, {4}, 2, 1);
  std::ofstream(stage.path("file")) << "x";  // the staging directory's place is taken by a file
  EXPECT_THROW(stage_files({source.path("a.h5")}, stage.path("file/sub")), Error);
}

}  // namespace
}  // namespace ringtrain
