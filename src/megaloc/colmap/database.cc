#include "megaloc/colmap/database.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstring>
#include <sstream>

#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"

namespace megaloc {
namespace {

// RAII prepared statement.
class Statement {
 public:
  Statement(sqlite3* db, const std::string& sql, int* rc) { *rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt_, nullptr); }
  ~Statement() { sqlite3_finalize(stmt_); }
  sqlite3_stmt* get() const { return stmt_; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

bool IsMatchTable(const std::string& table) { return table == "matches" || table == "two_view_geometries"; }

}  // namespace

int64_t ImagePairToPairId(int64_t image_id1, int64_t image_id2) {
  MEGALOC_CHECK_MSG(image_id1 >= 0 && image_id1 < kColmapMaxNumImages && image_id2 >= 0 &&
                        image_id2 < kColmapMaxNumImages,
                    "COLMAP image ids must be in [0, 2147483647): " << image_id1 << ", " << image_id2);
  const int64_t lo = std::min(image_id1, image_id2);
  const int64_t hi = std::max(image_id1, image_id2);
  return kColmapMaxNumImages * lo + hi;
}

std::pair<int64_t, int64_t> PairIdToImagePair(int64_t pair_id) {
  MEGALOC_CHECK_MSG(pair_id >= 0, "negative COLMAP pair_id " << pair_id);
  const int64_t id2 = pair_id % kColmapMaxNumImages;
  const int64_t id1 = (pair_id - id2) / kColmapMaxNumImages;
  return {id1, id2};
}

std::string ColmapSchemaInfo::Description() const {
  std::ostringstream out;
  if (has_two_view_cameras) {
    out << "COLMAP > 4.1.1 schema (two_view_geometries.camera1/2)";
  } else if (has_descriptor_type) {
    out << "COLMAP 4.x schema (descriptors.type)";
  } else if (has_rigs_and_frames) {
    out << "COLMAP 3.12-3.13 schema (rigs/frames)";
  } else if (has_pose_prior_covariance) {
    out << "COLMAP 3.11 schema (pose_priors.position_covariance)";
  } else if (has_pose_priors) {
    out << "COLMAP 3.10 schema (pose_priors)";
  } else if (has_image_prior_columns) {
    out << "COLMAP 3.8-3.9 schema (images.prior_*)";
  } else {
    out << "COLMAP schema of unknown generation";
  }
  out << ", user_version " << user_version;
  return out.str();
}

bool ColmapDatabaseOptions::Check() const {
  CHECK_OPTION_GE(busy_timeout_ms, 0);
  return true;
}

ColmapDatabase::ColmapDatabase(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}

ColmapDatabase::~ColmapDatabase() { sqlite3_close_v2(db_); }

void ColmapDatabase::ThrowSqliteError(int code, const std::string& what) const {
  const int primary = code & 0xff;
  const std::string detail = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(code);
  if (primary == SQLITE_NOTADB) {
    MEGALOC_THROW(FormatError, path_ << ": not a COLMAP database (not an SQLite 3 file) while " << what);
  }
  if (primary == SQLITE_CORRUPT) {
    MEGALOC_THROW(FormatError, path_ << ": corrupt SQLite database while " << what << ": " << detail);
  }
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
    MEGALOC_THROW(IoError, path_ << ": the database is locked by another process (is COLMAP writing to it?) while "
                                 << what << ": " << detail);
  }
  MEGALOC_THROW(IoError, path_ << ": SQLite error while " << what << ": " << detail);
}

std::unique_ptr<ColmapDatabase> ColmapDatabase::Open(const std::string& path, const ColmapDatabaseOptions& options) {
  MEGALOC_CHECK_MSG(options.Check(), "invalid ColmapDatabaseOptions");
  if (DirectoryExists(path)) MEGALOC_THROW(IoError, path << ": is a directory, expected a COLMAP database file");
  if (!FileExists(path)) MEGALOC_THROW(IoError, path << ": COLMAP database not found (no such file)");
  sqlite3* db = nullptr;
  const int flags = (options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_NOMUTEX;
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  std::unique_ptr<ColmapDatabase> database(new ColmapDatabase(path, db));
  database->read_only_ = options.read_only;
  if (rc != SQLITE_OK) database->ThrowSqliteError(rc, "opening");
  sqlite3_busy_timeout(db, options.busy_timeout_ms);
  database->ReadSchema();
  return database;
}

bool ColmapDatabase::HasColumn(const std::string& table, const std::string& column) const {
  int rc = 0;
  Statement stmt(db_, "PRAGMA table_info(\"" + table + "\");", &rc);
  if (rc != SQLITE_OK) ThrowSqliteError(rc, "reading the columns of table '" + table + "'");
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    const unsigned char* name = sqlite3_column_text(stmt.get(), 1);
    if (name != nullptr && column == reinterpret_cast<const char*>(name)) return true;
  }
  if (rc != SQLITE_DONE) ThrowSqliteError(rc, "reading the columns of table '" + table + "'");
  return false;
}

void ColmapDatabase::ReadSchema() {
  int rc = 0;
  {
    // The first read: fails with SQLITE_NOTADB for non-SQLite files, SQLITE_BUSY when locked.
    Statement stmt(db_, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name;",
                   &rc);
    if (rc != SQLITE_OK) ThrowSqliteError(rc, "reading the schema");
    while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
      schema_.tables.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 0)));
    }
    if (rc != SQLITE_DONE) ThrowSqliteError(rc, "reading the schema");
  }
  {
    Statement stmt(db_, "PRAGMA user_version;", &rc);
    if (rc != SQLITE_OK) ThrowSqliteError(rc, "reading PRAGMA user_version");
    rc = sqlite3_step(stmt.get());
    if (rc != SQLITE_ROW) ThrowSqliteError(rc, "reading PRAGMA user_version");
    schema_.user_version = sqlite3_column_int(stmt.get(), 0);
  }
  auto has_table = [&](const std::string& table) {
    return std::binary_search(schema_.tables.begin(), schema_.tables.end(), table);
  };
  for (const char* table : {"images", "matches", "two_view_geometries"}) {
    if (!has_table(table)) {
      if (schema_.tables.empty()) {
        MEGALOC_THROW(FormatError, path_ << ": not a COLMAP database (an SQLite file without tables)");
      }
      MEGALOC_THROW(FormatError, path_ << ": not a COLMAP database: missing table '" << table
                                       << "' (run `colmap feature_extractor` on it first, or check the path)");
    }
  }
  for (const char* column : {"image_id", "name"}) {
    if (!HasColumn("images", column)) {
      MEGALOC_THROW(FormatError, path_ << ": not a COLMAP database: table 'images' has no column '" << column << "'");
    }
  }
  for (const char* table : {"matches", "two_view_geometries"}) {
    for (const char* column : {"pair_id", "rows"}) {
      if (!HasColumn(table, column)) {
        MEGALOC_THROW(FormatError, path_ << ": not a COLMAP database: table '" << table << "' has no column '" << column
                                         << "'");
      }
    }
  }
  has_image_camera_id_ = HasColumn("images", "camera_id");
  schema_.has_image_prior_columns = HasColumn("images", "prior_qw");
  schema_.has_pose_priors = has_table("pose_priors");
  schema_.has_pose_prior_covariance = schema_.has_pose_priors && HasColumn("pose_priors", "position_covariance");
  schema_.has_rigs_and_frames = has_table("rigs") && has_table("frames");
  schema_.has_descriptor_type = has_table("descriptors") && HasColumn("descriptors", "type");
  schema_.has_two_view_cameras = HasColumn("two_view_geometries", "camera1");
}

