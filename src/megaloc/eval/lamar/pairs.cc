#include "megaloc/eval/lamar/pairs.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <sstream>

#include "megaloc/io/descriptor_store.h"
#include "megaloc/retrieval/pairs_from_retrieval.h"
#include "megaloc/retrieval/search.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/string_utils.h"

namespace megaloc {
namespace lamar {
namespace {

constexpr float kInfF = std::numeric_limits<float>::infinity();

std::string FormatFixed0(double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.0f", value);
  return buffer;
}

// (fx, fy, cx, cy) of a camera (Camera.projection_params).
std::array<double, 4> ProjectionParams(const Sensor& camera) {
  static const std::vector<std::string> kSingleFocal = {
      "SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL", "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE"};
  if (std::find(kSingleFocal.begin(), kSingleFocal.end(), camera.model) != kSingleFocal.end()) {
    return {camera.params[0], camera.params[0], camera.params[1], camera.params[2]};
  }
  return {camera.params[0], camera.params[1], camera.params[2], camera.params[3]};
}

// scantools plane_check for one plane (p0, p1, p2) and 5 points: all strictly on the positive side.
bool AllOnPositiveSide(const Eigen::Vector3f& p0, const Eigen::Vector3f& p1,
                       const Eigen::Vector3f& p2, const Pyramid& points) {
  constexpr float kEps = 1e-6f;
  Eigen::Vector3f normal = (p1 - p0).cross(p2 - p0);
  normal /= normal.norm();
  for (const Eigen::Vector3f& point : points) {
    const Eigen::Vector3f d = point - p0;
    const float dot = normal.x() * d.x() + normal.y() * d.y() + normal.z() * d.z();
    if (!(dot > kEps)) return false;
  }
  return true;
}

bool NonIntersectionPartial(const Pyramid& a, const Pyramid& b) {
  return AllOnPositiveSide(a[0], a[1], a[2], b) || AllOnPositiveSide(a[0], a[2], a[3], b) ||
         AllOnPositiveSide(a[0], a[3], a[4], b) || AllOnPositiveSide(a[0], a[4], a[1], b) ||
         AllOnPositiveSide(a[1], a[4], a[2], b);
}

struct PoseF {
  Eigen::Matrix3f R;
  Eigen::Vector3f t;
  float t_sq = 0.f;
};

PoseF ToPoseF(const Pose& pose) {
  PoseF out;
  out.R = pose.R().cast<float>();
  out.t = pose.t.cast<float>();
  out.t_sq = out.t.x() * out.t.x() + out.t.y() * out.t.y() + out.t.z() * out.t.z();
  return out;
}

std::pair<float, float> DistanceF(const PoseF& a, const PoseF& b) {
  float dt = a.t.x() * b.t.x() + a.t.y() * b.t.y() + a.t.z() * b.t.z();
  dt *= -2.0f;
  dt += a.t_sq;
  dt += b.t_sq;
  dt = std::max(dt, 0.0f);
  dt = std::sqrt(dt);
  float trace = 0.f;
  for (int j = 0; j < 3; ++j) {
    for (int i = 0; i < 3; ++i) trace += a.R(j, i) * b.R(j, i);
  }
  float c = (trace - 1.0f) / 2.0f;
  c = std::min(std::max(c, -1.0f), 1.0f);
  const float dr = std::abs(std::acos(c)) * static_cast<float>(180.0 / M_PI);
  return {dr, dt};
}

}  // namespace

// ------------------------------------------------------------------------------------------------

nlohmann::ordered_json RetrievalMethod::ToJson() const {
  nlohmann::ordered_json json;
  json["name"] = name;
  json["hloc"]["model"]["name"] = "megaloc";
  json["hloc"]["preprocessing"]["resize_max"] = resize_max;
  return json;
}

bool RetrievalMethod::Check() const {
  CHECK_OPTION(!name.empty());
  CHECK_OPTION(name.find('/') == std::string::npos);
  CHECK_OPTION_GT(resize_max, 0);
  return true;
}

PairSelectionConfig PairSelectionConfig::Localization(const RetrievalMethod& method,
                                                      int num_pairs) {
  PairSelectionConfig config;
  config.method = method;
  config.num_pairs = num_pairs;
  return config;
}

PairSelectionConfig PairSelectionConfig::Mapping(const RetrievalMethod& method, int num_pairs) {
  PairSelectionConfig config;
  config.method = method;
  config.num_pairs = num_pairs;
  config.filter_frustum = true;
  config.filter_pose = true;
  config.pose_num_pairs_filter = 250;
  return config;
}

std::string PairSelectionConfig::Name() const {
  std::string name = method.name + "-" + std::to_string(num_pairs);
  if (filter_frustum) name += "_frustum";
  if (filter_pose) {
    name += "_pose-" + FormatFixed0(pose_max_rotation) + "-" + FormatFixed0(pose_max_translation);
    if (pose_num_pairs_filter >= 0) name += "-" + std::to_string(pose_num_pairs_filter);
  }
  return name;
}

nlohmann::ordered_json PairSelectionConfig::ToJson() const {
  nlohmann::ordered_json json;
  json["method"] = method.ToJson();
  json["filter_frustum"]["do"] = filter_frustum;
  json["filter_frustum"]["max_depth"] = frustum_max_depth;
  json["filter_radio"]["do"] = false;
  json["filter_radio"]["window_us"] = 10000000;
  json["filter_radio"]["frac_pairs_filter"] = nullptr;
  json["filter_pose"]["do"] = filter_pose;
  json["filter_pose"]["max_rotation"] = pose_max_rotation;
  json["filter_pose"]["max_translation"] = pose_max_translation;
  if (pose_num_pairs_filter >= 0) {
    json["filter_pose"]["num_pairs_filter"] = pose_num_pairs_filter;
  } else {
    json["filter_pose"]["num_pairs_filter"] = nullptr;
  }
  json["num_pairs"] = num_pairs;
  json["name"] = Name();
  return json;
}

bool PairSelectionConfig::Check() const {
  if (!method.Check()) return false;
  CHECK_OPTION_GT(num_pairs, 0);
  CHECK_OPTION_GT(frustum_max_depth, 0.0);
  CHECK_OPTION_GE(pose_num_pairs_filter, -1);
  return true;
}

std::string ExtractionDir(const std::string& scene_outputs, const std::string& session_id,
                          const std::string& method_name) {
  return JoinPaths(JoinPaths(JoinPaths(scene_outputs, "extraction"), session_id), method_name);
}

std::string PairSelectionDir(const std::string& scene_outputs, const std::string& query_id,
                             const std::string& ref_id, const std::string& config_name) {
  return JoinPaths(
      JoinPaths(JoinPaths(JoinPaths(scene_outputs, "pair_selection"), query_id), ref_id),
      config_name);
}

Pyramid PyramidFromCamera(const Pose& cam_to_world, const Sensor& camera, double max_depth) {
  const auto p = ProjectionParams(camera);
  const double fx = p[0], fy = p[1], cx = p[2], cy = p[3];
  const double w = camera.width, h = camera.height;
  const Eigen::Vector3d vertices[5] = {
      Eigen::Vector3d(0, 0, 0),
      Eigen::Vector3d((0 - cx) / fx, (0 - cy) / fy, 1.0) * max_depth,
      Eigen::Vector3d((0 - cx) / fx, (h - cy) / fy, 1.0) * max_depth,
      Eigen::Vector3d((w - cx) / fx, (h - cy) / fy, 1.0) * max_depth,
      Eigen::Vector3d((w - cx) / fx, (0 - cy) / fy, 1.0) * max_depth};
  const Eigen::Matrix3d R = cam_to_world.R();
  Pyramid pyramid;
  for (int i = 0; i < 5; ++i) {
    pyramid[i] = (R * vertices[i] + cam_to_world.t).cast<float>();
  }
  return pyramid;
}

bool PyramidsIntersect(const Pyramid& a, const Pyramid& b) {
  return !(NonIntersectionPartial(a, b) || NonIntersectionPartial(b, a));
}

std::pair<float, float> PairwisePoseDistance(const Pose& a, const Pose& b) {
  return DistanceF(ToPoseF(a), ToPoseF(b));
}

// ------------------------------------------------------------------------------------------------

PairSelectionResult SelectPairs(const Session& session_q, const Session& session_r,
                                const std::vector<Key>* query_keys, const Trajectories* poses_q,
                                const PairSelectionConfig& config,
                                const std::string& features_q, const std::string& features_r,
                                PairSelectionStats* stats) {
  MEGALOC_CHECK_MSG(config.Check(), "invalid pair selection configuration");
  const auto start = std::chrono::steady_clock::now();
  std::vector<Key> keys_q, keys_r;
  std::vector<std::string> names_q, names_r;
  ListImagesForSession(session_q, query_keys, &keys_q, &names_q);
  ListImagesForSession(session_r, nullptr, &keys_r, &names_r);
  if (keys_q.empty()) MEGALOC_THROW(InvalidArgument, "session " << session_q.id << ": no query image");
  if (keys_r.empty()) MEGALOC_THROW(InvalidArgument, "session " << session_r.id << ": no image");
  const int64_t nq = static_cast<int64_t>(keys_q.size());
  const int64_t nr = static_cast<int64_t>(keys_r.size());

  const bool same_session = session_q.path == session_r.path || session_q.id == session_r.id;
  const bool any_filter = config.filter_frustum || config.filter_pose;
  if (poses_q == nullptr && same_session) poses_q = &session_q.trajectories;
  if (any_filter) {
    if (poses_q == nullptr || poses_q->Empty()) {
      MEGALOC_THROW(InvalidArgument, "pair filters need query poses (session " << session_q.id << ")");
    }
    if (!session_r.has_trajectories) {
      MEGALOC_THROW(InvalidArgument, "pair filters need reference poses: " << session_r.path
                                                                         << "/trajectories.txt");
    }
  }

  // Self mask (name equality) through ids.
  std::map<std::string, int64_t> name_ids;
  std::vector<int64_t> ids_q(nq), ids_r(nr);
  for (int64_t i = 0; i < nr; ++i) ids_r[i] = name_ids.emplace(names_r[i], i).first->second;
  for (int64_t i = 0; i < nq; ++i) {
    auto it = name_ids.find(names_q[i]);
    ids_q[i] = it == name_ids.end() ? -1 - i : it->second;
  }

  auto file_q = DescriptorFile::Open(features_q, DescriptorFile::Mode::kRead);
  std::unique_ptr<DescriptorFile> file_r_owned;
  const DescriptorFile* file_r = file_q.get();
  if (features_r != features_q) {
    file_r_owned = DescriptorFile::Open(features_r, DescriptorFile::Mode::kRead);
    file_r = file_r_owned.get();
  }
  for (const std::string& name : names_q) {
    if (!file_q->Has(name)) {
      MEGALOC_THROW(FormatError, features_q << ": no descriptor for query image " << name
                                            << " (run `megaloc lamar_eval extract` first)");
    }
  }
  for (const std::string& name : names_r) {
    if (!file_r->Has(name)) {
      MEGALOC_THROW(FormatError, features_r << ": no descriptor for reference image " << name
                                            << " (run `megaloc lamar_eval extract` first)");
    }
  }

  PairSelectionResult result;
  int64_t num_candidates = 0;
  auto add_row = [&](int64_t i, const std::vector<std::pair<float, int64_t>>& ranked) {
    std::vector<Key> refs;
    for (const auto& entry : ranked) {
      refs.push_back(keys_r[entry.second]);
      result.pairs.emplace_back(names_q[i], names_r[entry.second]);
      result.scores.push_back(entry.first);
    }
    if (!refs.empty()) result.retrieval.emplace_back(keys_q[i], std::move(refs));
  };

  if (!any_filter) {
    // Exact blocked search (sgemm) with the self mask only.
    HdfDescriptorSource source_q({file_q.get()}, names_q, std::vector<int>(nq, 0));
    HdfDescriptorSource source_r({file_r}, names_r, std::vector<int>(nr, 0));
    SearchOptions options;
    options.num_neighbors = config.num_pairs;
    options.min_score = -std::numeric_limits<float>::infinity();
    const SearchResult search = Search(source_q, source_r, options, &ids_q, &ids_r);
    for (int64_t i = 0; i < nq; ++i) {
      std::vector<std::pair<float, int64_t>> ranked;
      for (int64_t j = 0; j < search.k; ++j) {
        const int64_t label = search.Label(i, j);
        if (label < 0) continue;
        ranked.emplace_back(search.Score(i, j), label);
      }
      num_candidates += nr - (ids_q[i] >= 0 ? 1 : 0);
      add_row(i, ranked);
    }
  } else {
    // Poses and pyramids.
    std::vector<Pose> pose_q(nq), pose_r(nr);
    for (int64_t i = 0; i < nq; ++i) pose_q[i] = session_q.SensorPose(*poses_q, keys_q[i]);
    for (int64_t j = 0; j < nr; ++j) pose_r[j] = session_r.SensorPose(session_r.trajectories, keys_r[j]);
    std::vector<PoseF> posef_q(nq), posef_r(nr);
    for (int64_t i = 0; i < nq; ++i) posef_q[i] = ToPoseF(pose_q[i]);
    for (int64_t j = 0; j < nr; ++j) posef_r[j] = ToPoseF(pose_r[j]);
    std::vector<Pyramid> pyr_q, pyr_r;
    if (config.filter_frustum) {
      for (int64_t i = 0; i < nq; ++i) {
        pyr_q.push_back(PyramidFromCamera(pose_q[i], session_q.Camera(keys_q[i].second),
                                          config.frustum_max_depth));
      }
      for (int64_t j = 0; j < nr; ++j) {
        pyr_r.push_back(PyramidFromCamera(pose_r[j], session_r.Camera(keys_r[j].second),
                                          config.frustum_max_depth));
      }
    }
    DescriptorBlock desc_q, desc_r;
    file_q->ReadBlock(names_q, 0, nq, &desc_q);
    file_r->ReadBlock(names_r, 0, nr, &desc_r);
    MEGALOC_CHECK_MSG(desc_q.cols() == desc_r.cols(),
                      "descriptor dimensions differ: " << features_q << " (" << desc_q.cols()
                                                       << ") vs " << features_r << " ("
                                                       << desc_r.cols() << ")");

    // Rows are independent: filter and rank them in parallel, then append them in query order
    // (the output does not depend on the number of threads).
    std::vector<std::vector<std::pair<float, int64_t>>> rows(nq);
    int64_t total_candidates = 0;
#pragma omp parallel reduction(+ : total_candidates)
    {
      std::vector<char> discard(nr);
      std::vector<float> dt_row(nr);
      std::vector<float> sorted;
#pragma omp for schedule(dynamic, 16)
      for (int64_t i = 0; i < nq; ++i) {
        for (int64_t j = 0; j < nr; ++j) discard[j] = ids_q[i] == ids_r[j];
        if (config.filter_pose) {
          for (int64_t j = 0; j < nr; ++j) {
            const auto dr_dt = DistanceF(posef_q[i], posef_r[j]);
            if (dr_dt.first > config.pose_max_rotation ||
                dr_dt.second > config.pose_max_translation) {
              discard[j] = 1;
            }
            dt_row[j] = dr_dt.second;
          }
        }
        if (config.filter_frustum) {
          for (int64_t j = 0; j < nr; ++j) {
            if (!discard[j] && !PyramidsIntersect(pyr_q[i], pyr_r[j])) discard[j] = 1;
          }
        }
        if (config.filter_pose && config.pose_num_pairs_filter >= 0) {
          for (int64_t j = 0; j < nr; ++j) {
            if (discard[j]) dt_row[j] = kInfF;
          }
          const int64_t kth = config.pose_num_pairs_filter + 1;
          float threshold = kInfF;
          if (kth <= nr) {
            sorted.assign(dt_row.begin(), dt_row.end());
            std::nth_element(sorted.begin(), sorted.begin() + (kth - 1), sorted.end());
            threshold = sorted[kth - 1];
          }
          for (int64_t j = 0; j < nr; ++j) discard[j] = dt_row[j] >= threshold;
        }
        std::vector<std::pair<float, int64_t>> ranked;
        for (int64_t j = 0; j < nr; ++j) {
          if (discard[j]) continue;
          ranked.emplace_back(desc_q.row(i).dot(desc_r.row(j)), j);
        }
        total_candidates += static_cast<int64_t>(ranked.size());
        const size_t k = std::min<size_t>(config.num_pairs, ranked.size());
        std::partial_sort(
            ranked.begin(), ranked.begin() + k, ranked.end(),
            [](const std::pair<float, int64_t>& a, const std::pair<float, int64_t>& b) {
              return a.first > b.first || (a.first == b.first && a.second < b.second);
            });
        ranked.resize(k);
        rows[i] = std::move(ranked);
      }
    }
    num_candidates += total_candidates;
    for (int64_t i = 0; i < nq; ++i) add_row(i, rows[i]);
  }

  if (stats != nullptr) {
    stats->num_query_images = static_cast<int>(nq);
    stats->num_ref_images = static_cast<int>(nr);
    stats->num_candidates = num_candidates;
    stats->num_pairs = static_cast<int>(result.pairs.size());
    stats->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return result;
}

void WritePairSelection(const std::string& dir, const PairSelectionConfig& config,
                        const PairSelectionResult& result) {
  if (result.pairs.empty()) {
    MEGALOC_THROW(InvalidArgument, dir << ": no pair found (the official pipeline raises too)");
  }
  CreateDirectories(dir);
  std::ostringstream retrieval;
  for (const auto& entry : result.retrieval) {
    for (const Key& ref : entry.second) {
      retrieval << entry.first.first << "," << entry.first.second << "," << ref.first << ","
                << ref.second << "\n";
    }
  }
  std::ostringstream pairs;
  for (size_t i = 0; i < result.pairs.size(); ++i) {
    if (i > 0) pairs << "\n";
    pairs << result.pairs[i].first << " " << result.pairs[i].second;
  }
  WriteFileAtomically(JoinPaths(dir, "retrieval.txt"), retrieval.str());
  WriteFileAtomically(JoinPaths(dir, "pairs.txt"), pairs.str());
  // Written last: the official pipeline treats a matching configuration.json as "done".
  WriteFileAtomically(JoinPaths(dir, "configuration.json"), config.ToJson().dump(4));
}

std::vector<std::pair<Key, std::vector<Key>>> ReadRetrieval(const std::string& path) {
  std::ifstream file(path);
  if (!file) MEGALOC_THROW(IoError, path << ": cannot open file");
  std::vector<std::pair<Key, std::vector<Key>>> retrieval;
  std::map<Key, size_t> index;
  std::string line;
  int line_number = 0;
  while (std::getline(file, line)) {
    ++line_number;
    if (line.empty()) continue;
    const std::vector<std::string> fields = Split(line, ',');
    if (fields.size() != 4) {
      MEGALOC_THROW(FormatError, path << ":" << line_number
                                      << ": expected ts_q,cam_q,ts_r,cam_r (4 fields)");
    }
    Key keys[2];
    for (int k = 0; k < 2; ++k) {
      char* end = nullptr;
      const long long ts = std::strtoll(fields[2 * k].c_str(), &end, 10);
      if (fields[2 * k].empty() || *end != '\0') {
        MEGALOC_THROW(FormatError, path << ":" << line_number << ": invalid timestamp '"
                                        << fields[2 * k] << "'");
      }
      keys[k] = Key(ts, fields[2 * k + 1]);
    }
    auto it = index.find(keys[0]);
    if (it == index.end()) {
      index[keys[0]] = retrieval.size();
      retrieval.emplace_back(keys[0], std::vector<Key>{keys[1]});
    } else {
      retrieval[it->second].second.push_back(keys[1]);
    }
  }
  return retrieval;
}

RetrievalProxyResult RetrievalProxy(const Session& session_q, const Trajectories& gt_q,
                                    const Session& session_r,
                                    const std::vector<std::pair<Key, std::vector<Key>>>& retrieval,
                                    int top_k, double max_rotation_deg, double max_translation_m) {
  RetrievalProxyResult result;
  result.top_k = top_k;
  result.max_rotation_deg = max_rotation_deg;
  result.max_translation_m = max_translation_m;
  for (const auto& entry : retrieval) {
    Pose pose_q;
    try {
      pose_q = session_q.SensorPose(gt_q, entry.first);
    } catch (const InvalidArgument&) {
      continue;  // no GT for this query image
    }
    ++result.num_query_images;
    const int n = std::min<int>(top_k, static_cast<int>(entry.second.size()));
    for (int r = 0; r < n; ++r) {
      const Pose pose_r = session_r.SensorPose(session_r.trajectories, entry.second[r]);
      const auto dr_dt = (pose_r.Inverse() * pose_q).Magnitude();
      if (dr_dt.first < max_rotation_deg && dr_dt.second < max_translation_m) {
        ++result.num_hits;
        break;
      }
    }
  }
  return result;
}

}  // namespace lamar
}  // namespace megaloc

namespace megaloc {
namespace lamar {

bool LamarPairsOptions::Check() const {
  CHECK_OPTION(!capture_path.empty());
  CHECK_OPTION(!scene.empty());
  CHECK_OPTION(!outputs.empty());
  CHECK_OPTION(!ref_id.empty());
  CHECK_OPTION(mapping_pairs || !query_id.empty());
  CHECK_OPTION_GT(num_pairs_loc, 0);
  CHECK_OPTION_GT(num_pairs_map, 0);
  CHECK_OPTION_GT(proxy_top_k, 0);
  return method.Check();
}

LamarPairsStats RunLamarPairs(const LamarPairsOptions& options) {
  if (!options.Check()) MEGALOC_THROW(InvalidArgument, "invalid lamar_eval pairs options");
  const std::string sessions_root =
      JoinPaths(JoinPaths(options.capture_path, options.scene), "sessions");
  const std::string scene_outputs = JoinPaths(options.outputs, options.scene);
  LamarPairsStats stats;
  SessionLoadOptions load_options;
  load_options.check_images_exist = false;
  const Session session_r = LoadSession(JoinPaths(sessions_root, options.ref_id), load_options);
  const std::string features_r =
      JoinPaths(ExtractionDir(scene_outputs, options.ref_id, options.method.name), "features.h5");

  if (options.mapping_pairs) {
    const PairSelectionConfig config =
        PairSelectionConfig::Mapping(options.method, options.num_pairs_map);
    const PairSelectionResult result =
        SelectPairs(session_r, session_r, nullptr, nullptr, config, features_r, features_r,
                    &stats.mapping);
    stats.mapping_dir =
        PairSelectionDir(scene_outputs, options.ref_id, options.ref_id, config.Name());
    WritePairSelection(stats.mapping_dir, config, result);
  }
  if (!options.query_id.empty()) {
    const Session session_q = LoadSession(JoinPaths(sessions_root, options.query_id), load_options);
    const std::vector<Key> query_keys = ReadQueryList(JoinPaths(session_q.path, "queries.txt"));
    const std::string features_q = JoinPaths(
        ExtractionDir(scene_outputs, options.query_id, options.method.name), "features.h5");
    const PairSelectionConfig config =
        PairSelectionConfig::Localization(options.method, options.num_pairs_loc);
    const PairSelectionResult result = SelectPairs(session_q, session_r, &query_keys, nullptr,
                                                   config, features_q, features_r,
                                                   &stats.localization);
    stats.localization_dir =
        PairSelectionDir(scene_outputs, options.query_id, options.ref_id, config.Name());
    WritePairSelection(stats.localization_dir, config, result);
    if (session_q.has_alignment_trajectories && session_r.has_trajectories) {
      stats.has_proxy = true;
      stats.proxy = RetrievalProxy(session_q, session_q.alignment_trajectories, session_r,
                                   result.retrieval, options.proxy_top_k,
                                   options.proxy_max_rotation_deg, options.proxy_max_translation_m);
    }
  }
  return stats;
}

}  // namespace lamar
}  // namespace megaloc
