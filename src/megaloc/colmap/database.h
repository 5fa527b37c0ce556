#pragma once

// Access to a COLMAP SQLite database (schemas of COLMAP 3.8 through 4.x), through the
// SQLite3 C API only: no link against COLMAP.
//
// Only what retrieval matching needs is read: `images(image_id, name)` (identical in every COLMAP
// version), the schema generation (for reporting) and row counts of `matches` /
// `two_view_geometries` (for statistics). The retrieval matcher never writes: the database is
// opened with SQLITE_OPEN_READONLY, and COLMAP itself writes matches transactionally
// (matches_importer). Only LaMAR localization opens its own database writable, to set the known
// camera intrinsics (UpdateCamera).
//
// Image names are paths relative to COLMAP's --image_path with '/' separators: the join key with
// hloc's HDF5 names and with pair lists. Image ids are not stable across extraction runs; join by
// name.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "megaloc/colmap/model.h"

struct sqlite3;

namespace megaloc {

// COLMAP's kMaxNumImages: the pair_id base.
constexpr int64_t kColmapMaxNumImages = 2147483647;

// pair_id = kColmapMaxNumImages * min(id1, id2) + max(id1, id2), as COLMAP's Database::ImagePairToPairId.
// Throws InvalidArgument for ids outside [0, kColmapMaxNumImages).
int64_t ImagePairToPairId(int64_t image_id1, int64_t image_id2);
// Inverse: (smaller id, larger id). Throws InvalidArgument for a negative pair_id.
std::pair<int64_t, int64_t> PairIdToImagePair(int64_t pair_id);
// True if COLMAP stores the match columns swapped for the ordered pair (id1, id2), i.e. id1 > id2.
inline bool SwapImagePair(int64_t image_id1, int64_t image_id2) { return image_id1 > image_id2; }

// A row of the `images` table of a COLMAP database (not the reconstruction image of a model).
struct ColmapDatabaseImage {
  int64_t image_id = 0;
  std::string name;
  int64_t camera_id = -1;  // -1 if the table has no camera_id column
};

// A position prior from the `pose_priors` table (COLMAP >= 3.10) with the name of its image.
struct ColmapPosePrior {
  int64_t image_id = 0;
  std::string name;
  // coordinate_system 0 (WGS84): latitude, longitude (degrees), altitude (metres);
  // 1 (CARTESIAN): x, y, z; -1 (UNDEFINED): as stored.
  double position[3] = {0.0, 0.0, 0.0};
  int coordinate_system = -1;
};

// What the schema reveals about the COLMAP version that created / last migrated the database.
struct ColmapSchemaInfo {
  // PRAGMA user_version (3800 for 3.8; later versions write 3900 or other values: informative only).
  int user_version = 0;
  bool has_image_prior_columns = false;       // images.prior_qw ... (<= 3.9)
  bool has_pose_priors = false;               // pose_priors table (>= 3.10)
  bool has_pose_prior_covariance = false;     // pose_priors.position_covariance (>= 3.11)
  bool has_rigs_and_frames = false;           // rigs, rig_sensors, frames, frame_data (>= 3.12)
  bool has_descriptor_type = false;           // descriptors.type (>= 4.0)
  bool has_two_view_cameras = false;          // two_view_geometries.camera1/camera2 (after 4.1.1)
  std::vector<std::string> tables;            // sorted user table names

  // A human-readable generation, e.g. "COLMAP 3.8-3.9 schema (user_version 3800)".
  std::string Description() const;
};

struct ColmapDatabaseOptions {
  // How long to wait for a lock held by another connection (COLMAP writing) before failing, in ms.
  int busy_timeout_ms = 5000;
  // Opened with SQLITE_OPEN_READONLY unless false (UpdateCamera needs false). Default: true.
  bool read_only = true;

  bool Check() const;
};

class ColmapDatabase {
 public:
  // Opens `path` read-only and validates that it is a COLMAP database (tables images, matches and
  // two_view_geometries with their key columns). Throws IoError (missing file, directory,
  // unreadable, locked) or FormatError (not an SQLite file, corrupt, missing table/column), each
  // naming the file and the reason.
  static std::unique_ptr<ColmapDatabase> Open(const std::string& path,
                                              const ColmapDatabaseOptions& options = ColmapDatabaseOptions());
  ~ColmapDatabase();
  ColmapDatabase(const ColmapDatabase&) = delete;
  ColmapDatabase& operator=(const ColmapDatabase&) = delete;

  const std::string& Path() const { return path_; }
  const ColmapSchemaInfo& Schema() const { return schema_; }

  // All images, sorted by name (byte order).
  std::vector<ColmapDatabaseImage> ReadImages() const;
  int64_t NumImages() const;

  // Row count of a table (one of the tables in Schema().tables; InvalidArgument otherwise).
  int64_t NumRows(const std::string& table) const;
  // Rows of `table` ("matches" or "two_view_geometries") with rows > 0 (non-empty results).
  int64_t NumNonEmptyRows(const std::string& table) const;
  // pair_ids present in `table` ("matches" or "two_view_geometries"), ascending.
  std::vector<int64_t> ReadPairIds(const std::string& table) const;

  // Position priors of images, sorted by name: `pose_priors(image_id, position, coordinate_system)`
  // of COLMAP 3.10-3.13, or the camera rows (corr_sensor_type 0, corr_data_id = image_id) of the
  // 4.x layout. Rows with a NULL position are left out; empty without the table (COLMAP <= 3.9).
  // Throws FormatError for a position that is not 3 float64 values.
  std::vector<ColmapPosePrior> ReadPosePriors() const;

  // The `cameras` row of `camera_id` (model, width, height, params); false if there is none.
  // Throws FormatError for params that are not float64 values of the model's count.
  bool ReadCamera(int64_t camera_id, ColmapCamera* camera) const;
  // Sets model, size and params of an existing camera row (prior_focal_length = 1: known
  // intrinsics). Throws InvalidArgument on a read-only database, FormatError if the row is missing.
  void UpdateCamera(const ColmapCamera& camera);

 private:
  ColmapDatabase(std::string path, sqlite3* db);
  void ReadSchema();
  bool HasColumn(const std::string& table, const std::string& column) const;
  // Throws the IoError/FormatError that matches an SQLite result code, naming the file.
  [[noreturn]] void ThrowSqliteError(int code, const std::string& what) const;

  std::string path_;
  sqlite3* db_ = nullptr;
  ColmapSchemaInfo schema_;
  bool read_only_ = true;
  bool has_image_camera_id_ = false;
};

}  // namespace megaloc
