// End-to-end native protocol on a small synthetic Capture dataset: rendered textured scene, a map
// session with known poses, a phone query session and a 2-camera rig (HoloLens-like) session.
// pairs -> localize (real COLMAP 3.8 binary, CPU) -> evaluate.
#include "megaloc/eval/lamar/localize.h"

#include <cmath>
#include <fstream>
#include <algorithm>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "megaloc/eval/lamar/evaluation.h"
#include "megaloc/eval/lamar/pairs.h"
#include "megaloc/io/descriptor_store.h"
#include "tests/common/synthetic/renderer.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "tests/common/testing.h"

namespace megaloc {
namespace lamar {
namespace {

using synthetic::PinholeCamera;
using synthetic::Rigid3d;

// LaMAR pose (camera -> world) of a COLMAP cam_from_world.
Pose ToLamar(const Rigid3d& cam_from_world) {
  Pose pose;
  pose.q = cam_from_world.rotation.normalized();
  pose.t = cam_from_world.translation;
  return pose.Inverse();
}

Rigid3d ToColmap(const Pose& cam_to_world) {
  const Pose inv = cam_to_world.Inverse();
  Rigid3d rigid;
  rigid.rotation = inv.q;
  rigid.translation = inv.t;
  return rigid;
}

std::string PoseText(const Pose& pose) {
  std::ostringstream out;
  out << FormatDouble(pose.q.w()) << ", " << FormatDouble(pose.q.x()) << ", "
      << FormatDouble(pose.q.y()) << ", " << FormatDouble(pose.q.z()) << ", "
      << FormatDouble(pose.t.x()) << ", " << FormatDouble(pose.t.y()) << ", "
      << FormatDouble(pose.t.z());
  return out.str();
}

std::string CameraText(const PinholeCamera& c) {
  std::ostringstream out;
  out << "PINHOLE, " << c.width << ", " << c.height << ", " << FormatDouble(c.fx) << ", "
      << FormatDouble(c.fy) << ", " << FormatDouble(c.cx) << ", " << FormatDouble(c.cy);
  return out.str();
}

void Write(const std::string& path, const std::string& text) {
  std::ofstream file(path);
  file << text;
  ASSERT_TRUE(file.good()) << path;
}

// Builds <root>/SYN/sessions/{map, query_val_phone, query_val_hololens}.
class SyntheticCapture {
 public:
  explicit SyntheticCapture(const std::string& root) : root_(root) {
    scene_ = synthetic::MakeDefaultScene(7);
    camera_ = PinholeCamera::Centered(640, 480, 520.0);
    sessions_ = JoinPaths(root_, "SYN/sessions");
  }

  std::string Root() const { return root_; }
  std::string SessionPath(const std::string& id) const { return JoinPaths(sessions_, id); }

  void Render(const Pose& cam_to_world, const std::string& path) const {
    const synthetic::RenderedView view = scene_.Render(camera_, ToColmap(cam_to_world), 1);
    CreateDirectories(path.substr(0, path.find_last_of('/')));
    ASSERT_TRUE(cv::imwrite(path, view.image, {cv::IMWRITE_JPEG_QUALITY, 95})) << path;
  }

  std::vector<Pose> Orbit(int num, double start_deg, double arc_deg, double radius,
                          double height) const {
    synthetic::SyntheticSceneOptions options;
    options.num_views = num;
    options.start_degrees = start_deg;
    options.arc_degrees = arc_deg;
    options.orbit_radius = radius;
    options.camera_height = height;
    std::vector<Pose> poses;
    for (const Rigid3d& r : synthetic::MakeOrbitPoses(options)) poses.push_back(ToLamar(r));
    return poses;
  }

