#include "tests/common/synthetic/scene.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <opencv2/imgproc.hpp>

#include "megaloc/util/logging.h"

namespace megaloc {
namespace synthetic {
namespace {

// SplitMix64: fully specified, so textures are identical on every platform and standard library
// (std::uniform_*_distribution is implementation-defined).
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1).
  double Uniform() { return static_cast<double>(Next() >> 11) * (1.0 / 9007199254740992.0); }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  int Int(int lo, int hi_inclusive) {
    return lo + static_cast<int>(Next() % static_cast<uint64_t>(hi_inclusive - lo + 1));
  }

 private:
  uint64_t state_;
};

uint64_t MixSeed(uint64_t seed, uint64_t salt) {
  Random random(seed ^ (salt * 0xD6E8FEB86659FD93ULL + 0x1234567ULL));
  return random.Next();
}

cv::Scalar RandomColor(Random* random) {
  return cv::Scalar(random->Int(0, 255), random->Int(0, 255), random->Int(0, 255));
}

// Multi-octave value noise: random colours on coarse grids, bicubically upsampled and summed.
cv::Mat ValueNoise(int width, int height, double pixels_per_meter, Random* random) {
  cv::Mat sum(height, width, CV_32FC3, cv::Scalar::all(0.0));
  double weight = 1.0;
  double total_weight = 0.0;
  // Cell sizes from ~1 m down to ~8 cm.
  for (double cell_m : {1.0, 0.45, 0.2, 0.08}) {
    const double cell_px = std::max(2.0, cell_m * pixels_per_meter);
    const int grid_w = static_cast<int>(std::ceil(width / cell_px)) + 2;
    const int grid_h = static_cast<int>(std::ceil(height / cell_px)) + 2;
    cv::Mat grid(grid_h, grid_w, CV_32FC3);
    for (int r = 0; r < grid_h; ++r) {
      for (int c = 0; c < grid_w; ++c) {
        grid.at<cv::Vec3f>(r, c) = cv::Vec3f(static_cast<float>(random->Uniform()),
                                             static_cast<float>(random->Uniform()),
                                             static_cast<float>(random->Uniform()));
      }
    }
    cv::Mat up;
    cv::resize(grid, up, cv::Size(static_cast<int>(grid_w * cell_px), static_cast<int>(grid_h * cell_px)),
               0, 0, cv::INTER_CUBIC);
    sum += weight * up(cv::Rect(0, 0, width, height));
    total_weight += weight;
    weight *= 0.6;
  }
  cv::Mat out;
  sum.convertTo(out, CV_8UC3, 255.0 / total_weight);
  return out;
}

void DrawRandomShape(cv::Mat* texture, double pixels_per_meter, Random* random) {
  const int w = texture->cols;
  const int h = texture->rows;
  const cv::Point center(random->Int(0, w - 1), random->Int(0, h - 1));
  // Feature sizes between ~3 cm and ~30 cm of surface.
  const double size_px = std::max(3.0, random->Uniform(0.03, 0.3) * pixels_per_meter);
  const cv::Scalar color = RandomColor(random);
  const int kind = random->Int(0, 6);
  switch (kind) {
    case 0:
      cv::circle(*texture, center, static_cast<int>(size_px * 0.5), color, cv::FILLED, cv::LINE_AA);
      break;
    case 1:
      cv::ellipse(*texture, center,
                  cv::Size(static_cast<int>(size_px * 0.6), static_cast<int>(size_px * random->Uniform(0.15, 0.4))),
                  random->Uniform(0, 180), 0, 360, color, cv::FILLED, cv::LINE_AA);
      break;
    case 2: {
      const int n = random->Int(3, 6);
      std::vector<cv::Point> polygon;
      for (int i = 0; i < n; ++i) {
        const double angle = 2.0 * M_PI * (i + random->Uniform(0.0, 0.7)) / n;
        const double radius = size_px * random->Uniform(0.25, 0.6);
        polygon.emplace_back(center.x + static_cast<int>(radius * std::cos(angle)),
                             center.y + static_cast<int>(radius * std::sin(angle)));
      }
      cv::fillPoly(*texture, std::vector<std::vector<cv::Point>>{polygon}, color, cv::LINE_AA);
      break;
    }
    case 3: {
      const double angle = random->Uniform(0, M_PI);
      const cv::Point delta(static_cast<int>(size_px * std::cos(angle)), static_cast<int>(size_px * std::sin(angle)));
      cv::line(*texture, center - delta, center + delta, color, random->Int(1, 4), cv::LINE_AA);
      break;
    }
    case 4: {
      const cv::Point corner(center.x + static_cast<int>(size_px * random->Uniform(0.3, 0.9)),
                             center.y + static_cast<int>(size_px * random->Uniform(0.3, 0.9)));
      cv::rectangle(*texture, center, corner, color, random->Int(0, 1) == 0 ? cv::FILLED : 2, cv::LINE_AA);
      break;
    }
    case 5: {
      // A ring with a contrasting dot: blob-like keypoints with a distinctive neighbourhood.
      cv::circle(*texture, center, static_cast<int>(size_px * 0.4), color, 2, cv::LINE_AA);
      cv::circle(*texture, center, std::max(1, static_cast<int>(size_px * 0.12)), RandomColor(random), cv::FILLED,
                 cv::LINE_AA);
      break;
    }
    default: {
      // Text-like glyph string.
      static const char kGlyphs[] = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789#%&@";
      std::string text;
      const int length = random->Int(2, 7);
      for (int i = 0; i < length; ++i) text += kGlyphs[random->Int(0, static_cast<int>(sizeof(kGlyphs)) - 2)];
      const double scale = std::max(0.35, size_px / 40.0);
      cv::putText(*texture, text, center, random->Int(0, 1) == 0 ? cv::FONT_HERSHEY_SIMPLEX : cv::FONT_HERSHEY_DUPLEX,
                  scale, color, std::max(1, static_cast<int>(scale * 1.5)), cv::LINE_AA);
      break;
    }
  }
}

// Bilinear lookup with clamping at the borders; (x, y) in texture pixel units, pixel centres at +0.5.
inline cv::Vec3f SampleBilinear(const cv::Mat& texture, double x, double y) {
  x -= 0.5;
  y -= 0.5;
  const int max_c = texture.cols - 1;
  const int max_r = texture.rows - 1;
  const double fx = std::floor(x);
  const double fy = std::floor(y);
  const float ax = static_cast<float>(x - fx);
  const float ay = static_cast<float>(y - fy);
  const int c0 = std::clamp(static_cast<int>(fx), 0, max_c);
  const int c1 = std::clamp(static_cast<int>(fx) + 1, 0, max_c);
  const int r0 = std::clamp(static_cast<int>(fy), 0, max_r);
  const int r1 = std::clamp(static_cast<int>(fy) + 1, 0, max_r);
  const cv::Vec3b& p00 = texture.at<cv::Vec3b>(r0, c0);
  const cv::Vec3b& p01 = texture.at<cv::Vec3b>(r0, c1);
  const cv::Vec3b& p10 = texture.at<cv::Vec3b>(r1, c0);
  const cv::Vec3b& p11 = texture.at<cv::Vec3b>(r1, c1);
  cv::Vec3f out;
  for (int k = 0; k < 3; ++k) {
    const float top = p00[k] + ax * (p01[k] - p00[k]);
    const float bottom = p10[k] + ax * (p11[k] - p10[k]);
    out[k] = top + ay * (bottom - top);
  }
  return out;
}

// Per-quad data precomputed for ray casting.
struct PreparedQuad {
  Eigen::Vector3d origin;
  Eigen::Vector3d normal;
  Eigen::Vector3d dual_u;  // s = dual_u . (p - origin)
  Eigen::Vector3d dual_v;  // t = dual_v . (p - origin)
  const cv::Mat* texture;
};

}  // namespace

