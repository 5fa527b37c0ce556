#include "tests/common/synthetic/renderer.h"

#include <cmath>
#include <cstdio>
#include <iomanip>
#include <sstream>

#include <opencv2/imgcodecs.hpp>

#include "megaloc/colmap/model.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/string_utils.h"

namespace megaloc {
namespace synthetic {

bool SyntheticSceneOptions::Check() const {
  CHECK_OPTION_GE(num_views, 2);
  CHECK_OPTION_GT(width, 0);
  CHECK_OPTION_GT(height, 0);
  CHECK_OPTION_GT(focal_length, 0.0);
  CHECK_OPTION_GT(orbit_radius, 0.0);
  CHECK_OPTION_GE(supersampling, 1);
  CHECK_OPTION_GE(jpeg_quality, 0);
  CHECK_OPTION_LE(jpeg_quality, 100);
  const std::string ext = ToLower(extension);
  CHECK_OPTION(ext == ".jpg" || ext == ".jpeg" || ext == ".png");
  CHECK_OPTION(!HasWhitespace(name_prefix));
  CHECK_OPTION(texture.Check());
  return true;
}

Scene MakeDefaultScene(uint64_t seed, const TextureOptions& texture) {
  Scene scene;
  // Ground: 16 m x 16 m centred at the origin.
  scene.AddTexturedQuad(Eigen::Vector3d(-8, -8, 0), Eigen::Vector3d(16, 0, 0), Eigen::Vector3d(0, 16, 0),
                        seed * 131 + 1, texture);
  // Back wall (y = 4.5) and two side walls (x = +-6.5), 4.5 m high.
  scene.AddTexturedQuad(Eigen::Vector3d(-9, 4.5, 0), Eigen::Vector3d(18, 0, 0), Eigen::Vector3d(0, 0, 4.5),
                        seed * 131 + 2, texture);
  scene.AddTexturedQuad(Eigen::Vector3d(-6.5, -1.0, 0), Eigen::Vector3d(0, 5.5, 0), Eigen::Vector3d(0, 0, 4.5),
                        seed * 131 + 3, texture);
  scene.AddTexturedQuad(Eigen::Vector3d(6.5, -1.0, 0), Eigen::Vector3d(0, 5.5, 0), Eigen::Vector3d(0, 0, 4.5),
                        seed * 131 + 4, texture);
  // Boxes of different sizes around the centre.
  scene.AddBox(Eigen::Vector3d(-1.6, -1.0, 0), Eigen::Vector3d(-0.4, 0.2, 1.2), seed * 131 + 5, texture);
  scene.AddBox(Eigen::Vector3d(0.4, -0.6, 0), Eigen::Vector3d(1.6, 0.8, 0.9), seed * 131 + 6, texture);
  scene.AddBox(Eigen::Vector3d(-0.6, 1.0, 0), Eigen::Vector3d(0.5, 1.9, 1.8), seed * 131 + 7, texture);
  scene.AddBox(Eigen::Vector3d(1.0, -2.2, 0), Eigen::Vector3d(1.8, -1.4, 0.6), seed * 131 + 8, texture);
  return scene;
}

std::vector<Rigid3d> MakeOrbitPoses(const SyntheticSceneOptions& options) {
  MEGALOC_CHECK_MSG(options.Check(), "invalid SyntheticSceneOptions");
  std::vector<Rigid3d> poses;
  const double step = options.num_views > 1 ? options.arc_degrees / (options.num_views - 1) : 0.0;
  for (int i = 0; i < options.num_views; ++i) {
    const double angle = (options.start_degrees + i * step) * M_PI / 180.0;
    const Eigen::Vector3d center(options.look_at.x() + options.orbit_radius * std::cos(angle),
                                 options.look_at.y() + options.orbit_radius * std::sin(angle),
                                 options.camera_height);
    poses.push_back(LookAt(center, options.look_at, Eigen::Vector3d::UnitZ()));
  }
  return poses;
}

SyntheticDataset GenerateSyntheticScene(const SyntheticSceneOptions& options) {
  MEGALOC_CHECK_MSG(options.Check(), "invalid SyntheticSceneOptions");
  SyntheticDataset dataset;
  dataset.scene = MakeDefaultScene(options.seed, options.texture);
  const PinholeCamera camera = PinholeCamera::Centered(options.width, options.height, options.focal_length);
  const std::vector<Rigid3d> poses = MakeOrbitPoses(options);
  for (size_t i = 0; i < poses.size(); ++i) {
    SyntheticView view;
    std::ostringstream name;
    name << options.name_prefix << std::setw(3) << std::setfill('0') << i << options.extension;
    view.name = name.str();
    view.camera = camera;
    view.cam_from_world = poses[i];
    RenderedView rendered = dataset.scene.Render(camera, poses[i], options.supersampling);
    view.image = rendered.image;
    view.depth = rendered.depth;
    dataset.views.push_back(std::move(view));
  }
  return dataset;
}

void WriteImages(const std::vector<SyntheticView>& views, const std::string& image_dir, int jpeg_quality) {
  CreateDirectories(image_dir);
  for (const SyntheticView& view : views) {
    const std::string path = JoinPaths(image_dir, view.name);
    const std::string ext = ToLower(path.substr(path.find_last_of('.') == std::string::npos ? path.size()
                                                                                            : path.find_last_of('.')));
    std::vector<int> params;
    if (ext == ".jpg" || ext == ".jpeg") {
      params = {cv::IMWRITE_JPEG_QUALITY, jpeg_quality};
    } else if (ext != ".png") {
      MEGALOC_THROW(IoError, path << ": unsupported image extension (use .jpg, .jpeg or .png)");
    }
    const size_t slash = view.name.find_last_of('/');
    if (slash != std::string::npos) CreateDirectories(JoinPaths(image_dir, view.name.substr(0, slash)));
    bool ok = false;
    try {
      ok = cv::imwrite(path, view.image, params);
    } catch (const cv::Exception& e) {
      MEGALOC_THROW(IoError, path << ": cannot write image: " << e.what());
    }
    if (!ok) MEGALOC_THROW(IoError, path << ": cannot write image");
  }
}

void WriteColmapTextModel(const std::vector<SyntheticView>& views, const std::string& model_dir) {
  std::vector<ColmapCamera> cameras;
  std::vector<ColmapImage> images;
  for (size_t i = 0; i < views.size(); ++i) {
    const SyntheticView& view = views[i];
    const uint32_t id = static_cast<uint32_t>(i) + 1;
    ColmapCamera camera;
    camera.camera_id = id;
    camera.model_id = FindColmapCameraModel("PINHOLE")->id;
    camera.width = static_cast<uint64_t>(view.camera.width);
    camera.height = static_cast<uint64_t>(view.camera.height);
    camera.params = {view.camera.fx, view.camera.fy, view.camera.cx, view.camera.cy};
    cameras.push_back(camera);
    const Eigen::Quaterniond& q = view.cam_from_world.rotation;
    const Eigen::Vector3d& t = view.cam_from_world.translation;
    ColmapImage image;
    image.image_id = id;
    image.qvec = {q.w(), q.x(), q.y(), q.z()};
    image.tvec = {t.x(), t.y(), t.z()};
    image.camera_id = id;
    image.name = view.name;
    images.push_back(image);
  }
  megaloc::WriteColmapTextModel(model_dir, cameras, images);
}

}  // namespace synthetic
}  // namespace megaloc
