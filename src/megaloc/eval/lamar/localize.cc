#include "megaloc/eval/lamar/localize.h"

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

#include "megaloc/colmap/database.h"
#include "megaloc/colmap/executable.h"
#include "megaloc/colmap/model.h"
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

// Runs `colmap <command> --key value ...`, the command line and its output in `log_path`; throws
// IoError naming the command, how it ended and the end of the log on failure.
void RunColmap(const std::string& colmap, const std::string& command,
               const std::vector<std::pair<std::string, std::string>>& args,
               const std::string& log_path) {
  std::vector<std::string> argv = {colmap, command};
  for (const auto& arg : args) {
    argv.push_back("--" + arg.first);
    argv.push_back(arg.second);
  }
  std::string line = "$";
  for (const std::string& word : argv) line += " " + word;
  WriteFileAtomically(log_path, line + "\n");
  const ProcessResult result = RunProcess(argv, log_path);
  if (!result.Succeeded()) {
    MEGALOC_THROW(IoError, "colmap " << command << " failed (" << result.Describe() << "); log " << log_path
                                     << ":\n" << TailOfFile(log_path, 12));
  }
}

// COLMAP 3.13 moved use_gpu, num_threads and max_image_size of feature extraction and matching from
// SiftExtraction.* / SiftMatching.* to FeatureExtraction.* / FeatureMatching.*: the version of the
// binary decides (asked once per binary).
const ColmapVersion& VersionOf(const std::string& colmap) {
  static std::map<std::string, ColmapVersion> cache;
  auto it = cache.find(colmap);
  if (it == cache.end()) it = cache.emplace(colmap, DetectColmapVersion(colmap)).first;
  return it->second;
}

int ColmapModelId(const std::string& model) {
  const ColmapCameraModel* found = FindColmapCameraModel(model);
  if (found == nullptr) MEGALOC_THROW(FormatError, "camera model " << model << " unknown to COLMAP");
  return found->id;
}