Rigid3d Rigid3d::Inverse() const {
  Rigid3d inverse;
  inverse.rotation = rotation.conjugate();
  inverse.translation = -(inverse.rotation * translation);
  return inverse;
}

Eigen::Matrix<double, 3, 4> Rigid3d::ToMatrix() const {
  Eigen::Matrix<double, 3, 4> matrix;
  matrix.leftCols<3>() = rotation.toRotationMatrix();
  matrix.col(3) = translation;
  return matrix;
}

PinholeCamera PinholeCamera::Centered(int width, int height, double focal) {
  PinholeCamera camera;
  camera.width = width;
  camera.height = height;
  camera.fx = focal;
  camera.fy = focal;
  camera.cx = 0.5 * width;
  camera.cy = 0.5 * height;
  return camera;
}

Eigen::Matrix3d PinholeCamera::CalibrationMatrix() const {
  Eigen::Matrix3d k;
  k << fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0;
  return k;
}

Eigen::Vector2d PinholeCamera::Project(const Eigen::Vector3d& point_in_cam) const {
  return Eigen::Vector2d(fx * point_in_cam.x() / point_in_cam.z() + cx, fy * point_in_cam.y() / point_in_cam.z() + cy);
}

bool PinholeCamera::Check() const {
  CHECK_OPTION_GT(width, 0);
  CHECK_OPTION_GT(height, 0);
  CHECK_OPTION_GT(fx, 0.0);
  CHECK_OPTION_GT(fy, 0.0);
  return true;
}

