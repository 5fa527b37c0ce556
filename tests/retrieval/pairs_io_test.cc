#include "megaloc/retrieval/pairs_io.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "tests/common/testing.h"

namespace megaloc {
namespace {

TEST(PairsIo, WritesOneSpaceAndNewlinePerPair) {
  const std::string dir = testing::TempDir();
  const std::string path = JoinPaths(dir, "sub/pairs.txt");
  WritePairs(path, {{"seqA/a.jpg", "seqB/b.jpg"}, {"b.jpg", "a.jpg"}});
  EXPECT_EQ(ReadFileToString(path), "seqA/a.jpg seqB/b.jpg\nb.jpg a.jpg\n");
  const std::vector<ImagePair> back = ReadPairs(path);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].name1, "seqA/a.jpg");
  EXPECT_EQ(back[1].name2, "a.jpg");
  WritePairs(path, {});
  EXPECT_EQ(ReadFileToString(path), "");
  EXPECT_TRUE(ReadPairs(path).empty());
}

TEST(PairsIo, RejectsNamesWithWhitespace) {
  const std::string path = JoinPaths(testing::TempDir(), "pairs.txt");
  EXPECT_THROW(WritePairs(path, {{"a b.jpg", "c.jpg"}}), InvalidArgument);
  EXPECT_THROW(WritePairs(path, {{"a.jpg", "c\t.jpg"}}), InvalidArgument);
  EXPECT_THROW(WritePairs(path, {{"a.jpg", ""}}), InvalidArgument);
  EXPECT_FALSE(FileExists(path));  // nothing half-written
  try {
    CheckPairName("my image.jpg", "db.h5");
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("my image.jpg"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("db.h5"), std::string::npos);
  }
}

TEST(PairsIo, ReaderAcceptsWhatHlocAndColmapAccept) {
  const auto pairs = ParsePairs("# comment\n\n  a.jpg b.jpg  \nc.jpg\td.jpg\r\ne.jpg  f.jpg", "x.txt");
  ASSERT_EQ(pairs.size(), 3u);
  EXPECT_EQ(pairs[0], (ImagePair{"a.jpg", "b.jpg"}));
  EXPECT_EQ(pairs[1], (ImagePair{"c.jpg", "d.jpg"}));
  EXPECT_EQ(pairs[2], (ImagePair{"e.jpg", "f.jpg"}));
}

TEST(PairsIo, ReaderErrorsNameFileAndLine) {
  const std::string path = JoinPaths(testing::TempDir(), "bad.txt");
  WriteFileAtomically(path, "a.jpg b.jpg\n# ok\nc.jpg\n");
  try {
    ReadPairs(path);
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(path + ":3:"), std::string::npos) << e.what();
  }
  WriteFileAtomically(path, "a.jpg b.jpg 0.5\n");
  try {
    ReadPairs(path);
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(path + ":1:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("3 fields"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ReadPairs(path + ".missing"), IoError);
}

TEST(PairsIo, ScoresRoundTrip) {
  const std::string path = JoinPaths(testing::TempDir(), "scores.txt");
  WritePairScores(path, {{{"a.jpg", "b.jpg"}, 0.123456789f}, {{"a.jpg", "c.jpg"}, -0.0f}});
  const auto back = ReadPairScores(path);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].pair, (ImagePair{"a.jpg", "b.jpg"}));
  EXPECT_EQ(back[0].score, 0.123456789f);
  WriteFileAtomically(path, "a.jpg b.jpg nope\n");
  EXPECT_THROW(ReadPairScores(path), FormatError);
}

TEST(PairsIo, UniqueKeepsFirstOrientationAndDropsSelfPairs) {
  const auto unique = UniquePairs(
      {{"a", "b"}, {"b", "a"}, {"a", "a"}, {"c", "a"}, {"a", "b"}, {"a", "c"}, {"b", "c"}});
  ASSERT_EQ(unique.size(), 3u);
  EXPECT_EQ(unique[0], (ImagePair{"a", "b"}));
  EXPECT_EQ(unique[1], (ImagePair{"c", "a"}));
  EXPECT_EQ(unique[2], (ImagePair{"b", "c"}));
}

TEST(PairsIo, SequentialPairsAndMerge) {
  const auto seq = SequentialPairs({"f3.jpg", "f1.jpg", "f2.jpg", "f4.jpg"}, 2);
  ASSERT_EQ(seq.size(), 5u);
  EXPECT_EQ(seq[0], (ImagePair{"f1.jpg", "f2.jpg"}));
  EXPECT_EQ(seq[1], (ImagePair{"f1.jpg", "f3.jpg"}));
  EXPECT_EQ(seq[2], (ImagePair{"f2.jpg", "f3.jpg"}));
  EXPECT_EQ(seq[3], (ImagePair{"f2.jpg", "f4.jpg"}));
  EXPECT_EQ(seq[4], (ImagePair{"f3.jpg", "f4.jpg"}));
  EXPECT_TRUE(SequentialPairs({"a", "b"}, 0).empty());
  const auto merged = MergePairs({{{"f4.jpg", "f1.jpg"}, {"f2.jpg", "f1.jpg"}}, seq});
  ASSERT_EQ(merged.size(), 6u);
  EXPECT_EQ(merged[0], (ImagePair{"f4.jpg", "f1.jpg"}));
  EXPECT_EQ(merged[1], (ImagePair{"f2.jpg", "f1.jpg"}));
  EXPECT_EQ(merged[2], (ImagePair{"f1.jpg", "f3.jpg"}));
}

}  // namespace
}  // namespace megaloc
