#pragma once

// Reader (and the few writers we need) for LaMAR's Capture text format (scantools/capture, see
// docs/evaluation.md and docs/cli.md#megaloc-lamar_eval).
//
// Conventions, as in scantools:
//  * CSV, one record per line; blank lines and lines starting with '#' are skipped; fields are
//    separated by ',' and stripped of surrounding whitespace.
//  * Quaternions are scalar-first Hamilton (qw, qx, qy, qz) and are normalised on read.
//  * trajectories.txt, proc/alignment_trajectories.txt and poses.txt store sensor (or rig) -> world
//    poses: X_w = R * X_s + t, so t is the camera centre (the inverse of COLMAP's images.txt).
//  * rigs.txt stores sensor -> rig poses (T_rig_from_cam).
//  * Sensor and rig ids of merged sessions carry their source session as a prefix
//    ("ios_2022-01-01_12.00.00_000/cam_phone_<ts>", "hl_.../hetrig"); they are opaque strings here.
//  * Timestamps are integer microseconds.
// Malformed rows throw FormatError naming the file and the 1-based line number.

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <Eigen/Core>
#include <Eigen/Geometry>

namespace megaloc {
namespace lamar {

// (timestamp in microseconds, sensor or rig id).
using Key = std::pair<int64_t, std::string>;

// A rigid transform "source -> target" (X_target = R * X_source + t), stored as a unit quaternion.
// Composition and inversion follow scantools.capture.Pose (scipy Rotation) operation by operation.
struct Pose {
  Eigen::Quaterniond q = Eigen::Quaterniond::Identity();
  Eigen::Vector3d t = Eigen::Vector3d::Zero();

  // From scalar-first quaternion values (normalised here; a zero quaternion throws InvalidArgument)
  // and a translation (must be finite).
  static Pose FromQt(double qw, double qx, double qy, double qz, double tx, double ty, double tz);

  Eigen::Matrix3d R() const;
  Pose Inverse() const;
  // (this * other): first `other`, then `this`. R = R_a R_b, t = t_a + R_a t_b.
  Pose operator*(const Pose& other) const;
  // Rotation angle in degrees (scipy's magnitude: 2 atan2(|v|, |w|)) and translation norm.
  std::pair<double, double> Magnitude() const;
};

// Ordered (timestamp, device) -> Pose map with the iteration order of scantools' nested dicts:
// timestamps in order of first insertion, then devices in order of insertion. Re-inserting a key
// replaces its pose and keeps its position.
class Trajectories {
 public:
  void Set(const Key& key, const Pose& pose);
  bool Contains(const Key& key) const;
  // Throws InvalidArgument if absent.
  const Pose& Get(const Key& key) const;
  std::vector<Key> KeyPairs() const;
  size_t Size() const { return poses_.size(); }
  bool Empty() const { return poses_.empty(); }

 private:
  std::vector<int64_t> timestamps_;
  std::unordered_map<int64_t, std::vector<std::string>> devices_;
  std::map<Key, Pose> poses_;
};

// rig id -> ordered list of (sensor id, T_rig_from_sensor).
class Rigs {
 public:
  void Set(const std::string& rig_id, const std::string& sensor_id, const Pose& pose);
  bool HasRig(const std::string& rig_id) const;
  // Sensors of a rig in file order; throws InvalidArgument for an unknown rig.
  const std::vector<std::pair<std::string, Pose>>& Sensors(const std::string& rig_id) const;
  const std::vector<std::string>& RigIds() const { return rig_ids_; }
  bool Empty() const { return rig_ids_.empty(); }

