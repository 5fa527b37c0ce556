#include "tests/common/synthetic/renderer.h"
#include "tests/common/synthetic/scene.h"

#include <cmath>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "tests/common/testing.h"

namespace megaloc {
namespace synthetic {
namespace {

TEST(Synthetic, LookAtFollowsColmapConventions) {
  const Eigen::Vector3d center(3.0, -4.0, 2.0);
  const Eigen::Vector3d target(0.0, 0.0, 0.5);
  const Rigid3d cam_from_world = LookAt(center, target);
  EXPECT_NEAR((CameraCenter(cam_from_world) - center).norm(), 0.0, 1e-12);
  // The target is straight ahead (+Z), the camera centre maps to the origin.
  const Eigen::Vector3d target_cam = cam_from_world * target;
  EXPECT_NEAR(target_cam.x(), 0.0, 1e-12);
  EXPECT_NEAR(target_cam.y(), 0.0, 1e-12);
  EXPECT_NEAR(target_cam.z(), (target - center).norm(), 1e-12);
  EXPECT_NEAR((cam_from_world * center).norm(), 0.0, 1e-12);
  // World up is image up (smaller v); the inverse pose round-trips.
  const PinholeCamera camera = PinholeCamera::Centered(640, 480, 500.0);
  const Eigen::Vector2d p_target = camera.Project(target_cam);
  const Eigen::Vector2d p_above = camera.Project(cam_from_world * (target + Eigen::Vector3d(0, 0, 0.3)));
  EXPECT_NEAR(p_target.x(), 320.0, 1e-9);
  EXPECT_NEAR(p_target.y(), 240.0, 1e-9);
  EXPECT_LT(p_above.y(), p_target.y() - 10.0);
  const Eigen::Vector3d x(0.3, -0.7, 1.1);
  EXPECT_NEAR((cam_from_world.Inverse() * (cam_from_world * x) - x).norm(), 0.0, 1e-12);
  EXPECT_NEAR(cam_from_world.rotation.norm(), 1.0, 1e-12);
  EXPECT_THROW(LookAt(center, center), InvalidArgument);
  EXPECT_THROW(LookAt(Eigen::Vector3d(0, 0, 5), Eigen::Vector3d::Zero()), InvalidArgument);
}

TEST(Synthetic, TexturesAreDeterministicAndRich) {
  const cv::Mat a = MakeProceduralTexture(2.0, 1.0, 42);
  const cv::Mat b = MakeProceduralTexture(2.0, 1.0, 42);
  const cv::Mat c = MakeProceduralTexture(2.0, 1.0, 43);
  ASSERT_EQ(a.cols, 256);
  ASSERT_EQ(a.rows, 128);
  EXPECT_EQ(cv::norm(a, b, cv::NORM_INF), 0.0);
  EXPECT_GT(cv::norm(a, c, cv::NORM_L1) / a.total(), 20.0);
  cv::Scalar mean, stddev;
  cv::meanStdDev(a, mean, stddev);
  for (int k = 0; k < 3; ++k) EXPECT_GT(stddev[k], 25.0);
  // Large surfaces are capped at max_size.
  TextureOptions options;
  options.max_size = 300;
  const cv::Mat big = MakeProceduralTexture(10.0, 5.0, 1, options);
  EXPECT_EQ(big.cols, 300);
  EXPECT_EQ(big.rows, 150);
}

TEST(Synthetic, RenderedDepthMatchesGeometry) {
  Scene scene;
  TexturedQuad quad;
  quad.origin = Eigen::Vector3d(-5, -5, 0);
  quad.axis_u = Eigen::Vector3d(10, 0, 0);
  quad.axis_v = Eigen::Vector3d(0, 10, 0);
  quad.texture = MakeProceduralTexture(10, 10, 3);
  scene.AddQuad(quad);
  const PinholeCamera camera = PinholeCamera::Centered(64, 48, 50.0);
  const Rigid3d cam_from_world = LookAt(Eigen::Vector3d(0, -4, 3), Eigen::Vector3d(0, 0, 0));
  const RenderedView view = scene.Render(camera, cam_from_world, 1);
  ASSERT_EQ(view.image.rows, 48);
  ASSERT_EQ(view.image.cols, 64);
  // Every pixel with depth back-projects onto the plane z = 0.
  const Rigid3d world_from_cam = cam_from_world.Inverse();
  int num_hits = 0;
  for (int r = 0; r < 48; ++r) {
    for (int c = 0; c < 64; ++c) {
      const float depth = view.depth.at<float>(r, c);
      if (depth <= 0) continue;
      ++num_hits;
      const Eigen::Vector3d cam((c + 0.5 - camera.cx) / camera.fx * depth, (r + 0.5 - camera.cy) / camera.fy * depth,
                                depth);
      EXPECT_NEAR((world_from_cam * cam).z(), 0.0, 1e-4);
    }
  }
  // Rays above the horizon (top rows) see the background.
  EXPECT_GT(num_hits, 48 * 64 / 2);
  EXPECT_LT(num_hits, 48 * 64);
  EXPECT_EQ(view.image.at<cv::Vec3b>(0, 0), scene.background);
  EXPECT_THROW(scene.Render(camera, cam_from_world, 0), InvalidArgument);
}

TEST(Synthetic, ViewsAreGeometricallyConsistent) {
  SyntheticSceneOptions options;
  options.num_views = 2;
  options.width = 160;
  options.height = 120;
  options.focal_length = 130;
  options.arc_degrees = 10;
  options.supersampling = 1;
  options.texture.pixels_per_meter = 32;
  const SyntheticDataset dataset = GenerateSyntheticScene(options);
  ASSERT_EQ(dataset.views.size(), 2u);
  EXPECT_EQ(dataset.views[0].name, "view_000.jpg");
  EXPECT_EQ(dataset.views[1].name, "view_001.jpg");
  // Transfer pixels of view 0 into view 1 with the depth and poses; the colours must agree
  // (up to texture interpolation) at the vast majority of visible, non-occluded pixels.
  const SyntheticView& v0 = dataset.views[0];
  const SyntheticView& v1 = dataset.views[1];
  const Rigid3d v1_from_v0_world = v1.cam_from_world;
  int tested = 0, agree = 0;
  for (int r = 2; r < 118; r += 3) {
    for (int c = 2; c < 158; c += 3) {
      const float depth = v0.depth.at<float>(r, c);
      if (depth <= 0) continue;
      const Eigen::Vector3d cam0((c + 0.5 - v0.camera.cx) / v0.camera.fx * depth,
                                 (r + 0.5 - v0.camera.cy) / v0.camera.fy * depth, depth);
      const Eigen::Vector3d world = v0.cam_from_world.Inverse() * cam0;
      const Eigen::Vector3d cam1 = v1_from_v0_world * world;
      if (cam1.z() <= 0) continue;
      const Eigen::Vector2d p = v1.camera.Project(cam1);
      const int c1 = static_cast<int>(std::floor(p.x())), r1 = static_cast<int>(std::floor(p.y()));
      if (c1 < 0 || r1 < 0 || c1 >= 160 || r1 >= 120) continue;
      if (std::abs(v1.depth.at<float>(r1, c1) - cam1.z()) > 0.02 * cam1.z()) continue;  // occluded
      ++tested;
      const cv::Vec3b a = v0.image.at<cv::Vec3b>(r, c), b = v1.image.at<cv::Vec3b>(r1, c1);
      if (std::abs(a[0] - b[0]) + std::abs(a[1] - b[1]) + std::abs(a[2] - b[2]) < 120) ++agree;
    }
  }
  EXPECT_GT(tested, 1000);
  EXPECT_GT(agree, 0.85 * tested);
}

TEST(Synthetic, WritesImagesAndColmapTextModel) {
  SyntheticSceneOptions options;
  options.num_views = 3;
  options.width = 80;
  options.height = 60;
  options.focal_length = 70;
  options.supersampling = 1;
  options.texture.pixels_per_meter = 16;
  options.extension = ".png";
  const SyntheticDataset dataset = GenerateSyntheticScene(options);
  const std::string dir = testing::TempDir();
  WriteImages(dataset.views, JoinPaths(dir, "images"));
  WriteColmapTextModel(dataset.views, JoinPaths(dir, "gt"));
  for (const SyntheticView& view : dataset.views) {
    const cv::Mat read = cv::imread(JoinPaths(JoinPaths(dir, "images"), view.name), cv::IMREAD_COLOR);
    ASSERT_FALSE(read.empty()) << view.name;
    EXPECT_EQ(cv::norm(read, view.image, cv::NORM_INF), 0.0);  // PNG is lossless
  }
  const std::string images = ReadFileToString(JoinPaths(dir, "gt/images.txt"));
  EXPECT_NE(images.find(" 3 view_002.png\n"), std::string::npos);
  const std::string cameras = ReadFileToString(JoinPaths(dir, "gt/cameras.txt"));
  EXPECT_NE(cameras.find("1 PINHOLE 80 60 70 70 40 30\n"), std::string::npos);
  EXPECT_TRUE(FileExists(JoinPaths(dir, "gt/points3D.txt")));
  // Errors name the file.
  std::vector<SyntheticView> bad = {dataset.views[0]};
  bad[0].name = "x.bmpx";
  try {
    WriteImages(bad, JoinPaths(dir, "images"));
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("x.bmpx"), std::string::npos);
  }
  options.num_views = 1;
  EXPECT_THROW(GenerateSyntheticScene(options), InvalidArgument);
}

}  // namespace
}  // namespace synthetic
}  // namespace megaloc