// An image of the run: its session, key and camera.
struct ImageEntry {
  const Session* session = nullptr;
  Key key;
  bool is_query = false;
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

Pose CamFromWorld(const ColmapImage& image) {
  return Pose::FromQt(image.qvec[0], image.qvec[1], image.qvec[2], image.qvec[3], image.tvec[0], image.tvec[1],
                      image.tvec[2]);
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
    ColmapDatabaseOptions writable;
    writable.read_only = false;
    const auto db = ColmapDatabase::Open(database_path, writable);
    std::map<int64_t, std::string> camera_sensor;  // camera id -> sensor set on it
    for (const ColmapDatabaseImage& image : db->ReadImages()) {
      auto it = entries.find(image.name);
      if (it == entries.end() || it->second.is_query != queries) continue;
      const Sensor& sensor = it->second.session->Camera(it->second.key.second);
      ColmapCamera camera;
      if (!db->ReadCamera(image.camera_id, &camera)) {
        MEGALOC_THROW(FormatError, database_path << ": image " << image.name << " has no camera row "
                                                 << image.camera_id);
      }
      if (static_cast<int64_t>(camera.width) != sensor.width ||
          static_cast<int64_t>(camera.height) != sensor.height) {
        MEGALOC_THROW(FormatError, image.name << " is " << camera.width << "x" << camera.height
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
      camera.model_id = ColmapModelId(sensor.model);
      camera.width = static_cast<uint64_t>(sensor.width);
      camera.height = static_cast<uint64_t>(sensor.height);
      camera.params = sensor.params;
      db->UpdateCamera(camera);
    }
  };
  const std::string extraction_prefix = VersionOf(colmap).ExtractionOptionPrefix();
  const std::string matching_prefix = VersionOf(colmap).MatchingOptionPrefix();
  auto extract = [&](const std::vector<std::string>& names, const std::string& list_path,
                     const std::string& log_path) {
    WriteImageList(list_path, names);
    RunColmap(colmap, "feature_extractor",
              {{"database_path", database_path},
               {"image_path", sessions_root},
               {"image_list_path", list_path},
               {"ImageReader.camera_model", "PINHOLE"},
               {extraction_prefix + ".use_gpu", "0"},
               {extraction_prefix + ".num_threads", threads},
               {extraction_prefix + ".max_image_size", std::to_string(options.max_image_size)},
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
               {matching_prefix + ".use_gpu", "0"},
               {matching_prefix + ".num_threads", threads}},
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
    const auto db = ColmapDatabase::Open(database_path);
    std::vector<ColmapCamera> cameras;
    std::vector<ColmapImage> images;
    std::set<int64_t> written_cameras;
    for (const ColmapDatabaseImage& image : db->ReadImages()) {
      auto it = entries.find(image.name);
      if (it == entries.end() || it->second.is_query) continue;
      const Sensor& sensor = map.Camera(it->second.key.second);
      if (written_cameras.insert(image.camera_id).second) {
        ColmapCamera camera;
        camera.camera_id = static_cast<uint32_t>(image.camera_id);
        camera.model_id = ColmapModelId(sensor.model);
        camera.width = static_cast<uint64_t>(sensor.width);
        camera.height = static_cast<uint64_t>(sensor.height);
        camera.params = sensor.params;
        cameras.push_back(camera);
      }
      const Pose cam_from_world = map.SensorPose(map.trajectories, it->second.key).Inverse();
      ColmapImage model_image;
      model_image.image_id = static_cast<uint32_t>(image.image_id);
      model_image.qvec = {cam_from_world.q.w(), cam_from_world.q.x(), cam_from_world.q.y(), cam_from_world.q.z()};
      model_image.tvec = {cam_from_world.t.x(), cam_from_world.t.y(), cam_from_world.t.z()};
      model_image.camera_id = static_cast<uint32_t>(image.camera_id);
      model_image.name = image.name;
      images.push_back(model_image);
    }
    if (static_cast<int>(images.size()) != stats.num_map_images) {
      MEGALOC_THROW(IoError, database_path << ": " << images.size() << " of " << stats.num_map_images
                                           << " map images were imported by COLMAP (see "
                                              "colmap_feature_extractor.log)");
    }
    WriteColmapTextModel(model_dir, cameras, images);
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
  std::map<std::string, ColmapImage> model;
  for (ColmapImage& image : ReadColmapImagesText(JoinPaths(registered_txt, "images.txt"))) {
    model[image.name] = std::move(image);
  }
  stats.num_points3d = static_cast<int>(ReadColmapPoints3DText(JoinPaths(registered_txt, "points3D.txt")).size());

  // 5. poses.txt.
  std::map<Key, const ColmapImage*> registered_queries;
  for (size_t i = 0; i < query_names.size(); ++i) {
    auto it = model.find(query_names[i]);
    if (it != model.end()) registered_queries[query_image_keys[i]] = &it->second;
  }
  stats.num_registered_images = static_cast<int>(registered_queries.size());
  Trajectories poses;
  for (const Key& key : query_keys) {
    if (query.IsRig(key.second)) {
      const ColmapImage* best = nullptr;
      const Pose* rig_from_cam = nullptr;
      for (const auto& entry : query.rigs.Sensors(key.second)) {
        auto it = registered_queries.find(Key(key.first, entry.first));
        if (it == registered_queries.end()) continue;
        if (best == nullptr || it->second->num_observations > best->num_observations) {
          best = it->second;
          rig_from_cam = &entry.second;
        }
      }
      if (best != nullptr) {
        poses.Set(key, CamFromWorld(*best).Inverse() * rig_from_cam->Inverse());
      }
    } else {
      auto it = registered_queries.find(key);
      if (it != registered_queries.end()) poses.Set(key, CamFromWorld(*it->second).Inverse());
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
