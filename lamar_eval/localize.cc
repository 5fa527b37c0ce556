#include "lamar_eval/localize.h"

#include <sqlite3.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <vector>

#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/string_utils.h"

namespace megaloc {
namespace lamar {
namespace {

#ifdef MEGALOC_COLMAP_EXECUTABLE
constexpr const char* kDefaultColmap = MEGALOC_COLMAP_EXECUTABLE;
#else
constexpr const char* kDefaultColmap = "colmap";
#endif

std::string ShellQuote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

std::string FormatG17(double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.17g", value);
  return buffer;
}

std::string LastLines(const std::string& path, int count) {
  std::ifstream file(path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(file, line)) lines.push_back(line);
  std::string out;
  for (size_t i = lines.size() > static_cast<size_t>(count) ? lines.size() - count : 0;
       i < lines.size(); ++i) {
    out += "\n  " + lines[i];
  }
  return out;
}

// Runs `colmap <command> --key value ...`, logging to `log_path`; throws IoError on failure.
void RunColmap(const std::string& colmap, const std::string& command,
               const std::vector<std::pair<std::string, std::string>>& args,
               const std::string& log_path) {
  std::string cmd = ShellQuote(colmap) + " " + command;
  for (const auto& arg : args) cmd += " --" + arg.first + " " + ShellQuote(arg.second);
  cmd += " > " + ShellQuote(log_path) + " 2>&1";
  {
    std::ofstream log(log_path);
    log << "$ " << cmd << "\n";
  }
  cmd = ShellQuote(colmap) + " " + command;
  for (const auto& arg : args) cmd += " --" + arg.first + " " + ShellQuote(arg.second);
  cmd += " >> " + ShellQuote(log_path) + " 2>&1";
  const int status = std::system(cmd.c_str());
  if (status != 0) {
    MEGALOC_THROW(IoError, "colmap " << command << " failed (exit status " << status << "); log "
                                     << log_path << ":" << LastLines(log_path, 12));
  }
}

// COLMAP 3.13 moved use_gpu, num_threads and max_image_size of feature extraction and matching from
// SiftExtraction.* / SiftMatching.* to FeatureExtraction.* / FeatureMatching.*: found by asking the
// binary's own help for the option (run-time feature check), cached per binary.
std::string ExtractionPrefix(const std::string& colmap) {
  static std::map<std::string, std::string> cache;
  auto it = cache.find(colmap);
  if (it != cache.end()) return it->second;
  const std::string dir = CreateTempDirectory("megaloc_colmap_help");
  const std::string help = JoinPaths(dir, "help.txt");
  const std::string cmd =
      ShellQuote(colmap) + " feature_extractor -h > " + ShellQuote(help) + " 2>&1";
  const int status = std::system(cmd.c_str());
  const std::string text = FileExists(help) ? ReadFileToString(help) : "";
  std::filesystem::remove_all(dir);
  (void)status;  // `-h` exits non-zero on some versions; the text decides
  const std::string prefix =
      text.find("--FeatureExtraction.use_gpu") != std::string::npos ? "FeatureExtraction." : "SiftExtraction.";
  cache[colmap] = prefix;
  return prefix;
}

std::string MatchingPrefix(const std::string& colmap) {
  return ExtractionPrefix(colmap) == "FeatureExtraction." ? "FeatureMatching." : "SiftMatching.";
}

int ColmapModelId(const std::string& model) {
  static const std::map<std::string, int> kIds = {
      {"SIMPLE_PINHOLE", 0}, {"PINHOLE", 1},        {"SIMPLE_RADIAL", 2},
      {"RADIAL", 3},         {"OPENCV", 4},         {"OPENCV_FISHEYE", 5},
      {"FULL_OPENCV", 6},    {"FOV", 7},            {"SIMPLE_RADIAL_FISHEYE", 8},
      {"RADIAL_FISHEYE", 9}, {"THIN_PRISM_FISHEYE", 10}};
  auto it = kIds.find(model);
  MEGALOC_CHECK_MSG(it != kIds.end(), "camera model " << model << " unknown to COLMAP");
  return it->second;
}

// An image of the run: its session, key and camera.
struct ImageEntry {
  const Session* session = nullptr;
  Key key;
  bool is_query = false;
};

struct DbImage {
  int64_t image_id = 0;
  int64_t camera_id = 0;
  std::string name;
};

class Database {
 public:
  explicit Database(const std::string& path) : path_(path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      const std::string message = db_ ? sqlite3_errmsg(db_) : "cannot open";
      sqlite3_close(db_);
      db_ = nullptr;
      MEGALOC_THROW(IoError, path << ": cannot open COLMAP database: " << message);
    }
  }
  ~Database() { sqlite3_close(db_); }