 private:
  std::vector<std::string> rig_ids_;
  std::map<std::string, std::vector<std::pair<std::string, Pose>>> rigs_;
};

// One row of sensors.txt. For cameras (sensor_type "camera" or "depth"), `model` is the COLMAP
// model name and `width`, `height`, `params` its parameters (COLMAP order).
struct Sensor {
  std::string id;
  std::string name;
  std::string sensor_type;
  std::vector<std::string> sensor_params;
  bool is_camera = false;
  std::string model;
  int width = 0;
  int height = 0;
  std::vector<double> params;
};

// Number of parameters of a COLMAP camera model name (-1 if unknown).
int CameraModelNumParams(const std::string& model_name);

// A session directory: <capture>/<SCENE>/sessions/<session_id>/.
struct Session {
  std::string id;    // directory name (e.g. "map", "query_val_hololens")
  std::string path;  // session directory
  std::vector<std::string> sensor_ids;  // sensors.txt order
  std::map<std::string, Sensor> sensors;
  Rigs rigs;                                    // empty without rigs.txt
  Trajectories trajectories;                    // empty without trajectories.txt
  bool has_trajectories = false;
  std::vector<Key> image_keys;                  // images.txt order
  std::map<Key, std::string> images;            // key -> path relative to <session>/raw_data/
  Trajectories alignment_trajectories;          // proc/alignment_trajectories.txt (GT of queries)
  bool has_alignment_trajectories = false;

  bool IsCamera(const std::string& id) const;
  bool IsRig(const std::string& id) const { return rigs.HasRig(id); }
  const Sensor& Camera(const std::string& sensor_id) const;
  // Image path relative to raw_data/ for (ts, camera); throws InvalidArgument if absent.
  const std::string& ImagePath(const Key& key) const;
  // Name used by hloc/LaMAR: "<session_id>/raw_data/<images.txt path>".
  std::string ImageName(const Key& key) const;
  // Pose of a sensor at ts: directly, or through the rig containing it (Session.get_pose).
  // Throws InvalidArgument if neither exists.
  Pose SensorPose(const Trajectories& poses, const Key& key) const;
};

struct SessionLoadOptions {
  // Check that every images.txt file exists under raw_data/ (as scantools' loader does).
  bool check_images_exist = true;
};

// Loads a session like scantools.capture.Session.load: sensors.txt is required; rigs.txt,
// trajectories.txt, images.txt and proc/alignment_trajectories.txt are optional. Validates that
// sensor and rig ids are disjoint, every trajectory device is a sensor or rig, every rig sensor
// and image sensor is a sensor. Throws IoError / FormatError naming the file (and line).
Session LoadSession(const std::string& session_path,
                    const SessionLoadOptions& options = SessionLoadOptions());

// Single-file readers (exposed for tests and tools).
Trajectories ReadTrajectories(const std::string& path);
Rigs ReadRigs(const std::string& path);
std::vector<Sensor> ReadSensors(const std::string& path);
std::vector<std::pair<Key, std::string>> ReadImages(const std::string& path);
// queries.txt ("<ts>, <id>" per line). The official reader (lamar.utils.capture.read_query_list)
// allows neither comments nor blank lines; we skip both and accept any whitespace around ','.
std::vector<Key> ReadQueryList(const std::string& path);

// Writers in the exact official layouts.
// poses.txt / trajectories.txt: "# timestamp, device_id, qw, qx, qy, qz, tx, ty, tz, *covar" then
// "ts, id, qw, qx, qy, qz, tx, ty, tz" with shortest round-trip floats.
void WriteTrajectories(const std::string& path, const Trajectories& trajectories);
// "<ts>, <id>\n" per line, no header.
void WriteQueryList(const std::string& path, const std::vector<Key>& keys);

// Shortest decimal representation that round-trips (like Python's repr of a float).
std::string FormatDouble(double value);

// Images of a session as LaMAR lists them (lamar.utils.capture.list_images_for_session):
// without query keys, all images.txt keys sorted by (timestamp, sensor id); with query keys, in
// query order, rig ids expanded to every camera of rigs.txt. Returns keys and hloc image names.
void ListImagesForSession(const Session& session, const std::vector<Key>* query_keys,
                          std::vector<Key>* keys, std::vector<std::string>* names);

}  // namespace lamar
}  // namespace megaloc
