// VPR test-set layout (megaloc/eval/vpr_dataset.h): UTM from '@' names, listing as the reference's
// sorted recursive glob, paths files, errors naming the file.
#include "megaloc/eval/vpr/vpr_dataset.h"

#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "tests/common/testing.h"

namespace megaloc {
namespace {

// Content does not matter for listing/parsing: an empty-ish file with the given name.
void Touch(const std::string& root, const std::string& name) {
  const size_t slash = name.rfind('/');
  if (slash != std::string::npos) CreateDirectories(JoinPaths(root, name.substr(0, slash)));
  std::ofstream(JoinPaths(root, name)) << "x";
}

template <typename Fn>
std::string ErrorOf(Fn fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(VprDataset, ParsesUtmFromTheFileName) {
  double e = 0, n = 0;
  ParseUtmFromName("@0543256.96@4178906.99@10@S@037.75332@-122.43718@x@.jpg", &e, &n);
  EXPECT_DOUBLE_EQ(e, 543256.96);
  EXPECT_DOUBLE_EQ(n, 4178906.99);
  // Folders are ignored ('@' in a folder name would break the reference, not us).
  ParseUtmFromName("sub@dir/deeper/@-5@+7.25@.png", &e, &n);
  EXPECT_DOUBLE_EQ(e, -5.0);
  EXPECT_DOUBLE_EQ(n, 7.25);
  ParseUtmFromName("@ 1e3 @2@.jpg", &e, &n);  // Python float() strips blanks, reads exponents
  EXPECT_DOUBLE_EQ(e, 1000.0);
  EXPECT_DOUBLE_EQ(n, 2.0);
}

TEST(VprDataset, RejectsNamesWithoutTwoNumericFields) {
  double e = 0, n = 0;
  for (const std::string name : {"image_001.jpg", "@12.jpg", "@12@north@.jpg", "@abc@5@.jpg",
                                 "@@5@.jpg", "@nan@5@.jpg", "@inf@5@.jpg", "@0x10@5@.jpg",
                                 "@1.5.2@5@.jpg", "@5@.jpg"}) {
    SCOPED_TRACE(name);
    const std::string message = ErrorOf([&] { ParseUtmFromName(name, &e, &n, "/data/" + name); });
    EXPECT_NE(message.find("/data/" + name), std::string::npos) << message;
    EXPECT_THROW(ParseUtmFromName(name, &e, &n), FormatError);
  }
}

TEST(VprDataset, ListsLikeTheReferenceGlob) {
  const std::string root = testing::TempDir();
  const std::string folder = JoinPaths(root, "database");
  for (const std::string name :
       {"b/@2@2@.jpg", "@1@1@.png", "a/@3@3@.JPG", "a/c/@4@4@.jpeg", "@5@5@.bmp", "notes.txt",
        ".hidden/@6@6@.jpg", "a/.@7@7@.jpg", "@10@1@.Png"}) {
    Touch(folder, name);
  }
  // Sorted by bytes ('@' < 'a' < 'b'), extensions .jpg/.jpeg/.png in any case, hidden names and
  // other extensions skipped.
  EXPECT_EQ(ListVprImages(folder),
            (std::vector<std::string>{"@10@1@.Png", "@1@1@.png", "a/@3@3@.JPG", "a/c/@4@4@.jpeg",
                                      "b/@2@2@.jpg"}));
}

TEST(VprDataset, ReadsThePathsFileBesideTheFolder) {
  const std::string root = testing::TempDir();
  const std::string folder = JoinPaths(root, "queries");
  Touch(folder, "z/@1@1@.jpg");
  Touch(folder, "@2@2@.jpg");
  Touch(folder, "@3@3@.jpg");  // not listed: the file wins over the folder
  std::ofstream(JoinPaths(root, "queries_images_paths.txt")) << "z/@1@1@.jpg\n@2@2@.jpg\n";
  // File order is kept (the reference does not sort the file's lines).
  EXPECT_EQ(ListVprImages(folder), (std::vector<std::string>{"z/@1@1@.jpg", "@2@2@.jpg"}));

  std::ofstream(JoinPaths(root, "queries_images_paths.txt")) << "@2@2@.jpg\nmissing/@9@9@.jpg\n";
  const std::string message = ErrorOf([&] { ListVprImages(folder); });
  EXPECT_NE(message.find("queries_images_paths.txt:2"), std::string::npos) << message;
}

TEST(VprDataset, LoadsBothFoldersWithNamesRelativeToTheRoot) {
  const std::string root = testing::TempDir();
  Touch(root, "database/sub/@100@200@x@.jpg");
  Touch(root, "database/@0@0@x@.jpg");
  Touch(root, "queries/@10.5@-3@q@.jpg");
  const VprDataset dataset = LoadVprDataset(root);
  ASSERT_EQ(dataset.database.size(), 2u);
  ASSERT_EQ(dataset.queries.size(), 1u);
  EXPECT_EQ(dataset.database[0].name, "database/@0@0@x@.jpg");
  EXPECT_EQ(dataset.database[1].name, "database/sub/@100@200@x@.jpg");
  EXPECT_EQ(dataset.database[1].path, JoinPaths(root, "database/sub/@100@200@x@.jpg"));
  EXPECT_DOUBLE_EQ(dataset.database[1].easting, 100.0);
  EXPECT_DOUBLE_EQ(dataset.database[1].northing, 200.0);
  EXPECT_DOUBLE_EQ(dataset.queries[0].easting, 10.5);
  EXPECT_DOUBLE_EQ(dataset.queries[0].northing, -3.0);
}

TEST(VprDataset, ErrorsNameTheFolderOrFile) {
  const std::string root = testing::TempDir();
  Touch(root, "database/@0@0@.jpg");
  // No queries folder.
  std::string message = ErrorOf([&] { LoadVprDataset(root); });
  EXPECT_NE(message.find(JoinPaths(root, "queries")), std::string::npos) << message;
  EXPECT_THROW(LoadVprDataset(root), IoError);
  // Empty queries folder (only a non-image).
  Touch(root, "queries/readme.txt");
  message = ErrorOf([&] { LoadVprDataset(root); });
  EXPECT_NE(message.find("no images"), std::string::npos) << message;
  // A query without UTM fields.
  Touch(root, "queries/sub/photo_17.jpg");
  message = ErrorOf([&] { LoadVprDataset(root); });
  EXPECT_NE(message.find(JoinPaths(root, "queries/sub/photo_17.jpg")), std::string::npos) << message;
  EXPECT_THROW(LoadVprDataset(root), FormatError);
}

}  // namespace
}  // namespace megaloc