  std::vector<DbImage> Images() {
    std::vector<DbImage> images;
    sqlite3_stmt* stmt = Prepare("SELECT image_id, name, camera_id FROM images");
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      DbImage image;
      image.image_id = sqlite3_column_int64(stmt, 0);
      image.name = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 1));
      image.camera_id = sqlite3_column_int64(stmt, 2);
      images.push_back(image);
    }
    sqlite3_finalize(stmt);
    return images;
  }

  std::pair<int64_t, int64_t> CameraSize(int64_t camera_id) {
    sqlite3_stmt* stmt = Prepare("SELECT width, height FROM cameras WHERE camera_id = ?");
    sqlite3_bind_int64(stmt, 1, camera_id);
    std::pair<int64_t, int64_t> size(-1, -1);
    if (sqlite3_step(stmt) == SQLITE_ROW) {
      size = {sqlite3_column_int64(stmt, 0), sqlite3_column_int64(stmt, 1)};
    }
    sqlite3_finalize(stmt);
    return size;
  }

  void SetCamera(int64_t camera_id, int model_id, int width, int height,
                 const std::vector<double>& params) {
    sqlite3_stmt* stmt = Prepare(
        "UPDATE cameras SET model = ?, width = ?, height = ?, params = ?, prior_focal_length = 1 "
        "WHERE camera_id = ?");
    sqlite3_bind_int(stmt, 1, model_id);
    sqlite3_bind_int(stmt, 2, width);
    sqlite3_bind_int(stmt, 3, height);
    sqlite3_bind_blob(stmt, 4, params.data(), static_cast<int>(params.size() * sizeof(double)),
                      SQLITE_TRANSIENT);
    sqlite3_bind_int64(stmt, 5, camera_id);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
      const std::string message = sqlite3_errmsg(db_);
      sqlite3_finalize(stmt);
      MEGALOC_THROW(IoError, path_ << ": cannot update camera " << camera_id << ": " << message);
    }
    sqlite3_finalize(stmt);
  }

 private:
  sqlite3_stmt* Prepare(const char* sql) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) != SQLITE_OK) {
      MEGALOC_THROW(FormatError, path_ << ": not a COLMAP database (" << sqlite3_errmsg(db_) << ")");
    }
    return stmt;
  }

  std::string path_;
  sqlite3* db_ = nullptr;
};

// Reads "name_q name_r" lines of an official pairs.txt.
std::vector<std::pair<std::string, std::string>> ReadPairsTxt(const std::string& path) {
  if (!FileExists(path)) {
    MEGALOC_THROW(IoError, path << ": pairs file does not exist (run `megaloc lamar_eval pairs` "
                                   "first)");
  }
  std::ifstream file(path);
  std::vector<std::pair<std::string, std::string>> pairs;
  std::string line;
  int line_number = 0;
  while (std::getline(file, line)) {
    ++line_number;
    if (Trim(line).empty()) continue;
    const std::vector<std::string> fields = Split(line, ' ');
    if (fields.size() != 2 || fields[0].empty() || fields[1].empty()) {
      MEGALOC_THROW(FormatError, path << ":" << line_number << ": expected '<name_q> <name_r>'");
    }
    pairs.emplace_back(fields[0], fields[1]);
  }
  return pairs;
}

struct RegisteredImage {
  Pose cam_from_world;
  int num_points3d = 0;
};

