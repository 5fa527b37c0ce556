#include "megaloc/colmap/database.h"

#include <sqlite3.h>

#include <fstream>
#include <functional>

#include <gtest/gtest.h>

#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "tests/common/testing.h"
#include "tests/plugin/colmap_test_utils.h"

namespace megaloc {
namespace {

using testing::CreateColmapDatabase;
using testing::ColmapSchemaVersion;

TEST(ColmapPairId, MatchesColmapDefinition) {
  EXPECT_EQ(ImagePairToPairId(1, 2), 2147483647LL * 1 + 2);
  EXPECT_EQ(ImagePairToPairId(2, 1), ImagePairToPairId(1, 2));
  EXPECT_EQ(ImagePairToPairId(7, 3), 2147483647LL * 3 + 7);
  const int64_t big = ImagePairToPairId(2147483646, 2147483645);
  EXPECT_EQ(PairIdToImagePair(big).first, 2147483645);
  EXPECT_EQ(PairIdToImagePair(big).second, 2147483646);
  for (int64_t a : {1, 5, 1000, 123456789}) {
    for (int64_t b : {2, 6, 99999, 2000000000}) {
      const auto p = PairIdToImagePair(ImagePairToPairId(a, b));
      EXPECT_EQ(p.first, std::min(a, b));
      EXPECT_EQ(p.second, std::max(a, b));
    }
  }
  EXPECT_TRUE(SwapImagePair(5, 3));
  EXPECT_FALSE(SwapImagePair(3, 5));
  EXPECT_THROW(ImagePairToPairId(-1, 2), InvalidArgument);
  EXPECT_THROW(ImagePairToPairId(1, 2147483647), InvalidArgument);
  EXPECT_THROW(PairIdToImagePair(-5), InvalidArgument);
}

class ColmapDatabaseSchemaTest : public ::testing::TestWithParam<ColmapSchemaVersion> {};

TEST_P(ColmapDatabaseSchemaTest, ReadsImagesAndCountsAcrossSchemas) {
  const std::string path = JoinPaths(testing::TempDir(), "database.db");
  // Ids deliberately not in name order (multi-threaded extraction assigns them in any order).
  CreateColmapDatabase(path, GetParam(), {{3, "b.jpg"}, {1, "seq/c.jpg"}, {2, "a.jpg"}},
                       {{ImagePairToPairId(1, 2), 10}, {ImagePairToPairId(2, 3), 0}},
                       {{ImagePairToPairId(1, 2), 20}});
  const auto db = ColmapDatabase::Open(path);
  const std::vector<ColmapDatabaseImage> images = db->ReadImages();
  ASSERT_EQ(images.size(), 3u);
  EXPECT_EQ(images[0].name, "a.jpg");
  EXPECT_EQ(images[0].image_id, 2);
  EXPECT_EQ(images[1].name, "b.jpg");
  EXPECT_EQ(images[2].name, "seq/c.jpg");
  EXPECT_EQ(images[2].image_id, 1);
  EXPECT_EQ(db->NumImages(), 3);
  EXPECT_EQ(db->NumRows("matches"), 2);
  EXPECT_EQ(db->NumNonEmptyRows("matches"), 1);
  EXPECT_EQ(db->NumRows("two_view_geometries"), 1);
  EXPECT_EQ(db->NumNonEmptyRows("two_view_geometries"), 1);
  EXPECT_EQ(db->ReadPairIds("matches"),
            (std::vector<int64_t>{ImagePairToPairId(1, 2), ImagePairToPairId(2, 3)}));
  EXPECT_THROW(db->NumRows("no_such_table"), InvalidArgument);
  EXPECT_THROW(db->ReadPairIds("images"), InvalidArgument);

  const ColmapSchemaInfo& schema = db->Schema();
  switch (GetParam()) {
    case ColmapSchemaVersion::k38:
      EXPECT_EQ(schema.user_version, 3800);
      EXPECT_TRUE(schema.has_image_prior_columns);
      EXPECT_FALSE(schema.has_pose_priors);
      EXPECT_FALSE(schema.has_descriptor_type);
      EXPECT_NE(schema.Description().find("3.8-3.9"), std::string::npos) << schema.Description();
      break;
    case ColmapSchemaVersion::k311:
      EXPECT_FALSE(schema.has_image_prior_columns);
      EXPECT_TRUE(schema.has_pose_prior_covariance);
      EXPECT_FALSE(schema.has_rigs_and_frames);
      EXPECT_NE(schema.Description().find("3.11"), std::string::npos) << schema.Description();
      break;
    case ColmapSchemaVersion::k4x:
      EXPECT_FALSE(schema.has_image_prior_columns);
      EXPECT_TRUE(schema.has_pose_priors);
      EXPECT_TRUE(schema.has_rigs_and_frames);
      EXPECT_TRUE(schema.has_descriptor_type);
      EXPECT_FALSE(schema.has_two_view_cameras);
      EXPECT_NE(schema.Description().find("4.x"), std::string::npos) << schema.Description();
      break;
  }
  EXPECT_NE(schema.Description().find("user_version"), std::string::npos);
}

// Camera rows: read on every schema; written only through a writable connection (LaMAR
// localization sets known intrinsics), never through the default read-only one.
TEST_P(ColmapDatabaseSchemaTest, ReadsAndUpdatesCameras) {
  const std::string path = JoinPaths(testing::TempDir(), "cameras.db");
  CreateColmapDatabase(path, GetParam(), {{1, "a.jpg"}}, {}, {});
  {
    const auto db = ColmapDatabase::Open(path);
    const std::vector<ColmapDatabaseImage> images = db->ReadImages();
    ASSERT_EQ(images.size(), 1u);
    EXPECT_EQ(images[0].camera_id, 1);
    ColmapCamera camera;
    ASSERT_TRUE(db->ReadCamera(1, &camera));
    EXPECT_EQ(camera.model_id, 1);  // PINHOLE
    EXPECT_EQ(camera.width, 640u);
    EXPECT_EQ(camera.height, 480u);
    EXPECT_EQ(camera.params, std::vector<double>(4, 0.0));
    EXPECT_FALSE(db->ReadCamera(2, &camera));
    camera.params = {500, 501, 320, 240};
    EXPECT_THROW(db->UpdateCamera(camera), InvalidArgument);  // read-only
  }
  ColmapDatabaseOptions writable;
  writable.read_only = false;
  {
    const auto db = ColmapDatabase::Open(path, writable);
    ColmapCamera camera;
    camera.camera_id = 1;
    camera.model_id = FindColmapCameraModel("SIMPLE_RADIAL")->id;
    camera.width = 800;
    camera.height = 600;
    camera.params = {700, 400, 300, 0.01};
    db->UpdateCamera(camera);
    camera.camera_id = 9;
    EXPECT_THROW(db->UpdateCamera(camera), FormatError);  // no such row
    camera.camera_id = 1;
    camera.params.pop_back();
    EXPECT_THROW(db->UpdateCamera(camera), InvalidArgument);  // 3 params for SIMPLE_RADIAL
  }
  const auto db = ColmapDatabase::Open(path);
  ColmapCamera camera;
  ASSERT_TRUE(db->ReadCamera(1, &camera));
  EXPECT_EQ(camera.model_id, 2);
  EXPECT_EQ(camera.width, 800u);
  EXPECT_EQ(camera.params, (std::vector<double>{700, 400, 300, 0.01}));
}

INSTANTIATE_TEST_SUITE_P(Schemas, ColmapDatabaseSchemaTest,
                         ::testing::Values(ColmapSchemaVersion::k38, ColmapSchemaVersion::k311,
                                           ColmapSchemaVersion::k4x),
                         testing::SchemaName);

TEST(ColmapDatabase, ClearErrors) {
  const std::string dir = testing::TempDir();
  // Missing file: never created (read-only open).
  const std::string missing = JoinPaths(dir, "missing.db");
  std::string what = testing::ThrownMessage<IoError>([&] { ColmapDatabase::Open(missing); });
  EXPECT_NE(what.find(missing), std::string::npos) << what;
  EXPECT_NE(what.find("not found"), std::string::npos) << what;
  EXPECT_FALSE(FileExists(missing));
  // A directory.
  what = testing::ThrownMessage<IoError>([&] { ColmapDatabase::Open(dir); });
  EXPECT_NE(what.find("directory"), std::string::npos) << what;
  // Not an SQLite file.
  const std::string text = JoinPaths(dir, "text.db");
  { std::ofstream(text) << "this is not a database, just some text that is long enough to matter\n"; }
  what = testing::ThrownMessage<FormatError>([&] { ColmapDatabase::Open(text); });
  EXPECT_NE(what.find("not a COLMAP database"), std::string::npos) << what;
  EXPECT_NE(what.find(text), std::string::npos) << what;
  // An SQLite file that is not a COLMAP database.
  const std::string other = JoinPaths(dir, "other.db");
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(other.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE images (image_id INTEGER, name TEXT); CREATE TABLE matches (pair_id "
                               "INTEGER, rows INTEGER);", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  what = testing::ThrownMessage<FormatError>([&] { ColmapDatabase::Open(other); });
  EXPECT_NE(what.find("missing table 'two_view_geometries'"), std::string::npos) << what;
  // An empty file is a valid empty SQLite database without tables.
  const std::string empty = JoinPaths(dir, "empty.db");
  { std::ofstream(empty).flush(); }
  what = testing::ThrownMessage<FormatError>([&] { ColmapDatabase::Open(empty); });
  EXPECT_NE(what.find("not a COLMAP database"), std::string::npos) << what;
}

TEST(ColmapDatabase, LockedDatabaseIsReportedNotHung) {
  const std::string path = JoinPaths(testing::TempDir(), "database.db");
  CreateColmapDatabase(path, ColmapSchemaVersion::k38, {{1, "a.jpg"}}, {}, {});
  sqlite3* writer = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &writer), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(writer, "BEGIN EXCLUSIVE; INSERT INTO images(name, camera_id) VALUES('x.jpg', 1);", nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  ColmapDatabaseOptions options;
  options.busy_timeout_ms = 50;
  const std::string what = testing::ThrownMessage<IoError>([&] { ColmapDatabase::Open(path, options); });
  EXPECT_NE(what.find("locked"), std::string::npos) << what;
  EXPECT_NE(what.find(path), std::string::npos) << what;
  ASSERT_EQ(sqlite3_exec(writer, "ROLLBACK;", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(writer);
  EXPECT_EQ(ColmapDatabase::Open(path, options)->ReadImages().size(), 1u);
}

}  // namespace
}  // namespace megaloc
