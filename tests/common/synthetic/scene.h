#pragma once

// Ray-cast scenes of textured planar quads (planes, boxes) seen by pinhole cameras with known
// intrinsics and poses. Used to make small multi-view data sets on which COLMAP's SIFT + mapper
// register every image (integration tests of the COLMAP plugin and of LaMAR-style localization).
//
// Conventions (identical to COLMAP):
//  * World: right-handed, metres. The built-in scenes use +Z as "up".
//  * Camera frame: +X right, +Y down, +Z forward (viewing direction).
//  * Pose `cam_from_world` (COLMAP's Rigid3d naming, the R|t of images.txt/images.bin):
//      x_cam = cam_from_world.rotation * x_world + cam_from_world.translation.
//    Its inverse `world_from_cam` maps camera coordinates to world coordinates; the camera centre
//    in world coordinates is world_from_cam.translation = -R^T t.
//  * Pixels: COLMAP's PINHOLE model, params (fx, fy, cx, cy); the centre of the top-left pixel is
//    (0.5, 0.5), so pixel (col, row) has image coordinates (col + 0.5, row + 0.5) and
//    u = fx * X / Z + cx, v = fy * Y / Z + cy.

#include <cstdint>
#include <string>
#include <vector>

#include <Eigen/Core>
#include <Eigen/Geometry>
#include <opencv2/core.hpp>

namespace megaloc {
namespace synthetic {

// A rigid transformation y = rotation * x + translation (COLMAP's Rigid3d).
struct Rigid3d {
  Eigen::Quaterniond rotation = Eigen::Quaterniond::Identity();
  Eigen::Vector3d translation = Eigen::Vector3d::Zero();

  Eigen::Vector3d operator*(const Eigen::Vector3d& x) const { return rotation * x + translation; }
  Rigid3d Inverse() const;
  // 3x4 matrix [R | t].
  Eigen::Matrix<double, 3, 4> ToMatrix() const;
};

// COLMAP PINHOLE camera (model id 1): params fx, fy, cx, cy.
struct PinholeCamera {
  int width = 640;
  int height = 480;
  double fx = 500.0;
  double fy = 500.0;
  double cx = 320.0;
  double cy = 240.0;

  // Camera with focal length `focal` and principal point at the image centre.
  static PinholeCamera Centered(int width, int height, double focal);
  // 3x3 calibration matrix K.
  Eigen::Matrix3d CalibrationMatrix() const;
  // Projects a point in camera coordinates (Z > 0) to image coordinates (COLMAP convention).
  Eigen::Vector2d Project(const Eigen::Vector3d& point_in_cam) const;
  bool Check() const;
};

// cam_from_world of a camera at `center` (world) looking at `target`, with `up` (world) pointing
// up in the image (image +Y points along -up). Throws InvalidArgument if the viewing direction is
// parallel to `up` or center == target.
Rigid3d LookAt(const Eigen::Vector3d& center,
               const Eigen::Vector3d& target,
               const Eigen::Vector3d& up = Eigen::Vector3d::UnitZ());

// Camera centre in world coordinates of a cam_from_world pose.
Eigen::Vector3d CameraCenter(const Rigid3d& cam_from_world);

// A planar textured parallelogram: points origin + s * axis_u + t * axis_v for s, t in [0, 1].
// texture(row, col) is sampled at (s * texture.cols, t * texture.rows) (row 0 = t = 0).
struct TexturedQuad {
  Eigen::Vector3d origin = Eigen::Vector3d::Zero();
  Eigen::Vector3d axis_u = Eigen::Vector3d::UnitX();
  Eigen::Vector3d axis_v = Eigen::Vector3d::UnitY();
  cv::Mat texture;  // CV_8UC3, BGR
};

// Options of the procedural textures: rich, non-repetitive patterns (multi-octave value noise,
// random blobs, ellipses, polygons, strokes and text-like glyph strings), so that SIFT finds many
// distinctive features. Everything is derived deterministically from the seed.
struct TextureOptions {
  // Texture resolution in pixels per metre of surface.
  double pixels_per_meter = 128.0;
  // Largest texture side in pixels (the resolution is reduced for larger surfaces).
  int max_size = 2048;
  // Number of drawn shapes per square metre (at least 8 per texture).
  double shapes_per_square_meter = 12.0;

  bool Check() const;
};

// Renders `width_m` x `height_m` metres of procedural texture.
cv::Mat MakeProceduralTexture(double width_m, double height_m, uint64_t seed,
                              const TextureOptions& options = TextureOptions());

// Output of Scene::Render.
struct RenderedView {
  cv::Mat image;  // CV_8UC3 BGR, camera.height x camera.width
  cv::Mat depth;  // CV_32F, Z in the camera frame of the surface seen at the pixel centre, 0 if none
};

// Set of textured quads plus a background colour for rays that hit nothing.
class Scene {
 public:
  // Adds a quad; its texture must be a non-empty CV_8UC3 image.
  void AddQuad(const TexturedQuad& quad);
  // Adds a quad with a procedural texture (seed derived from `seed`).
  void AddTexturedQuad(const Eigen::Vector3d& origin, const Eigen::Vector3d& axis_u,
                       const Eigen::Vector3d& axis_v, uint64_t seed,
                       const TextureOptions& options = TextureOptions());
  // Adds the 5 visible faces (4 sides + top) of an axis-aligned box standing on z = min_corner.z,
  // each with its own procedural texture.
  void AddBox(const Eigen::Vector3d& min_corner, const Eigen::Vector3d& max_corner, uint64_t seed,
              const TextureOptions& options = TextureOptions());

  const std::vector<TexturedQuad>& Quads() const { return quads_; }

  // BGR colour of rays that hit no quad.
  cv::Vec3b background = cv::Vec3b(200, 170, 140);

  // Ray-casts the scene: `supersampling`^2 rays per pixel (box filter), bilinear texture lookups.
  // Throws InvalidArgument on an invalid camera or supersampling < 1.
  RenderedView Render(const PinholeCamera& camera, const Rigid3d& cam_from_world,
                      int supersampling = 2) const;

 private:
  std::vector<TexturedQuad> quads_;
};

}  // namespace synthetic
}  // namespace megaloc