// COLMAP text images.txt: name -> (pose, number of 2D points with a 3D point).
std::map<std::string, RegisteredImage> ReadColmapImagesTxt(const std::string& path) {
  std::ifstream file(path);
  if (!file) MEGALOC_THROW(IoError, path << ": cannot open COLMAP images.txt");
  std::map<std::string, RegisteredImage> images;
  std::string line;
  int line_number = 0;
  while (std::getline(file, line)) {
    ++line_number;
    if (line.empty() || line[0] == '#') continue;
    const std::vector<std::string> fields = SplitWhitespace(line);
    if (fields.size() < 10) {
      MEGALOC_THROW(FormatError, path << ":" << line_number << ": malformed image line");
    }
    double v[7];
    for (int i = 0; i < 7; ++i) v[i] = std::strtod(fields[1 + i].c_str(), nullptr);
    RegisteredImage image;
    image.cam_from_world = Pose::FromQt(v[0], v[1], v[2], v[3], v[4], v[5], v[6]);
    std::string points;
    std::getline(file, points);
    ++line_number;
    const std::vector<std::string> p = SplitWhitespace(points);
    for (size_t i = 2; i < p.size(); i += 3) {
      if (p[i] != "-1") ++image.num_points3d;
    }
    images[fields[9]] = image;
  }
  return images;
}

int CountPoints3d(const std::string& path) {
  std::ifstream file(path);
  int count = 0;
  std::string line;
  while (std::getline(file, line)) {
    if (!line.empty() && line[0] != '#') ++count;
  }
  return count;
}

void WriteImageList(const std::string& path, const std::vector<std::string>& names) {
  std::ostringstream out;
  for (const std::string& name : names) out << name << "\n";
  WriteFileAtomically(path, out.str());
}

void Touch(const std::string& path) { WriteFileAtomically(path, "done\n"); }

}  // namespace

bool LocalizeOptions::Check() const {
  CHECK_OPTION(!capture_path.empty());
  CHECK_OPTION(!scene.empty());
  CHECK_OPTION(!outputs.empty());
  CHECK_OPTION(!ref_id.empty());
  CHECK_OPTION(!query_id.empty());
  CHECK_OPTION(ref_id != query_id);
  CHECK_OPTION_GT(num_pairs_loc, 0);
  CHECK_OPTION_GT(num_pairs_map, 0);
  CHECK_OPTION_GT(max_image_size, 0);
  CHECK_OPTION_GT(max_num_features, 0);
  CHECK_OPTION_GT(min_num_inliers, 0);
  return method.Check();
}

std::string LocalizeWorkdir(const LocalizeOptions& options) {
  const std::string loc = PairSelectionConfig::Localization(options.method, options.num_pairs_loc).Name();
  const std::string map = PairSelectionConfig::Mapping(options.method, options.num_pairs_map).Name();
  return JoinPaths(JoinPaths(JoinPaths(JoinPaths(options.outputs, options.scene),
                                       "native_localization"),
                             options.ref_id),
                   loc + "__" + map);
}

