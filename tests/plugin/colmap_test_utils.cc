#include "tests/plugin/colmap_test_utils.h"

#include <sqlite3.h>

#include <stdexcept>

namespace megaloc {
namespace testing {
namespace {

void Exec(sqlite3* db, const std::string& sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    const std::string message = error != nullptr ? error : "unknown";
    sqlite3_free(error);
    throw std::runtime_error("SQLite: " + message + " in: " + sql);
  }
}

const char kCameras[] =
    "CREATE TABLE cameras (camera_id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, model INTEGER NOT NULL, "
    "width INTEGER NOT NULL, height INTEGER NOT NULL, params BLOB, prior_focal_length INTEGER NOT NULL);";
const char kImages38[] =
    "CREATE TABLE images (image_id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, name TEXT NOT NULL UNIQUE, "
    "camera_id INTEGER NOT NULL, prior_qw REAL, prior_qx REAL, prior_qy REAL, prior_qz REAL, prior_tx REAL, "
    "prior_ty REAL, prior_tz REAL, CONSTRAINT image_id_check CHECK(image_id >= 0 and image_id < 2147483647), "
    "FOREIGN KEY(camera_id) REFERENCES cameras(camera_id)); CREATE UNIQUE INDEX index_name ON images(name);";
const char kImages310[] =
    "CREATE TABLE images (image_id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, name TEXT NOT NULL UNIQUE, "
    "camera_id INTEGER NOT NULL, CONSTRAINT image_id_check CHECK(image_id >= 0 and image_id < 2147483647), "
    "FOREIGN KEY(camera_id) REFERENCES cameras(camera_id)); CREATE UNIQUE INDEX index_name ON images(name);";
const char kPosePriors311[] =
    "CREATE TABLE pose_priors (image_id INTEGER PRIMARY KEY NOT NULL, position BLOB, coordinate_system INTEGER NOT "
    "NULL, position_covariance BLOB, FOREIGN KEY(image_id) REFERENCES images(image_id) ON DELETE CASCADE);";
const char kRigsFrames[] =
    "CREATE TABLE rigs (rig_id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, ref_sensor_id INTEGER NOT NULL, "
    "ref_sensor_type INTEGER NOT NULL);"
    "CREATE TABLE rig_sensors (rig_id INTEGER NOT NULL, sensor_id INTEGER NOT NULL, sensor_type INTEGER NOT NULL, "
    "sensor_from_rig BLOB, FOREIGN KEY(rig_id) REFERENCES rigs(rig_id) ON DELETE CASCADE);"
    "CREATE TABLE frames (frame_id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, rig_id INTEGER NOT NULL, "
    "FOREIGN KEY(rig_id) REFERENCES rigs(rig_id) ON DELETE CASCADE);"
    "CREATE TABLE frame_data (frame_id INTEGER NOT NULL, data_id INTEGER NOT NULL, sensor_id INTEGER NOT NULL, "
    "sensor_type INTEGER NOT NULL, FOREIGN KEY(frame_id) REFERENCES frames(frame_id) ON DELETE CASCADE);";
const char kKeypoints[] =
    "CREATE TABLE keypoints (image_id INTEGER PRIMARY KEY NOT NULL, rows INTEGER NOT NULL, cols INTEGER NOT NULL, "
    "data BLOB, FOREIGN KEY(image_id) REFERENCES images(image_id) ON DELETE CASCADE);";
const char kDescriptors38[] =
    "CREATE TABLE descriptors (image_id INTEGER PRIMARY KEY NOT NULL, rows INTEGER NOT NULL, cols INTEGER NOT NULL, "
    "data BLOB, FOREIGN KEY(image_id) REFERENCES images(image_id) ON DELETE CASCADE);";
const char kDescriptors4x[] =
    "CREATE TABLE descriptors (image_id INTEGER PRIMARY KEY NOT NULL, rows INTEGER NOT NULL, cols INTEGER NOT NULL, "
    "type INTEGER NOT NULL, data BLOB, FOREIGN KEY(image_id) REFERENCES images(image_id) ON DELETE CASCADE);";
const char kMatches[] =
    "CREATE TABLE matches (pair_id INTEGER PRIMARY KEY NOT NULL, rows INTEGER NOT NULL, cols INTEGER NOT NULL, "
    "data BLOB);";
const char kTwoViewGeometries[] =
    "CREATE TABLE two_view_geometries (pair_id INTEGER PRIMARY KEY NOT NULL, rows INTEGER NOT NULL, cols INTEGER NOT "
    "NULL, data BLOB, config INTEGER NOT NULL, F BLOB, E BLOB, H BLOB, qvec BLOB, tvec BLOB);";

}  // namespace

std::string SchemaName(const ::testing::TestParamInfo<ColmapSchemaVersion>& info) {
  switch (info.param) {
    case ColmapSchemaVersion::k38: return "colmap38";
    case ColmapSchemaVersion::k311: return "colmap311";
    case ColmapSchemaVersion::k4x: return "colmap4x";
  }
  return "unknown";
}

void PrintTo(ColmapSchemaVersion version, std::ostream* os) {
  *os << SchemaName(::testing::TestParamInfo<ColmapSchemaVersion>(version, 0));
}

void CreateColmapDatabase(const std::string& path, ColmapSchemaVersion version,
                          const std::vector<std::pair<int64_t, std::string>>& images,
                          const std::vector<std::pair<int64_t, int>>& matches,
                          const std::vector<std::pair<int64_t, int>>& two_view_geometries) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
    sqlite3_close(db);
    throw std::runtime_error("cannot create " + path);
  }
  try {
    Exec(db, "BEGIN;");
    if (version == ColmapSchemaVersion::k4x) Exec(db, kRigsFrames);
    Exec(db, kCameras);
    Exec(db, version == ColmapSchemaVersion::k38 ? kImages38 : kImages310);
    if (version != ColmapSchemaVersion::k38) Exec(db, kPosePriors311);
    Exec(db, kKeypoints);
    Exec(db, version == ColmapSchemaVersion::k4x ? kDescriptors4x : kDescriptors38);
    Exec(db, kMatches);
    Exec(db, kTwoViewGeometries);
    Exec(db, version == ColmapSchemaVersion::k38 ? "PRAGMA user_version = 3800;" : "PRAGMA user_version = 3900;");
    Exec(db, "INSERT INTO cameras(camera_id, model, width, height, params, prior_focal_length) "
             "VALUES(1, 1, 640, 480, zeroblob(32), 0);");
    for (const auto& [id, name] : images) {
      Exec(db, "INSERT INTO images(image_id, name, camera_id) VALUES(" + std::to_string(id) + ", '" + name + "', 1);");
    }
    for (const auto& [pair_id, rows] : matches) {
      Exec(db, "INSERT INTO matches VALUES(" + std::to_string(pair_id) + ", " + std::to_string(rows) + ", 2, zeroblob(" +
                   std::to_string(rows * 8) + "));");
    }
    for (const auto& [pair_id, rows] : two_view_geometries) {
      Exec(db, "INSERT INTO two_view_geometries(pair_id, rows, cols, data, config) VALUES(" + std::to_string(pair_id) +
                   ", " + std::to_string(rows) + ", 2, zeroblob(" + std::to_string(rows * 8) + "), 2);");
    }
    Exec(db, "COMMIT;");
  } catch (...) {
    sqlite3_close(db);
    throw;
  }
  sqlite3_close(db);
}

}  // namespace testing
}  // namespace megaloc
