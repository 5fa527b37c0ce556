#pragma once

// Ready-made synthetic multi-view data sets: a textured ground plane, a few textured boxes and two
// back walls, seen by cameras on an arc around the scene centre, all looking at it. With the
// defaults (10 views of 640x480, 12 degrees apart) COLMAP 3.8's CPU SIFT + `colmap mapper`
// register every view. See scene.h for the pose and pixel conventions (COLMAP's).

#include <cstdint>
#include <string>
#include <vector>

#include "tests/common/synthetic/scene.h"

namespace megaloc {
namespace synthetic {

struct SyntheticSceneOptions {
  // Number of views (>= 2).
  int num_views = 10;
  // Image size in pixels and focal length in pixels (principal point at the image centre).
  int width = 640;
  int height = 480;
  double focal_length = 520.0;
  // Cameras lie on a circular arc of this radius (metres) around the scene centre, at this height,
  // spanning `arc_degrees` in total (views equally spaced, starting at `start_degrees`).
  double orbit_radius = 7.0;
  double camera_height = 2.5;
  double arc_degrees = 110.0;
  double start_degrees = -145.0;
  // Point all cameras look at.
  Eigen::Vector3d look_at = Eigen::Vector3d(0.0, 0.0, 0.6);
  // Seed of every texture and of the box layout.
  uint64_t seed = 7;
  // Rays per pixel = supersampling^2.
  int supersampling = 2;
  // Image file names are `<name_prefix><index, 3 digits><extension>`; extension ".jpg" or ".png".
  std::string name_prefix = "view_";
  std::string extension = ".jpg";
  // JPEG quality (0-100) when extension is .jpg.
  int jpeg_quality = 95;
  TextureOptions texture;

  bool Check() const;
};

// One rendered view with its ground-truth camera.
struct SyntheticView {
  std::string name;  // file name relative to the image directory, e.g. "view_000.jpg"
  PinholeCamera camera;
  Rigid3d cam_from_world;
  cv::Mat image;  // CV_8UC3 BGR
  cv::Mat depth;  // CV_32F, camera-frame Z, 0 where nothing was hit
};

struct SyntheticDataset {
  Scene scene;
  std::vector<SyntheticView> views;
};

// Builds the default scene (ground, boxes, walls) for a seed.
Scene MakeDefaultScene(uint64_t seed, const TextureOptions& texture = TextureOptions());

// Camera poses (cam_from_world) of the orbit described by `options`.
std::vector<Rigid3d> MakeOrbitPoses(const SyntheticSceneOptions& options);

// Builds the scene and renders every view. Deterministic for given options.
// Throws InvalidArgument if !options.Check().
SyntheticDataset GenerateSyntheticScene(const SyntheticSceneOptions& options = SyntheticSceneOptions());

// Writes the images of `views` into `image_dir` (created if needed) with the encoder implied by each
// name's extension (.jpg/.jpeg: quality `jpeg_quality`; .png: lossless). Throws IoError naming the
// file on failure.
void WriteImages(const std::vector<SyntheticView>& views, const std::string& image_dir,
                 int jpeg_quality = 95);

// Writes the ground truth as a COLMAP text model in `model_dir` (created if needed):
// cameras.txt (one PINHOLE camera per view, CAMERA_ID = index + 1), images.txt (IMAGE_ID = index + 1,
// QW QX QY QZ TX TY TZ = cam_from_world, empty 2D point lines) and an empty points3D.txt.
void WriteColmapTextModel(const std::vector<SyntheticView>& views, const std::string& model_dir);

}  // namespace synthetic
}  // namespace megaloc