  void MakeMap(int num_views) {
    const std::string dir = SessionPath("map");
    std::ostringstream sensors, traj, images;
    sensors << "# sensor_id, name, sensor_type, [sensor_params]+\n";
    traj << "# timestamp, device_id, qw, qx, qy, qz, tx, ty, tz, *covar\n";
    images << "# timestamp, sensor_id, image_path\n";
    sensors << "navvis/cam0, map camera, camera, " << CameraText(camera_) << "\n";
    const std::vector<Pose> poses = Orbit(num_views, -145.0, 110.0, 7.0, 2.5);
    for (int i = 0; i < num_views; ++i) {
      const int64_t ts = 1000000 * (i + 1);
      traj << ts << ", navvis/cam0, " << PoseText(poses[i]) << "\n";
      images << ts << ", navvis/cam0, navvis/images/" << ts << ".jpg\n";
      Render(poses[i], JoinPaths(dir, "raw_data/navvis/images/" + std::to_string(ts) + ".jpg"));
    }
    Write(JoinPaths(dir, "sensors.txt"), sensors.str());
    Write(JoinPaths(dir, "trajectories.txt"), traj.str());
    Write(JoinPaths(dir, "images.txt"), images.str());
  }

  void MakePhone() {
    const std::string dir = SessionPath("query_val_phone");
    CreateDirectories(JoinPaths(dir, "proc"));
    std::ostringstream sensors, gt, images, queries;
    sensors << "# sensor_id, name, sensor_type, [sensor_params]+\n";
    gt << "# timestamp, device_id, qw, qx, qy, qz, tx, ty, tz, *covar\n";
    images << "# timestamp, sensor_id, image_path\n";
    const std::vector<Pose> poses = Orbit(3, -138.0, 80.0, 6.3, 2.2);
    for (int i = 0; i < 3; ++i) {
      const int64_t ts = 2000000 + 100000 * i + 17;
      const std::string cam = "ios_syn/cam_phone_" + std::to_string(ts);
      sensors << cam << ", phone camera, camera, " << CameraText(camera_) << "\n";
      gt << ts << ", " << cam << ", " << PoseText(poses[i]) << "\n";
      images << ts << ", " << cam << ", ios_syn/images/" << ts << ".jpg\n";
      queries << ts << ", " << cam << "\n";
      Render(poses[i], JoinPaths(dir, "raw_data/ios_syn/images/" + std::to_string(ts) + ".jpg"));
    }
    Write(JoinPaths(dir, "sensors.txt"), sensors.str());
    Write(JoinPaths(dir, "proc/alignment_trajectories.txt"), gt.str());
    Write(JoinPaths(dir, "images.txt"), images.str());
    Write(JoinPaths(dir, "queries.txt"), queries.str());
  }

  // Rig of 2 cameras, 20 cm apart, yawed by -/+ 10 degrees; 2 frames.
  void MakeRig() {
    const std::string dir = SessionPath("query_val_hololens");
    CreateDirectories(JoinPaths(dir, "proc"));
    std::ostringstream sensors, rigs, gt, images, queries;
    sensors << "# sensor_id, name, sensor_type, [sensor_params]+\n";
    rigs << "# rig_id, sensor_id, qw, qx, qy, qz, tx, ty, tz\n";
    gt << "# timestamp, device_id, qw, qx, qy, qz, tx, ty, tz, *covar\n";
    images << "# timestamp, sensor_id, image_path\n";
    const std::vector<std::string> cams = {"hl_syn/cam_left", "hl_syn/cam_right"};
    std::vector<Pose> rig_from_cam;
    for (int c = 0; c < 2; ++c) {
      const double half = (c == 0 ? -10.0 : 10.0) * M_PI / 360.0;
      rig_from_cam.push_back(
          Pose::FromQt(std::cos(half), 0, std::sin(half), 0, c == 0 ? -0.1 : 0.1, 0, 0));
      sensors << cams[c] << ", hololens camera, camera, " << CameraText(camera_) << "\n";
      rigs << "hl_syn/rig, " << cams[c] << ", " << PoseText(rig_from_cam[c]) << "\n";
    }
    const std::vector<Pose> poses = Orbit(2, -120.0, 50.0, 6.6, 2.4);
    for (int i = 0; i < 2; ++i) {
      const int64_t ts = 3000000 + 200000 * i;
      gt << ts << ", hl_syn/rig, " << PoseText(poses[i]) << "\n";
      queries << ts << ", hl_syn/rig\n";
      for (int c = 0; c < 2; ++c) {
        const std::string rel =
            "hl_syn/images/" + cams[c].substr(7) + "/" + std::to_string(ts) + ".jpg";
        images << ts << ", " << cams[c] << ", " << rel << "\n";
        Render(poses[i] * rig_from_cam[c], JoinPaths(dir, "raw_data/" + rel));
      }
    }
    Write(JoinPaths(dir, "sensors.txt"), sensors.str());
    Write(JoinPaths(dir, "rigs.txt"), rigs.str());
    Write(JoinPaths(dir, "proc/alignment_trajectories.txt"), gt.str());
    Write(JoinPaths(dir, "images.txt"), images.str());
    Write(JoinPaths(dir, "queries.txt"), queries.str());
  }