bool TextureOptions::Check() const {
  CHECK_OPTION_GT(pixels_per_meter, 0.0);
  CHECK_OPTION_GE(max_size, 16);
  CHECK_OPTION_GE(shapes_per_square_meter, 0.0);
  return true;
}

Rigid3d LookAt(const Eigen::Vector3d& center, const Eigen::Vector3d& target, const Eigen::Vector3d& up) {
  const Eigen::Vector3d forward = target - center;
  MEGALOC_CHECK_MSG(forward.norm() > 1e-12, "LookAt: the camera centre equals the target");
  const Eigen::Vector3d z = forward.normalized();
  const Eigen::Vector3d x_raw = z.cross(up);
  MEGALOC_CHECK_MSG(x_raw.norm() > 1e-9 * std::max(1.0, up.norm()),
                    "LookAt: the viewing direction is parallel to the up vector");
  const Eigen::Vector3d x = x_raw.normalized();
  const Eigen::Vector3d y = z.cross(x);  // image down = -up projected
  Eigen::Matrix3d rotation;
  rotation.row(0) = x.transpose();
  rotation.row(1) = y.transpose();
  rotation.row(2) = z.transpose();
  Rigid3d cam_from_world;
  cam_from_world.rotation = Eigen::Quaterniond(rotation).normalized();
  cam_from_world.translation = -(rotation * center);
  return cam_from_world;
}

Eigen::Vector3d CameraCenter(const Rigid3d& cam_from_world) { return cam_from_world.Inverse().translation; }

cv::Mat MakeProceduralTexture(double width_m, double height_m, uint64_t seed, const TextureOptions& options) {
  MEGALOC_CHECK_MSG(options.Check(), "invalid TextureOptions");
  MEGALOC_CHECK_MSG(width_m > 0.0 && height_m > 0.0, "texture size must be positive: " << width_m << " x " << height_m);
  double ppm = options.pixels_per_meter;
  const double largest_m = std::max(width_m, height_m);
  if (largest_m * ppm > options.max_size) ppm = options.max_size / largest_m;
  const int width = std::max(16, static_cast<int>(std::lround(width_m * ppm)));
  const int height = std::max(16, static_cast<int>(std::lround(height_m * ppm)));
  Random random(MixSeed(seed, 1));
  cv::Mat texture = ValueNoise(width, height, ppm, &random);
  const int num_shapes = std::max(8, static_cast<int>(options.shapes_per_square_meter * width_m * height_m));
  for (int i = 0; i < num_shapes; ++i) DrawRandomShape(&texture, ppm, &random);
  return texture;
}

void Scene::AddQuad(const TexturedQuad& quad) {
  MEGALOC_CHECK_MSG(!quad.texture.empty() && quad.texture.type() == CV_8UC3, "quad texture must be a CV_8UC3 image");
  MEGALOC_CHECK_MSG(quad.axis_u.cross(quad.axis_v).norm() > 1e-12, "quad axes must not be parallel");
  quads_.push_back(quad);
}

void Scene::AddTexturedQuad(const Eigen::Vector3d& origin, const Eigen::Vector3d& axis_u,
                            const Eigen::Vector3d& axis_v, uint64_t seed, const TextureOptions& options) {
  TexturedQuad quad;
  quad.origin = origin;
  quad.axis_u = axis_u;
  quad.axis_v = axis_v;
  quad.texture = MakeProceduralTexture(axis_u.norm(), axis_v.norm(), seed, options);
  AddQuad(quad);
}

void Scene::AddBox(const Eigen::Vector3d& min_corner, const Eigen::Vector3d& max_corner, uint64_t seed,
                   const TextureOptions& options) {
  MEGALOC_CHECK_MSG((max_corner.array() > min_corner.array()).all(), "AddBox: max_corner must exceed min_corner");
  const Eigen::Vector3d d = max_corner - min_corner;
  const Eigen::Vector3d& o = min_corner;
  const Eigen::Vector3d ex(d.x(), 0, 0), ey(0, d.y(), 0), ez(0, 0, d.z());
  AddTexturedQuad(o, ex, ez, MixSeed(seed, 11), options);                // y = min face
  AddTexturedQuad(o + ey, ex, ez, MixSeed(seed, 12), options);           // y = max face
  AddTexturedQuad(o, ey, ez, MixSeed(seed, 13), options);                // x = min face
  AddTexturedQuad(o + ex, ey, ez, MixSeed(seed, 14), options);           // x = max face
  AddTexturedQuad(o + ez, ex, ey, MixSeed(seed, 15), options);           // top
}