std::vector<ColmapDatabaseImage> ColmapDatabase::ReadImages() const {
  int rc = 0;
  Statement stmt(db_, has_image_camera_id_ ? "SELECT image_id, name, camera_id FROM images;"
                                           : "SELECT image_id, name FROM images;",
                 &rc);
  if (rc != SQLITE_OK) ThrowSqliteError(rc, "reading table 'images'");
  std::vector<ColmapDatabaseImage> images;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    ColmapDatabaseImage image;
    image.image_id = sqlite3_column_int64(stmt.get(), 0);
    const unsigned char* name = sqlite3_column_text(stmt.get(), 1);
    if (name == nullptr) {
      MEGALOC_THROW(FormatError, path_ << ": image_id " << image.image_id << " has a NULL name");
    }
    image.name = reinterpret_cast<const char*>(name);
    if (has_image_camera_id_) image.camera_id = sqlite3_column_int64(stmt.get(), 2);
    images.push_back(std::move(image));
  }
  if (rc != SQLITE_DONE) ThrowSqliteError(rc, "reading table 'images'");
  std::sort(images.begin(), images.end(),
            [](const ColmapDatabaseImage& a, const ColmapDatabaseImage& b) { return a.name < b.name; });
  return images;
}

int64_t ColmapDatabase::NumImages() const { return NumRows("images"); }

