#include "megaloc/eval/lamar/capture.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "megaloc/util/csv.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/string_utils.h"

namespace megaloc {
namespace lamar {
namespace {

// scantools.utils.io.read_csv: strip, skip empty lines and '#' lines, split on ',', strip fields.
std::vector<CsvRow> ReadCsv(const std::string& path) {
  CsvOptions options;
  options.header = false;
  options.comments = true;
  options.quotes = false;
  options.trim = true;
  return ReadCsvFile(path, options).rows;
}

[[noreturn]] void ThrowRowError(const std::string& path, int line, const std::string& reason) {
  MEGALOC_THROW(FormatError, path << ":" << line << ": " << reason);
}

int64_t ParseTimestamp(const std::string& text, const std::string& path, int line) {
  int64_t value = 0;
  if (!ParseInt64(text, &value)) {
    ThrowRowError(path, line, "invalid timestamp '" + text + "' (expected an integer, microseconds)");
  }
  return value;
}

double ParseDouble(const std::string& text, const std::string& what, const std::string& path,
                   int line) {
  if (text.empty()) ThrowRowError(path, line, "empty value for " + what);
  double value = 0.0;
  if (!megaloc::ParseDouble(text, &value)) ThrowRowError(path, line, "invalid number '" + text + "' for " + what);
  return value;
}

void CheckNonEmptyId(const std::string& id, const std::string& what, const std::string& path,
                     int line) {
  if (id.empty()) ThrowRowError(path, line, "empty " + what);
}

// A (timestamp, device) key may appear once per file (Python's dicts would keep the last row
// silently).
void CheckUniqueKey(const Key& key, const std::string& path, int line, std::map<Key, int>* first_line) {
  const auto inserted = first_line->emplace(key, line);
  if (!inserted.second) {
    ThrowRowError(path, line, "duplicate key (" + std::to_string(key.first) + ", " + key.second +
                                  "), first given on line " + std::to_string(inserted.first->second));
  }
}

// Pose.from_list: [qw, qx, qy, qz, tx, ty, tz] or the same followed by a 6x6 covariance.
Pose ParsePoseFields(const std::vector<std::string>& fields, size_t offset, const std::string& path,
                     int line) {
  const size_t n = fields.size() - offset;
  if (n != 7 && n != 7 + 36) {
    std::ostringstream reason;
    reason << "expected 7 pose values (qw, qx, qy, qz, tx, ty, tz) optionally followed by 36 "
              "covariance values, got "
           << n;
    ThrowRowError(path, line, reason.str());
  }
  static const char* kNames[7] = {"qw", "qx", "qy", "qz", "tx", "ty", "tz"};
  double v[7];
  for (int i = 0; i < 7; ++i) v[i] = ParseDouble(fields[offset + i], kNames[i], path, line);
  for (size_t i = 7; i < n; ++i) ParseDouble(fields[offset + i], "covariance", path, line);
  const double norm = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2] + v[3] * v[3]);
  if (!(norm > 0.0) || !std::isfinite(norm)) {
    ThrowRowError(path, line, "invalid quaternion (zero or non-finite norm)");
  }
  if (!std::isfinite(v[4]) || !std::isfinite(v[5]) || !std::isfinite(v[6])) {
    ThrowRowError(path, line, "non-finite translation");
  }
  return Pose::FromQt(v[0], v[1], v[2], v[3], v[4], v[5], v[6]);
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Pose. scipy stores quaternions as (x, y, z, w); the operations below follow scipy's formulas.

Pose Pose::FromQt(double qw, double qx, double qy, double qz, double tx, double ty, double tz) {
  const double norm = std::sqrt(qw * qw + qx * qx + qy * qy + qz * qz);
  MEGALOC_CHECK_MSG(norm > 0.0 && std::isfinite(norm), "invalid quaternion");
  Pose pose;
  pose.q = Eigen::Quaterniond(qw / norm, qx / norm, qy / norm, qz / norm);
  pose.t = Eigen::Vector3d(tx, ty, tz);
  MEGALOC_CHECK_MSG(pose.t.allFinite(), "non-finite translation");
  return pose;
}

Eigen::Matrix3d Pose::R() const {
  // scipy Rotation.as_matrix.
  const double x = q.x(), y = q.y(), z = q.z(), w = q.w();
  const double x2 = x * x, y2 = y * y, z2 = z * z, w2 = w * w;
  const double xy = x * y, zw = z * w, xz = x * z, yw = y * w, yz = y * z, xw = x * w;
  Eigen::Matrix3d m;
  m(0, 0) = x2 - y2 - z2 + w2;
  m(1, 0) = 2 * (xy + zw);
  m(2, 0) = 2 * (xz - yw);
  m(0, 1) = 2 * (xy - zw);
  m(1, 1) = -x2 + y2 - z2 + w2;
  m(2, 1) = 2 * (yz + xw);
  m(0, 2) = 2 * (xz + yw);
  m(1, 2) = 2 * (yz - xw);
  m(2, 2) = -x2 - y2 + z2 + w2;
  return m;
}

Pose Pose::Inverse() const {
  // scipy Rotation.inv negates the scalar part; t_inv = -(R_inv t).
  Pose inv;
  inv.q = Eigen::Quaterniond(-q.w(), q.x(), q.y(), q.z());
  inv.t = -1.0 * (inv.R() * t);
  return inv;
}

Pose Pose::operator*(const Pose& other) const {
  // scipy _compose_quat(p, q): xyz = p_w q_xyz + q_w p_xyz + p_xyz x q_xyz, w = p_w q_w - p.q.
  const Eigen::Vector3d pv(q.x(), q.y(), q.z());
  const Eigen::Vector3d qv(other.q.x(), other.q.y(), other.q.z());
  const double pw = q.w(), qw = other.q.w();
  const Eigen::Vector3d cross = pv.cross(qv);
  const Eigen::Vector3d xyz = pw * qv + qw * pv + cross;
  const double w = pw * qw - pv.dot(qv);
  Pose out;
  const double norm = std::sqrt(xyz.squaredNorm() + w * w);
  out.q = Eigen::Quaterniond(w / norm, xyz.x() / norm, xyz.y() / norm, xyz.z() / norm);
  out.t = t + R() * other.t;
  return out;
}

std::pair<double, double> Pose::Magnitude() const {
  const double v = std::sqrt(q.x() * q.x() + q.y() * q.y() + q.z() * q.z());
  const double angle_rad = 2.0 * std::atan2(v, std::abs(q.w()));
  // numpy rad2deg: x * (180 / pi).
  const double angle_deg = angle_rad * (180.0 / M_PI);
  return {angle_deg, t.norm()};
}

// ------------------------------------------------------------------------------------------------

void Trajectories::Set(const Key& key, const Pose& pose) {
  auto it = poses_.find(key);
  if (it != poses_.end()) {
    it->second = pose;
    return;
  }
  auto dev = devices_.find(key.first);
  if (dev == devices_.end()) {
    timestamps_.push_back(key.first);
    devices_[key.first].push_back(key.second);
  } else {
    dev->second.push_back(key.second);
  }
  poses_.emplace(key, pose);
}

bool Trajectories::Contains(const Key& key) const { return poses_.count(key) > 0; }

const Pose& Trajectories::Get(const Key& key) const {
  auto it = poses_.find(key);
  MEGALOC_CHECK_MSG(it != poses_.end(),
                    "no pose for (" << key.first << ", " << key.second << ")");
  return it->second;
}

std::vector<Key> Trajectories::KeyPairs() const {
  std::vector<Key> keys;
  keys.reserve(poses_.size());
  for (int64_t ts : timestamps_) {
    for (const std::string& device : devices_.at(ts)) keys.emplace_back(ts, device);
  }
  return keys;
}

void Rigs::Set(const std::string& rig_id, const std::string& sensor_id, const Pose& pose) {
  auto it = rigs_.find(rig_id);
  if (it == rigs_.end()) {
    rig_ids_.push_back(rig_id);
    rigs_[rig_id].emplace_back(sensor_id, pose);
    return;
  }
  for (auto& entry : it->second) {
    if (entry.first == sensor_id) {
      entry.second = pose;
      return;
    }
  }
  it->second.emplace_back(sensor_id, pose);
}

bool Rigs::HasRig(const std::string& rig_id) const { return rigs_.count(rig_id) > 0; }

const std::vector<std::pair<std::string, Pose>>& Rigs::Sensors(const std::string& rig_id) const {
  auto it = rigs_.find(rig_id);
  MEGALOC_CHECK_MSG(it != rigs_.end(), "unknown rig id '" << rig_id << "'");
  return it->second;
}

int CameraModelNumParams(const std::string& model_name) {
  static const std::map<std::string, int> kModels = {
      {"SIMPLE_PINHOLE", 3}, {"PINHOLE", 4},       {"SIMPLE_RADIAL", 4},
      {"RADIAL", 5},         {"OPENCV", 8},        {"OPENCV_FISHEYE", 8},
      {"FULL_OPENCV", 12},   {"FOV", 5},           {"SIMPLE_RADIAL_FISHEYE", 4},
      {"RADIAL_FISHEYE", 5}, {"THIN_PRISM_FISHEYE", 12}};
  auto it = kModels.find(model_name);
  return it == kModels.end() ? -1 : it->second;
}

bool Session::IsCamera(const std::string& id) const {
  auto it = sensors.find(id);
  return it != sensors.end() && it->second.is_camera;
}

const Sensor& Session::Camera(const std::string& sensor_id) const {
  auto it = sensors.find(sensor_id);
  MEGALOC_CHECK_MSG(it != sensors.end() && it->second.is_camera,
                    "session " << id << ": '" << sensor_id << "' is not a camera of sensors.txt");
  return it->second;
}

const std::string& Session::ImagePath(const Key& key) const {
  auto it = images.find(key);
  MEGALOC_CHECK_MSG(it != images.end(), "session " << id << ": no image for (" << key.first << ", "
                                                   << key.second << ") in images.txt");
  return it->second;
}

std::string Session::ImageName(const Key& key) const {
  return id + "/raw_data/" + ImagePath(key);
}

Pose Session::SensorPose(const Trajectories& poses, const Key& key) const {
  if (poses.Contains(key)) return poses.Get(key);
  for (const std::string& rig_id : rigs.RigIds()) {
    const Key rig_key(key.first, rig_id);
    if (!poses.Contains(rig_key)) continue;
    for (const auto& entry : rigs.Sensors(rig_id)) {
      if (entry.first == key.second) return poses.Get(rig_key) * entry.second;
    }
  }
  MEGALOC_THROW(InvalidArgument, "session " << id << ": no pose or rig pose for (" << key.first
                                            << ", " << key.second << ")");
}

// ------------------------------------------------------------------------------------------------

Trajectories ReadTrajectories(const std::string& path) {
  Trajectories trajectories;
  std::map<Key, int> first_line;
  for (const CsvRow& row : ReadCsv(path)) {
    if (row.fields.size() < 2) ThrowRowError(path, row.line, "expected timestamp, device_id, pose");
    const int64_t ts = ParseTimestamp(row.fields[0], path, row.line);
    CheckNonEmptyId(row.fields[1], "device_id", path, row.line);
    CheckUniqueKey(Key(ts, row.fields[1]), path, row.line, &first_line);
    trajectories.Set(Key(ts, row.fields[1]), ParsePoseFields(row.fields, 2, path, row.line));
  }
  return trajectories;
}

Rigs ReadRigs(const std::string& path) {
  Rigs rigs;
  for (const CsvRow& row : ReadCsv(path)) {
    if (row.fields.size() < 2) ThrowRowError(path, row.line, "expected rig_id, sensor_id, pose");
    CheckNonEmptyId(row.fields[0], "rig_id", path, row.line);
    CheckNonEmptyId(row.fields[1], "sensor_id", path, row.line);
    if (row.fields.size() != 9) {
      std::ostringstream reason;
      reason << "expected 9 fields (rig_id, sensor_id, qw, qx, qy, qz, tx, ty, tz), got "
             << row.fields.size();
      ThrowRowError(path, row.line, reason.str());
    }
    rigs.Set(row.fields[0], row.fields[1], ParsePoseFields(row.fields, 2, path, row.line));
  }
  return rigs;
}

std::vector<Sensor> ReadSensors(const std::string& path) {
  std::vector<Sensor> sensors;
  std::set<std::string> seen;
  for (const CsvRow& row : ReadCsv(path)) {
    if (row.fields.size() < 3) {
      ThrowRowError(path, row.line, "expected sensor_id, name, sensor_type[, sensor_params]");
    }
    Sensor sensor;
    sensor.id = row.fields[0];
    CheckNonEmptyId(sensor.id, "sensor_id", path, row.line);
    if (!seen.insert(sensor.id).second) {
      ThrowRowError(path, row.line, "duplicate sensor id '" + sensor.id + "'");
    }
    sensor.name = row.fields[1];
    sensor.sensor_type = row.fields[2];
    sensor.sensor_params.assign(row.fields.begin() + 3, row.fields.end());
    if (sensor.sensor_type == "camera" || sensor.sensor_type == "depth") {
      if (sensor.sensor_params.empty()) {
        ThrowRowError(path, row.line, "camera '" + sensor.id + "' has no model and parameters");
      }
      sensor.is_camera = sensor.sensor_type == "camera";
      sensor.model = sensor.sensor_params[0];
      const int num_params = CameraModelNumParams(sensor.model);
      if (num_params < 0) {
        ThrowRowError(path, row.line, "unknown camera model '" + sensor.model + "'");
      }
      const size_t expected = static_cast<size_t>(num_params) + 3;
      if (sensor.sensor_params.size() != expected) {
        std::ostringstream reason;
        reason << "camera model " << sensor.model << " expects width, height and " << num_params
               << " parameters, got " << sensor.sensor_params.size() - 1 << " values";
        ThrowRowError(path, row.line, reason.str());
      }
      // scantools requires str(width).isnumeric() after float formatting; accept "640" or "640.0".
      for (int i = 1; i <= 2; ++i) {
        const double v = ParseDouble(sensor.sensor_params[i], i == 1 ? "width" : "height", path,
                                     row.line);
        if (!(v > 0) || v != std::floor(v) || v > 1e6) {
          ThrowRowError(path, row.line, "invalid image size '" + sensor.sensor_params[i] + "'");
        }
        (i == 1 ? sensor.width : sensor.height) = static_cast<int>(v);
      }
      for (size_t i = 3; i < sensor.sensor_params.size(); ++i) {
        sensor.params.push_back(
            ParseDouble(sensor.sensor_params[i], "camera parameter", path, row.line));
      }
    }
    sensors.push_back(std::move(sensor));
  }
  return sensors;
}

std::vector<std::pair<Key, std::string>> ReadImages(const std::string& path) {
  std::vector<std::pair<Key, std::string>> images;
  std::map<Key, int> first_line;
  for (const CsvRow& row : ReadCsv(path)) {
    if (row.fields.size() != 3) {
      std::ostringstream reason;
      reason << "expected 3 fields (timestamp, sensor_id, image_path), got " << row.fields.size();
      ThrowRowError(path, row.line, reason.str());
    }
    const int64_t ts = ParseTimestamp(row.fields[0], path, row.line);
    CheckNonEmptyId(row.fields[1], "sensor_id", path, row.line);
    CheckNonEmptyId(row.fields[2], "image_path", path, row.line);
    CheckUniqueKey(Key(ts, row.fields[1]), path, row.line, &first_line);
    images.emplace_back(Key(ts, row.fields[1]), row.fields[2]);
  }
  return images;
}

std::vector<Key> ReadQueryList(const std::string& path) {
  std::vector<Key> keys;
  std::map<Key, int> first_line;
  for (const CsvRow& row : ReadCsv(path)) {
    if (row.fields.size() != 2) {
      std::ostringstream reason;
      reason << "expected 2 fields (timestamp, sensor_or_rig_id), got " << row.fields.size();
      ThrowRowError(path, row.line, reason.str());
    }
    const int64_t ts = ParseTimestamp(row.fields[0], path, row.line);
    CheckNonEmptyId(row.fields[1], "sensor or rig id", path, row.line);
    CheckUniqueKey(Key(ts, row.fields[1]), path, row.line, &first_line);
    keys.emplace_back(ts, row.fields[1]);
  }
  return keys;
}

Session LoadSession(const std::string& session_path, const SessionLoadOptions& options) {
  if (!DirectoryExists(session_path)) {
    MEGALOC_THROW(IoError, session_path << ": session directory does not exist");
  }
  Session session;
  session.path = session_path;
  {
    std::string trimmed = session_path;
    while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
    const size_t slash = trimmed.find_last_of('/');
    session.id = slash == std::string::npos ? trimmed : trimmed.substr(slash + 1);
  }
  const std::string sensors_path = JoinPaths(session_path, "sensors.txt");
  if (!FileExists(sensors_path)) {
    MEGALOC_THROW(IoError, sensors_path << ": no sensors.txt in session " << session_path);
  }
  for (Sensor& sensor : ReadSensors(sensors_path)) {
    session.sensor_ids.push_back(sensor.id);
    session.sensors.emplace(sensor.id, std::move(sensor));
  }

  const std::string rigs_path = JoinPaths(session_path, "rigs.txt");
  if (FileExists(rigs_path)) {
    session.rigs = ReadRigs(rigs_path);
    for (const std::string& rig_id : session.rigs.RigIds()) {
      if (session.sensors.count(rig_id)) {
        MEGALOC_THROW(FormatError, rigs_path << ": rig id '" << rig_id
                                             << "' is also a sensor id of sensors.txt");
      }
      for (const auto& entry : session.rigs.Sensors(rig_id)) {
        if (!session.sensors.count(entry.first)) {
          MEGALOC_THROW(FormatError, rigs_path << ": sensor '" << entry.first << "' of rig '"
                                               << rig_id << "' is not in sensors.txt");
        }
      }
    }
  }

  auto check_devices = [&](const Trajectories& trajectories, const std::string& path) {
    for (const Key& key : trajectories.KeyPairs()) {
      if (!session.sensors.count(key.second) && !session.rigs.HasRig(key.second)) {
        MEGALOC_THROW(FormatError, path << ": device '" << key.second << "' (timestamp "
                                        << key.first << ") is neither a sensor nor a rig");
      }
    }
  };

  const std::string trajectories_path = JoinPaths(session_path, "trajectories.txt");
  if (FileExists(trajectories_path)) {
    session.trajectories = ReadTrajectories(trajectories_path);
    session.has_trajectories = true;
    check_devices(session.trajectories, trajectories_path);
  }

  const std::string images_path = JoinPaths(session_path, "images.txt");
  if (FileExists(images_path)) {
    for (auto& entry : ReadImages(images_path)) {
      if (!session.sensors.count(entry.first.second)) {
        MEGALOC_THROW(FormatError, images_path << ": sensor '" << entry.first.second
                                               << "' is not in sensors.txt");
      }
      if (options.check_images_exist) {
        const std::string file = JoinPaths(JoinPaths(session_path, "raw_data"), entry.second);
        if (!FileExists(file)) {
          MEGALOC_THROW(IoError, images_path << ": image " << entry.second
                                             << " does not exist (" << file << ")");
        }
      }
      if (!session.images.count(entry.first)) session.image_keys.push_back(entry.first);
      session.images[entry.first] = entry.second;
    }
  }

  const std::string alignment_path = JoinPaths(session_path, "proc/alignment_trajectories.txt");
  if (FileExists(alignment_path)) {
    session.alignment_trajectories = ReadTrajectories(alignment_path);
    session.has_alignment_trajectories = true;
    check_devices(session.alignment_trajectories, alignment_path);
  }
  return session;
}

// ------------------------------------------------------------------------------------------------

std::string FormatDouble(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  std::string text(buffer, result.ptr);
  if (text.find_first_of(".e") == std::string::npos) text += ".0";
  return text;
}

void WriteTrajectories(const std::string& path, const Trajectories& trajectories) {
  std::ostringstream out;
  out << "# timestamp, device_id, qw, qx, qy, qz, tx, ty, tz, *covar\n";
  for (const Key& key : trajectories.KeyPairs()) {
    const Pose& pose = trajectories.Get(key);
    out << key.first << ", " << key.second << ", " << FormatDouble(pose.q.w()) << ", "
        << FormatDouble(pose.q.x()) << ", " << FormatDouble(pose.q.y()) << ", "
        << FormatDouble(pose.q.z()) << ", " << FormatDouble(pose.t.x()) << ", "
        << FormatDouble(pose.t.y()) << ", " << FormatDouble(pose.t.z()) << "\n";
  }
  WriteFileAtomically(path, out.str());
}

void WriteQueryList(const std::string& path, const std::vector<Key>& keys) {
  std::ostringstream out;
  for (const Key& key : keys) out << key.first << ", " << key.second << "\n";
  WriteFileAtomically(path, out.str());
}

void ListImagesForSession(const Session& session, const std::vector<Key>* query_keys,
                          std::vector<Key>* keys, std::vector<std::string>* names) {
  keys->clear();
  names->clear();
  if (query_keys == nullptr || query_keys->empty()) {
    std::vector<Key> sorted(session.image_keys);
    std::sort(sorted.begin(), sorted.end());
    for (const Key& key : sorted) {
      keys->push_back(key);
      names->push_back(session.ImageName(key));
    }
    return;
  }
  for (const Key& query : *query_keys) {
    if (session.sensors.count(query.second)) {
      keys->push_back(query);
      names->push_back(session.ImageName(query));
    } else if (session.rigs.HasRig(query.second)) {
      for (const auto& entry : session.rigs.Sensors(query.second)) {
        const Key key(query.first, entry.first);
        keys->push_back(key);
        names->push_back(session.ImageName(key));
      }
    } else {
      MEGALOC_THROW(InvalidArgument, "session " << session.id << ": query device '" << query.second
                                                << "' is neither a sensor nor a rig");
    }
  }
}

}  // namespace lamar
}  // namespace megaloc