RenderedView Scene::Render(const PinholeCamera& camera, const Rigid3d& cam_from_world, int supersampling) const {
  MEGALOC_CHECK_MSG(camera.Check(), "invalid camera");
  MEGALOC_CHECK_MSG(supersampling >= 1, "supersampling must be >= 1, got " << supersampling);

  std::vector<PreparedQuad> prepared;
  prepared.reserve(quads_.size());
  for (const TexturedQuad& quad : quads_) {
    PreparedQuad p;
    p.origin = quad.origin;
    p.normal = quad.axis_u.cross(quad.axis_v);
    Eigen::Matrix2d gram;
    gram << quad.axis_u.dot(quad.axis_u), quad.axis_u.dot(quad.axis_v), quad.axis_u.dot(quad.axis_v),
        quad.axis_v.dot(quad.axis_v);
    const Eigen::Matrix2d inv = gram.inverse();
    p.dual_u = inv(0, 0) * quad.axis_u + inv(0, 1) * quad.axis_v;
    p.dual_v = inv(1, 0) * quad.axis_u + inv(1, 1) * quad.axis_v;
    p.texture = &quad.texture;
    prepared.push_back(p);
  }

  const Eigen::Matrix3d world_from_cam_rotation = cam_from_world.rotation.toRotationMatrix().transpose();
  const Eigen::Vector3d center = CameraCenter(cam_from_world);

  // Casts the ray through image point (u, v); returns the depth (camera Z) or +inf and the colour.
  auto cast = [&](double u, double v, cv::Vec3f* color) -> double {
    // Direction with camera-frame Z = 1, so the ray parameter is the depth.
    const Eigen::Vector3d dir = world_from_cam_rotation * Eigen::Vector3d((u - camera.cx) / camera.fx,
                                                                          (v - camera.cy) / camera.fy, 1.0);
    double best = std::numeric_limits<double>::infinity();
    const PreparedQuad* hit = nullptr;
    double hit_s = 0.0, hit_t = 0.0;
    for (const PreparedQuad& q : prepared) {
      const double denom = q.normal.dot(dir);
      if (std::abs(denom) < 1e-15) continue;
      const double depth = q.normal.dot(q.origin - center) / denom;
      if (depth <= 1e-6 || depth >= best) continue;
      const Eigen::Vector3d rel = center + depth * dir - q.origin;
      const double s = q.dual_u.dot(rel);
      const double t = q.dual_v.dot(rel);
      if (s < 0.0 || s > 1.0 || t < 0.0 || t > 1.0) continue;
      best = depth;
      hit = &q;
      hit_s = s;
      hit_t = t;
    }
    if (hit == nullptr) {
      *color = cv::Vec3f(background[0], background[1], background[2]);
    } else {
      *color = SampleBilinear(*hit->texture, hit_s * hit->texture->cols, hit_t * hit->texture->rows);
    }
    return best;
  };

  RenderedView view;
  view.image.create(camera.height, camera.width, CV_8UC3);
  view.depth.create(camera.height, camera.width, CV_32F);
  const double inv_samples = 1.0 / (supersampling * supersampling);
  for (int row = 0; row < camera.height; ++row) {
    for (int col = 0; col < camera.width; ++col) {
      cv::Vec3f sum(0, 0, 0);
      for (int i = 0; i < supersampling; ++i) {
        for (int j = 0; j < supersampling; ++j) {
          cv::Vec3f color;
          cast(col + (j + 0.5) / supersampling, row + (i + 0.5) / supersampling, &color);
          sum += color;
        }
      }
      cv::Vec3b& pixel = view.image.at<cv::Vec3b>(row, col);
      for (int k = 0; k < 3; ++k) pixel[k] = cv::saturate_cast<uchar>(sum[k] * inv_samples);
      cv::Vec3f unused;
      const double depth = cast(col + 0.5, row + 0.5, &unused);
      view.depth.at<float>(row, col) = std::isfinite(depth) ? static_cast<float>(depth) : 0.0f;
    }
  }
  return view;
}

}  // namespace synthetic
}  // namespace megaloc