int64_t ColmapDatabase::NumRows(const std::string& table) const {
  MEGALOC_CHECK_MSG(std::binary_search(schema_.tables.begin(), schema_.tables.end(), table),
                    path_ << ": no table '" << table << "'");
  int rc = 0;
  Statement stmt(db_, "SELECT COUNT(*) FROM \"" + table + "\";", &rc);
  if (rc != SQLITE_OK) ThrowSqliteError(rc, "counting rows of '" + table + "'");
  rc = sqlite3_step(stmt.get());
  if (rc != SQLITE_ROW) ThrowSqliteError(rc, "counting rows of '" + table + "'");
  return sqlite3_column_int64(stmt.get(), 0);
}

int64_t ColmapDatabase::NumNonEmptyRows(const std::string& table) const {
  MEGALOC_CHECK_MSG(IsMatchTable(table), "NumNonEmptyRows: expected 'matches' or 'two_view_geometries', got '"
                                             << table << "'");
  int rc = 0;
  Statement stmt(db_, "SELECT COUNT(*) FROM " + table + " WHERE rows > 0;", &rc);
  if (rc != SQLITE_OK) ThrowSqliteError(rc, "counting rows of '" + table + "'");
  rc = sqlite3_step(stmt.get());
  if (rc != SQLITE_ROW) ThrowSqliteError(rc, "counting rows of '" + table + "'");
  return sqlite3_column_int64(stmt.get(), 0);
}

std::vector<int64_t> ColmapDatabase::ReadPairIds(const std::string& table) const {
  MEGALOC_CHECK_MSG(IsMatchTable(table), "ReadPairIds: expected 'matches' or 'two_view_geometries', got '"
                                             << table << "'");
  int rc = 0;
  Statement stmt(db_, "SELECT pair_id FROM " + table + " ORDER BY pair_id;", &rc);
  if (rc != SQLITE_OK) ThrowSqliteError(rc, "reading pair ids of '" + table + "'");
  std::vector<int64_t> ids;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) ids.push_back(sqlite3_column_int64(stmt.get(), 0));
  if (rc != SQLITE_DONE) ThrowSqliteError(rc, "reading pair ids of '" + table + "'");
  return ids;
}

std::vector<ColmapPosePrior> ColmapDatabase::ReadPosePriors() const {
  std::vector<ColmapPosePrior> priors;
  if (!schema_.has_pose_priors) return priors;
  // COLMAP 4.x links priors to sensor data; a camera's data id is the image id.
  const std::string sql =
      HasColumn("pose_priors", "corr_data_id")
          ? "SELECT p.corr_data_id, i.name, p.position, p.coordinate_system FROM pose_priors p "
            "JOIN images i ON i.image_id = p.corr_data_id WHERE p.corr_sensor_type = 0;"
          : "SELECT p.image_id, i.name, p.position, p.coordinate_system FROM pose_priors p "
            "JOIN images i ON i.image_id = p.image_id;";
  int rc = 0;
  Statement stmt(db_, sql, &rc);
  if (rc != SQLITE_OK) ThrowSqliteError(rc, "reading table 'pose_priors'");
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    ColmapPosePrior prior;
    prior.image_id = sqlite3_column_int64(stmt.get(), 0);
    const unsigned char* name = sqlite3_column_text(stmt.get(), 1);
    if (name == nullptr) continue;
    prior.name = reinterpret_cast<const char*>(name);
    if (sqlite3_column_type(stmt.get(), 2) == SQLITE_NULL) continue;
    const int bytes = sqlite3_column_bytes(stmt.get(), 2);
    if (bytes != static_cast<int>(sizeof(prior.position))) {
      MEGALOC_THROW(FormatError, path_ << ": pose_priors position of image '" << prior.name << "' has " << bytes
                                       << " bytes, expected 24 (3 float64)");
    }
    std::memcpy(prior.position, sqlite3_column_blob(stmt.get(), 2), sizeof(prior.position));
    prior.coordinate_system = sqlite3_column_int(stmt.get(), 3);
    priors.push_back(std::move(prior));
  }
  if (rc != SQLITE_DONE) ThrowSqliteError(rc, "reading table 'pose_priors'");
  std::sort(priors.begin(), priors.end(),
            [](const ColmapPosePrior& a, const ColmapPosePrior& b) { return a.name < b.name; });
  return priors;
}

