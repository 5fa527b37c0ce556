#include "megaloc/io/image_list.h"

#include <unistd.h>

#include <algorithm>
#include <set>

#include <gtest/gtest.h>

#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "tests/common/testing.h"

namespace megaloc {
namespace {

using ::megaloc::testing::TempDir;

void Touch(const std::string& root, const std::string& name) {
  const size_t slash = name.rfind('/');
  if (slash != std::string::npos) CreateDirectories(JoinPaths(root, name.substr(0, slash)));
  WriteFileAtomically(JoinPaths(root, name), "x");
}

TEST(ImageList, RecursiveSortedCaseInsensitive) {
  const std::string root = TempDir();
  for (const std::string name : {"b.jpg", "a.PNG", "sub/c.JPEG", "sub/deep/d.tif", "sub/e.Jpg",
                                 "notes.txt", "sub/f.h5", "noext", ".hidden.png", "Z.webp"}) {
    Touch(root, name);
  }
  CreateDirectories(JoinPaths(root, "empty.jpg"));  // a directory named like an image
  EXPECT_EQ(ListImages(root),
            (std::vector<std::string>{".hidden.png", "Z.webp", "a.PNG", "b.jpg", "sub/c.JPEG",
                                      "sub/deep/d.tif", "sub/e.Jpg"}));
  EXPECT_EQ(ListImages(root, {"png"}), (std::vector<std::string>{".hidden.png", "a.PNG"}));
  // Symlinked directories are followed, cycles are not.
  ASSERT_EQ(symlink(JoinPaths(root, "sub/deep").c_str(), JoinPaths(root, "link").c_str()), 0);
  ASSERT_EQ(symlink(root.c_str(), JoinPaths(root, "sub/loop").c_str()), 0);
  const std::vector<std::string> with_links = ListImages(root);
  EXPECT_EQ(std::count(with_links.begin(), with_links.end(), "link/d.tif"), 1);
  EXPECT_EQ(with_links.size(), 8u);
  // A dangling link named like an image is listed (hloc's glob lists it; reading it reports it as
  // dangling); one named otherwise is not.
  ASSERT_EQ(symlink("nowhere.jpg", JoinPaths(root, "sub/dangling.jpg").c_str()), 0);
  ASSERT_EQ(symlink("nowhere.txt", JoinPaths(root, "sub/dangling.txt").c_str()), 0);
  const std::vector<std::string> with_dangling = ListImages(root);
  EXPECT_EQ(std::count(with_dangling.begin(), with_dangling.end(), "sub/dangling.jpg"), 1);
  EXPECT_EQ(std::count(with_dangling.begin(), with_dangling.end(), "sub/dangling.txt"), 0);
  EXPECT_EQ(with_dangling.size(), 9u);
  std::string target;
  EXPECT_TRUE(IsDanglingSymlink(JoinPaths(root, "sub/dangling.jpg"), &target));
  EXPECT_EQ(target, "nowhere.jpg");
  EXPECT_FALSE(IsDanglingSymlink(JoinPaths(root, "link")));
  EXPECT_FALSE(IsDanglingSymlink(JoinPaths(root, "b.jpg")));
  try {
    ListImages(JoinPaths(root, "missing"));
    ADD_FAILURE();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos);
  }
}

TEST(ImageList, ReadListFile) {
  const std::string root = TempDir();
  Touch(root, "a.jpg");
  Touch(root, "seq/b.png");
  const std::string list = JoinPaths(root, "list.txt");
  WriteFileAtomically(list, "# comment\n\n  seq/b.png 1 2 3\na.jpg\n\t# indented comment\na.jpg\n");
  EXPECT_EQ(ReadImageList(list, root), (std::vector<std::string>{"seq/b.png", "a.jpg"}));
  WriteFileAtomically(list, "a.jpg\nmissing.jpg\n");
  try {
    ReadImageList(list, root);
    ADD_FAILURE();
  } catch (const IoError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("list.txt:2"), std::string::npos) << what;
    EXPECT_NE(what.find("missing.jpg"), std::string::npos) << what;
  }
  ASSERT_EQ(symlink("gone.jpg", JoinPaths(root, "dangling.jpg").c_str()), 0);
  WriteFileAtomically(list, "a.jpg\ndangling.jpg\n");
  try {
    ReadImageList(list, root);
    ADD_FAILURE();
  } catch (const IoError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("list.txt:2: image 'dangling.jpg'"), std::string::npos) << what;
    EXPECT_NE(what.find("dangling symbolic link"), std::string::npos) << what;
  }
  WriteFileAtomically(list, "../a.jpg\n");
  EXPECT_THROW(ReadImageList(list, root), FormatError);
  WriteFileAtomically(list, "/abs/a.jpg\n");
  EXPECT_THROW(ReadImageList(list, root), FormatError);
  EXPECT_THROW(ReadImageList(JoinPaths(root, "nolist.txt"), root), IoError);
}

TEST(ImageList, ShardsArePartitionAndStableUnderGrowth) {
  std::vector<std::string> names;
  for (int i = 0; i < 1000; ++i) names.push_back("seq" + std::to_string(i % 13) + "/" + std::to_string(i) + ".jpg");
  for (const int n : {1, 2, 3, 7}) {
    std::set<std::string> all;
    size_t total = 0;
    for (int k = 1; k <= n; ++k) {
      const auto shard = SelectShard(names, k, n);
      if (n > 1) {
        EXPECT_GT(shard.size(), names.size() / n / 2);  // roughly balanced
      }
      total += shard.size();
      all.insert(shard.begin(), shard.end());
    }
    EXPECT_EQ(total, names.size());
    EXPECT_EQ(all.size(), names.size());
  }
  // FNV-1a-64 reference values (documented algorithm: shard assignment must never change).
  EXPECT_EQ(ShardHash(""), 14695981039346656037ull);
  EXPECT_EQ(ShardHash("a"), 0xaf63dc4c8601ec8cull);
  // Growing the collection does not move existing images.
  std::vector<std::string> grown = names;
  grown.push_back("new/0.jpg");
  for (const std::string& name : names) EXPECT_EQ(ShardOf(name, 5), ShardOf(name, 5));
  const auto before = SelectShard(names, 2, 5);
  auto after = SelectShard(grown, 2, 5);
  after.erase(std::remove(after.begin(), after.end(), "new/0.jpg"), after.end());
  EXPECT_EQ(before, after);
  EXPECT_THROW(SelectShard(names, 0, 3), InvalidArgument);
  EXPECT_THROW(SelectShard(names, 4, 3), InvalidArgument);
}

}  // namespace
}  // namespace megaloc
