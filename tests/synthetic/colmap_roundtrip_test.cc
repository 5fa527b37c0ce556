// The synthetic scene is only useful if COLMAP reconstructs it: run the real COLMAP binary
// (CPU SIFT, exhaustive matching, incremental mapper) and compare with the ground truth.

#include <fstream>
#include <map>
#include <sstream>

#include <Eigen/Geometry>
#include <gtest/gtest.h>

#include "tests/common/synthetic/renderer.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/string_utils.h"
#include "tests/common/testing.h"

namespace megaloc {
namespace synthetic {
namespace {

std::string Colmap() { return MEGALOC_COLMAP_EXECUTABLE; }

// "--SiftExtraction" / "--SiftMatching" for COLMAP < 3.13, "--FeatureExtraction"/"--FeatureMatching"
// from 3.13 on (first line of `colmap help`: "COLMAP 3.8 -- ...").
bool UsesFeaturePrefix(const std::string& log_dir) {
  const std::string out = JoinPaths(log_dir, "help.txt");
  testing::RunShell("'" + Colmap() + "' help > '" + out + "' 2>&1");
  std::istringstream in(ReadFileToString(out));
  std::string word, version;
  in >> word >> version;
  int major = 0, minor = 0;
  if (std::sscanf(version.c_str(), "%d.%d", &major, &minor) < 2) return false;
  return major > 3 || (major == 3 && minor >= 13);
}

TEST(SyntheticColmap, MapperRegistersEveryViewAtTheGroundTruthPoses) {
  if (Colmap().empty()) GTEST_SKIP() << "colmap binary not found";
  const SyntheticSceneOptions options;  // defaults: 10 views
  const SyntheticDataset dataset = GenerateSyntheticScene(options);
  const std::string dir = testing::TempDir();
  const std::string images = JoinPaths(dir, "images");
  const std::string db = JoinPaths(dir, "database.db");
  WriteImages(dataset.views, images);
  const bool new_flags = UsesFeaturePrefix(dir);
  const std::string extraction = new_flags ? "--FeatureExtraction" : "--SiftExtraction";
  const std::string matching = new_flags ? "--FeatureMatching" : "--SiftMatching";
  const std::string log = " >> '" + JoinPaths(dir, "colmap.log") + "' 2>&1";
  ASSERT_EQ(testing::RunShell("'" + Colmap() + "' feature_extractor --database_path '" + db + "' --image_path '" +
                              images + "' --ImageReader.single_camera 1 --ImageReader.camera_model PINHOLE " +
                              extraction + ".use_gpu 0 " + extraction + ".num_threads 2 " +
                              "--SiftExtraction.max_num_features 1024" + log),
            0)
      << ReadFileToString(JoinPaths(dir, "colmap.log"));
  ASSERT_EQ(testing::RunShell("'" + Colmap() + "' exhaustive_matcher --database_path '" + db + "' " + matching +
                              ".use_gpu 0 " + matching + ".num_threads 2" + log),
            0)
      << ReadFileToString(JoinPaths(dir, "colmap.log"));
  CreateDirectories(JoinPaths(dir, "sparse"));
  ASSERT_EQ(testing::RunShell("'" + Colmap() + "' mapper --database_path '" + db + "' --image_path '" + images +
                              "' --output_path '" + JoinPaths(dir, "sparse") + "' --Mapper.num_threads 2" + log),
            0)
      << ReadFileToString(JoinPaths(dir, "colmap.log"));
  ASSERT_EQ(testing::RunShell("'" + Colmap() + "' model_converter --input_path '" + JoinPaths(dir, "sparse/0") +
                              "' --output_path '" + dir + "' --output_type TXT" + log),
            0)
      << ReadFileToString(JoinPaths(dir, "colmap.log"));

  // images.txt: "IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME" then a line of 2D points.
  std::map<std::string, Eigen::Vector3d> estimated_centers;
  std::istringstream in(ReadFileToString(JoinPaths(dir, "images.txt")));
  std::string line;
  bool header = true;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (header) {
      const std::vector<std::string> f = SplitWhitespace(line);
      ASSERT_EQ(f.size(), 10u) << line;
      Rigid3d pose;
      pose.rotation = Eigen::Quaterniond(std::stod(f[1]), std::stod(f[2]), std::stod(f[3]), std::stod(f[4]));
      pose.translation = Eigen::Vector3d(std::stod(f[5]), std::stod(f[6]), std::stod(f[7]));
      estimated_centers[f[9]] = CameraCenter(pose);
    }
    header = !header;
  }
  ASSERT_EQ(estimated_centers.size(), dataset.views.size()) << "not every view was registered";

  // Align the estimated centres to the ground truth with a similarity (Umeyama) and compare.
  const int n = static_cast<int>(dataset.views.size());
  Eigen::Matrix3Xd src(3, n), dst(3, n);
  for (int i = 0; i < n; ++i) {
    ASSERT_EQ(estimated_centers.count(dataset.views[i].name), 1u) << dataset.views[i].name;
    src.col(i) = estimated_centers[dataset.views[i].name];
    dst.col(i) = CameraCenter(dataset.views[i].cam_from_world);
  }
  const Eigen::Matrix4d sim = Eigen::umeyama(src, dst, true);
  double max_error = 0.0;
  for (int i = 0; i < n; ++i) {
    const Eigen::Vector3d aligned = sim.topLeftCorner<3, 3>() * src.col(i) + sim.topRightCorner<3, 1>();
    max_error = std::max(max_error, (aligned - dst.col(i)).norm());
  }
  // Cameras are 7 m from the centre and ~1.3 m apart: 5 cm is a sharp bound.
  EXPECT_LT(max_error, 0.05) << "max camera centre error after similarity alignment (m)";
}

}  // namespace
}  // namespace synthetic
}  // namespace megaloc