 private:
  std::string root_;
  std::string sessions_;
  synthetic::Scene scene_;
  PinholeCamera camera_;
};

TEST(LamarLocalize, SyntheticCaptureEndToEndWithColmap) {
  const std::string root = testing::TempDir();
  SyntheticCapture capture(root);
  capture.MakeMap(10);
  capture.MakePhone();
  capture.MakeRig();

  const std::string outputs = JoinPaths(root, "outputs");
  const std::string scene_outputs = JoinPaths(outputs, "SYN");
  // extract: the real MegaLoc pipeline with the tiny test model, through the command line.
  const std::string extract =
      testing::MegalocExecutable() + " lamar_eval extract --capture_path " + root +
      " --scene SYN --sessions map,query_val_phone,query_val_hololens --outputs " + outputs +
      " --weights_path " + testing::TestDataPath("megaloc_tiny/megaloc_tiny_v2.safetensors") +
      " --resize_max 320 --num_threads 2 > /dev/null";
  ASSERT_EQ(testing::RunShell(extract), 0) << extract;
  for (const std::string id : {"map", "query_val_phone", "query_val_hololens"}) {
    const Session session = LoadSession(capture.SessionPath(id));
    std::vector<Key> keys, query_keys;
    std::vector<std::string> names;
    if (id != "map") query_keys = ReadQueryList(JoinPaths(session.path, "queries.txt"));
    ListImagesForSession(session, id != "map" ? &query_keys : nullptr, &keys, &names);
    const std::string dir = ExtractionDir(scene_outputs, id, "megaloc");
    auto file = DescriptorFile::Open(JoinPaths(dir, "features.h5"), DescriptorFile::Mode::kRead);
    std::sort(names.begin(), names.end());
    EXPECT_EQ(file->ListNames(), names) << id;
    for (const std::string& name : names) {
      EXPECT_EQ(file->Dtype(name), DescriptorDtype::kFloat16);
      EXPECT_NEAR(file->Read(name).norm(), 1.0f, 2e-3f) << name;
    }
    EXPECT_EQ(nlohmann::json::parse(ReadFileToString(JoinPaths(dir, "configuration.json"))),
              nlohmann::json::parse(R"({"name": "megaloc", "hloc": {"model": {"name": "megaloc"}, "preprocessing": {"resize_max": 320}}})"));
  }

  // Phone session through the library.
  {
    LamarPairsOptions pairs;
    pairs.capture_path = root;
    pairs.scene = "SYN";
    pairs.outputs = outputs;
    pairs.query_id = "query_val_phone";
    pairs.num_pairs_map = 5;
    pairs.num_pairs_loc = 6;
    pairs.method.resize_max = 320;
    const LamarPairsStats pair_stats = RunLamarPairs(pairs);
    // Every map camera sees the scene centre from <= 12 m, within 110 deg: no filter bites.
    EXPECT_EQ(pair_stats.mapping.num_candidates, 10 * 9);
    EXPECT_EQ(pair_stats.mapping.num_pairs, 10 * 5);
    EXPECT_EQ(pair_stats.localization.num_pairs, 3 * 6);
    ASSERT_TRUE(pair_stats.has_proxy);
    EXPECT_EQ(pair_stats.proxy.num_query_images, 3);

    LocalizeOptions localize;
    localize.capture_path = root;
    localize.scene = "SYN";
    localize.outputs = outputs;
    localize.query_id = "query_val_phone";
    localize.num_threads = 2;
    localize.num_pairs_map = 5;
    localize.num_pairs_loc = 6;
    localize.max_num_features = 1024;
    const LocalizeStats stats = RunLocalization(localize);
    EXPECT_EQ(stats.num_map_images, 10);
    EXPECT_EQ(stats.num_query_images, 3);
    EXPECT_GT(stats.num_points3d, 300);

    EvaluationOptions evaluation;
    evaluation.session_path = capture.SessionPath("query_val_phone");
    evaluation.poses_path = stats.poses_path;
    const EvaluationResult result = EvaluatePoses(evaluation);
    EXPECT_EQ(result.mode, EvaluationMode::kSingleImage);
    EXPECT_EQ(result.num_eval_keys, 3);
    // Floors: every query within (5 deg, 1 m), most within (1 deg, 10 cm) (measured: all within
    // 0.03 deg / 5 mm): the triangulated map is in the GT frame.
    EXPECT_GE(result.recall[1], 1.0) << EvaluationResultToJson(result).dump(1);
    EXPECT_GE(result.recall[0], 0.6) << EvaluationResultToJson(result).dump(1);
  }

  // Rig session through the command line (reuses the map of the work directory).
  {
    const std::string exe = testing::MegalocExecutable() + " lamar_eval ";
    const std::string common = " --capture_path " + root + " --scene SYN --outputs " + outputs +
                               " --query_id query_val_hololens --num_pairs_map 5 --num_pairs_loc 6";
    const std::string resize = " --resize_max 320";
    ASSERT_EQ(testing::RunShell(exe + "pairs" + common + resize + " --skip_mapping_pairs > /dev/null"), 0);
    ASSERT_EQ(testing::RunShell(exe + "localize" + common +
                                " --num_threads 2 --max_num_features 1024 > /dev/null"),
              0);
    LocalizeOptions localize;
    localize.outputs = outputs;
    localize.scene = "SYN";
    localize.num_pairs_map = 5;
    localize.num_pairs_loc = 6;
    const std::string poses =
        JoinPaths(JoinPaths(LocalizeWorkdir(localize), "query_val_hololens"), "poses.txt");
    // One rig -> world row per localized (ts, rig).
    const Trajectories estimates = ReadTrajectories(poses);
    for (const Key& key : estimates.KeyPairs()) EXPECT_EQ(key.second, "hl_syn/rig");
    const std::string report = JoinPaths(root, "R.json");
    ASSERT_EQ(testing::RunShell(exe + "evaluate --session_path " +
                                capture.SessionPath("query_val_hololens") + " --poses_path " +
                                poses + " --output_path " + report + " > /dev/null"),
              0);
    const nlohmann::json json = nlohmann::json::parse(ReadFileToString(report));
    EXPECT_EQ(json["mode"], "rig");
    EXPECT_EQ(json["n_eval_keys"], 4);
    EXPECT_GE(json["recall"]["5deg_1m"].get<double>(), 100.0) << json.dump(1);
    EXPECT_GE(json["recall"]["1deg_10cm"].get<double>(), 50.0) << json.dump(1);
  }
}

}  // namespace
}  // namespace lamar
}  // namespace megaloc