bool ColmapDatabase::ReadCamera(int64_t camera_id, ColmapCamera* camera) const {
  const std::string what = "reading camera " + std::to_string(camera_id);
  int rc = 0;
  Statement stmt(db_, "SELECT model, width, height, params FROM cameras WHERE camera_id = ?;", &rc);
  if (rc != SQLITE_OK) ThrowSqliteError(rc, what);
  sqlite3_bind_int64(stmt.get(), 1, camera_id);
  rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_DONE) return false;
  if (rc != SQLITE_ROW) ThrowSqliteError(rc, what);
  camera->camera_id = static_cast<uint32_t>(camera_id);
  camera->model_id = sqlite3_column_int(stmt.get(), 0);
  camera->width = static_cast<uint64_t>(sqlite3_column_int64(stmt.get(), 1));
  camera->height = static_cast<uint64_t>(sqlite3_column_int64(stmt.get(), 2));
  const ColmapCameraModel* model = FindColmapCameraModel(camera->model_id);
  const int bytes = sqlite3_column_bytes(stmt.get(), 3);
  const void* blob = sqlite3_column_blob(stmt.get(), 3);
  if (model == nullptr) {
    MEGALOC_THROW(FormatError, path_ << ": camera " << camera_id << " has unknown model id " << camera->model_id);
  }
  if (bytes != model->num_params * static_cast<int>(sizeof(double)) || (bytes > 0 && blob == nullptr)) {
    MEGALOC_THROW(FormatError, path_ << ": camera " << camera_id << " (" << model->name << ") has " << bytes
                                     << " bytes of params, expected " << model->num_params << " float64 values");
  }
  camera->params.assign(model->num_params, 0.0);
  if (bytes > 0) std::memcpy(camera->params.data(), blob, bytes);
  return true;
}

void ColmapDatabase::UpdateCamera(const ColmapCamera& camera) {
  if (read_only_) {
    MEGALOC_THROW(InvalidArgument, path_ << ": opened read-only, cannot update camera " << camera.camera_id);
  }
  const ColmapCameraModel* model = FindColmapCameraModel(camera.model_id);
  if (model == nullptr || static_cast<int>(camera.params.size()) != model->num_params) {
    MEGALOC_THROW(InvalidArgument, path_ << ": camera " << camera.camera_id << ": model id " << camera.model_id
                                         << " with " << camera.params.size() << " params is not a COLMAP camera");
  }
  const std::string what = "updating camera " + std::to_string(camera.camera_id);
  int rc = 0;
  Statement stmt(db_,
                 "UPDATE cameras SET model = ?, width = ?, height = ?, params = ?, prior_focal_length = 1 "
                 "WHERE camera_id = ?;",
                 &rc);
  if (rc != SQLITE_OK) ThrowSqliteError(rc, what);
  sqlite3_bind_int(stmt.get(), 1, camera.model_id);
  sqlite3_bind_int64(stmt.get(), 2, static_cast<int64_t>(camera.width));
  sqlite3_bind_int64(stmt.get(), 3, static_cast<int64_t>(camera.height));
  sqlite3_bind_blob(stmt.get(), 4, camera.params.data(), static_cast<int>(camera.params.size() * sizeof(double)),
                    SQLITE_TRANSIENT);
  sqlite3_bind_int64(stmt.get(), 5, camera.camera_id);
  rc = sqlite3_step(stmt.get());
  if (rc != SQLITE_DONE) ThrowSqliteError(rc, what);
  if (sqlite3_changes(db_) != 1) {
    MEGALOC_THROW(FormatError, path_ << ": no camera row with camera_id " << camera.camera_id);
  }
}

}  // namespace megaloc