LocalizeStats RunLocalization(const LocalizeOptions& options) {
  if (!options.Check()) MEGALOC_THROW(InvalidArgument, "invalid lamar_eval localize options");
  const auto start = std::chrono::steady_clock::now();
  const std::string colmap = options.colmap_path.empty() ? kDefaultColmap : options.colmap_path;
  const std::string sessions_root =
      JoinPaths(JoinPaths(options.capture_path, options.scene), "sessions");
  const std::string scene_outputs = JoinPaths(options.outputs, options.scene);
  LocalizeStats stats;
  stats.workdir = LocalizeWorkdir(options);
  if (options.overwrite && DirectoryExists(stats.workdir)) {
    std::filesystem::remove_all(stats.workdir);
  }
  CreateDirectories(stats.workdir);
  const std::string threads = std::to_string(options.num_threads);

  const Session map = LoadSession(JoinPaths(sessions_root, options.ref_id));
  const Session query = LoadSession(JoinPaths(sessions_root, options.query_id));
  if (!map.has_trajectories) {
    MEGALOC_THROW(IoError, JoinPaths(map.path, "trajectories.txt") << ": the map needs poses");
  }
  const std::vector<Key> query_keys = ReadQueryList(JoinPaths(query.path, "queries.txt"));
  stats.num_query_keys = static_cast<int>(query_keys.size());

  std::vector<Key> map_keys, query_image_keys;
  std::vector<std::string> map_names, query_names;
  ListImagesForSession(map, nullptr, &map_keys, &map_names);
  ListImagesForSession(query, &query_keys, &query_image_keys, &query_names);
  std::map<std::string, ImageEntry> entries;
  for (size_t i = 0; i < map_names.size(); ++i) {
    entries[map_names[i]] = ImageEntry{&map, map_keys[i], false};
  }
  for (size_t i = 0; i < query_names.size(); ++i) {
    entries[query_names[i]] = ImageEntry{&query, query_image_keys[i], true};
  }
  stats.num_map_images = static_cast<int>(map_names.size());
  stats.num_query_images = static_cast<int>(query_names.size());

  // Pairs of the `pairs` step.
  const std::string map_pairs_path = JoinPaths(
      PairSelectionDir(scene_outputs, options.ref_id, options.ref_id,
                       PairSelectionConfig::Mapping(options.method, options.num_pairs_map).Name()),
      "pairs.txt");
  const std::string loc_pairs_path = JoinPaths(
      PairSelectionDir(scene_outputs, options.query_id, options.ref_id,
                       PairSelectionConfig::Localization(options.method, options.num_pairs_loc).Name()),
      "pairs.txt");
  const auto map_pairs = ReadPairsTxt(map_pairs_path);
  const auto loc_pairs = ReadPairsTxt(loc_pairs_path);
  std::vector<std::pair<std::string, std::string>> pairs(map_pairs);
  pairs.insert(pairs.end(), loc_pairs.begin(), loc_pairs.end());
  for (const auto& pair : pairs) {
    for (const std::string* name : {&pair.first, &pair.second}) {
      if (!entries.count(*name)) {
        MEGALOC_THROW(FormatError, "pair image " << *name << " is neither a map image nor a query "
                                                    "image of this run (pairs from another "
                                                    "session?)");
      }
    }
  }

  const std::string database_path = JoinPaths(stats.workdir, "database.db");
  const std::string map_features_done = JoinPaths(stats.workdir, "map.features.done");
  const std::string map_matches_done = JoinPaths(stats.workdir, "map.matches.done");
  const std::string triangulation_done = JoinPaths(stats.workdir, "map.triangulation.done");
  const std::string query_dir = JoinPaths(stats.workdir, options.query_id);
  CreateDirectories(query_dir);
  const std::string query_features_done = JoinPaths(query_dir, "features.done");
  const std::string query_matches_done = JoinPaths(query_dir, "matches.done");

  // Sets the database cameras of this run's images to the sensors.txt intrinsics.
  auto set_cameras = [&](bool queries) {
    Database db(database_path);
    std::map<int64_t, std::string> camera_sensor;  // camera id -> sensor set on it
    for (const DbImage& image : db.Images()) {
      auto it = entries.find(image.name);
      if (it == entries.end() || it->second.is_query != queries) continue;
      const Sensor& sensor = it->second.session->Camera(it->second.key.second);
      const auto size = db.CameraSize(image.camera_id);
      if (size.first != sensor.width || size.second != sensor.height) {
        MEGALOC_THROW(FormatError, image.name << " is " << size.first << "x" << size.second
                                              << " pixels but sensors.txt of "
                                              << it->second.session->id << " says "
                                              << sensor.width << "x" << sensor.height);
      }
      const std::string sensor_key = it->second.session->id + "|" + sensor.id;
      auto previous = camera_sensor.find(image.camera_id);
      if (previous != camera_sensor.end() && previous->second != sensor_key) {
        MEGALOC_THROW(FormatError, database_path << ": COLMAP camera " << image.camera_id
                                                 << " is shared by images of different sensors");
      }
      camera_sensor[image.camera_id] = sensor_key;
      db.SetCamera(image.camera_id, ColmapModelId(sensor.model), sensor.width, sensor.height,
                   sensor.params);
    }
  };
  auto extract = [&](const std::vector<std::string>& names, const std::string& list_path,
                     const std::string& log_path) {
    WriteImageList(list_path, names);
    RunColmap(colmap, "feature_extractor",
              {{"database_path", database_path},
               {"image_path", sessions_root},
               {"image_list_path", list_path},
               {"ImageReader.camera_model", "PINHOLE"},
               {ExtractionPrefix(colmap) + "use_gpu", "0"},
               {ExtractionPrefix(colmap) + "num_threads", threads},
               {ExtractionPrefix(colmap) + "max_image_size", std::to_string(options.max_image_size)},
               {"SiftExtraction.max_num_features", std::to_string(options.max_num_features)}},
              log_path);
  };
  auto match = [&](const std::vector<std::pair<std::string, std::string>>& pair_list,
                   const std::string& pairs_path, const std::string& log_path) {
    std::ostringstream text;
    for (const auto& pair : pair_list) text << pair.first << " " << pair.second << "\n";
    WriteFileAtomically(pairs_path, text.str());
    RunColmap(colmap, "matches_importer",
              {{"database_path", database_path},
               {"match_list_path", pairs_path},
               {"match_type", "pairs"},
               {MatchingPrefix(colmap) + "use_gpu", "0"},
               {MatchingPrefix(colmap) + "num_threads", threads}},
              log_path);
  };

  // 1. Map: features with known intrinsics, matches, triangulation with the known poses. Done
  //    once per work directory and shared by every query session.
  if (!FileExists(map_features_done)) {
    // A new database invalidates every stage of every session.
    for (const auto& entry : std::filesystem::recursive_directory_iterator(stats.workdir)) {
      if (entry.path().extension() == ".done") std::filesystem::remove(entry.path());
    }
    std::filesystem::remove(database_path);
    extract(map_names, JoinPaths(stats.workdir, "map_images.txt"),
            JoinPaths(stats.workdir, "colmap_feature_extractor.log"));
    set_cameras(false);
    Touch(map_features_done);
  }
  if (!FileExists(map_matches_done)) {
    match(map_pairs, JoinPaths(stats.workdir, "map_pairs_colmap.txt"),
          JoinPaths(stats.workdir, "colmap_matches_importer.log"));
    std::filesystem::remove(triangulation_done);
    Touch(map_matches_done);
  }
  const std::string triangulated = JoinPaths(stats.workdir, "triangulated");
  if (!FileExists(triangulation_done)) {
    const std::string model_dir = JoinPaths(stats.workdir, "map_model");
    CreateDirectories(model_dir);
    Database db(database_path);
    std::ostringstream cameras, images;
    cameras << "# Camera list with one line of data per camera:\n"
               "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n";
    images << "# Image list with two lines of data per image:\n"
              "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n"
              "#   POINTS2D[] as (X, Y, POINT3D_ID)\n";
    std::set<int64_t> written_cameras;
    int num_map = 0;
    for (const DbImage& image : db.Images()) {
      auto it = entries.find(image.name);
      if (it == entries.end() || it->second.is_query) continue;
      const Sensor& sensor = map.Camera(it->second.key.second);
      if (written_cameras.insert(image.camera_id).second) {
        cameras << image.camera_id << " " << sensor.model << " " << sensor.width << " "
                << sensor.height;
        for (double p : sensor.params) cameras << " " << FormatG17(p);
        cameras << "\n";
      }
      const Pose cam_from_world = map.SensorPose(map.trajectories, it->second.key).Inverse();
      images << image.image_id << " " << FormatG17(cam_from_world.q.w()) << " "
             << FormatG17(cam_from_world.q.x()) << " " << FormatG17(cam_from_world.q.y()) << " "
             << FormatG17(cam_from_world.q.z()) << " " << FormatG17(cam_from_world.t.x()) << " "
             << FormatG17(cam_from_world.t.y()) << " " << FormatG17(cam_from_world.t.z()) << " "
             << image.camera_id << " " << image.name << "\n\n";
      ++num_map;
    }
    if (num_map != stats.num_map_images) {
      MEGALOC_THROW(IoError, database_path << ": " << num_map << " of " << stats.num_map_images
                                           << " map images were imported by COLMAP (see "
                                              "colmap_feature_extractor.log)");
    }
    WriteFileAtomically(JoinPaths(model_dir, "cameras.txt"), cameras.str());
    WriteFileAtomically(JoinPaths(model_dir, "images.txt"), images.str());
    WriteFileAtomically(JoinPaths(model_dir, "points3D.txt"), "");
    if (DirectoryExists(triangulated)) std::filesystem::remove_all(triangulated);
    CreateDirectories(triangulated);
    RunColmap(colmap, "point_triangulator",
              {{"database_path", database_path},
               {"image_path", sessions_root},
               {"input_path", model_dir},
               {"output_path", triangulated},
               {"Mapper.ba_refine_focal_length", "0"},
               {"Mapper.ba_refine_principal_point", "0"},
               {"Mapper.ba_refine_extra_params", "0"}},
              JoinPaths(stats.workdir, "colmap_point_triangulator.log"));
    Touch(triangulation_done);
  }

  // 2. Query session: features (COLMAP skips images already in the database), intrinsics, matches.
  if (!FileExists(query_features_done)) {
    extract(query_names, JoinPaths(query_dir, "query_images.txt"),
            JoinPaths(query_dir, "colmap_feature_extractor.log"));
    set_cameras(true);
    std::filesystem::remove(query_matches_done);
    Touch(query_features_done);
  }
  if (!FileExists(query_matches_done)) {
    match(loc_pairs, JoinPaths(query_dir, "pairs_colmap.txt"),
          JoinPaths(query_dir, "colmap_matches_importer.log"));
    Touch(query_matches_done);
  }

  // 4. Query registration (always redone: cheap, and depends on min_num_inliers).
  const std::string registered = JoinPaths(query_dir, "registered");
  const std::string registered_txt = JoinPaths(query_dir, "registered_txt");
  for (const std::string& dir : {registered, registered_txt}) {
    if (DirectoryExists(dir)) std::filesystem::remove_all(dir);
    CreateDirectories(dir);
  }
  RunColmap(colmap, "image_registrator",
            {{"database_path", database_path},
             {"input_path", triangulated},
             {"output_path", registered},
             {"Mapper.ba_refine_focal_length", "0"},
             {"Mapper.ba_refine_principal_point", "0"},
             {"Mapper.ba_refine_extra_params", "0"},
             {"Mapper.abs_pose_min_num_inliers", std::to_string(options.min_num_inliers)}},
            JoinPaths(query_dir, "colmap_image_registrator.log"));
  RunColmap(colmap, "model_converter",
            {{"input_path", registered}, {"output_path", registered_txt}, {"output_type", "TXT"}},
            JoinPaths(query_dir, "colmap_model_converter.log"));
  const std::map<std::string, RegisteredImage> model =
      ReadColmapImagesTxt(JoinPaths(registered_txt, "images.txt"));
  stats.num_points3d = CountPoints3d(JoinPaths(registered_txt, "points3D.txt"));

  // 5. poses.txt.
  std::map<Key, const RegisteredImage*> registered_queries;
  for (size_t i = 0; i < query_names.size(); ++i) {
    auto it = model.find(query_names[i]);
    if (it != model.end()) registered_queries[query_image_keys[i]] = &it->second;
  }
  stats.num_registered_images = static_cast<int>(registered_queries.size());
  Trajectories poses;
  for (const Key& key : query_keys) {
    if (query.IsRig(key.second)) {
      const RegisteredImage* best = nullptr;
      const Pose* rig_from_cam = nullptr;
      for (const auto& entry : query.rigs.Sensors(key.second)) {
        auto it = registered_queries.find(Key(key.first, entry.first));
        if (it == registered_queries.end()) continue;
        if (best == nullptr || it->second->num_points3d > best->num_points3d) {
          best = it->second;
          rig_from_cam = &entry.second;
        }
      }
      if (best != nullptr) {
        poses.Set(key, best->cam_from_world.Inverse() * rig_from_cam->Inverse());
      }
    } else {
      auto it = registered_queries.find(key);
      if (it != registered_queries.end()) poses.Set(key, it->second->cam_from_world.Inverse());
    }
  }
  stats.num_localized_keys = static_cast<int>(poses.Size());
  stats.poses_path = JoinPaths(query_dir, "poses.txt");
  WriteTrajectories(stats.poses_path, poses);
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

}  // namespace lamar
}  // namespace megaloc
