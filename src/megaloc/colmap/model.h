#pragma once

// COLMAP sparse models on disk (cameras / images / points3D, binary and text, as COLMAP 3.8-4.x
// write them) and COLMAP's camera-model table. Torch-free, no link against COLMAP.
//
// Readers validate sizes against the file before allocating and throw FormatError naming the file
// (and the line, for text) on truncation, unknown camera models or malformed rows.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace megaloc {

// One of COLMAP's camera models: its id in binary files and databases, its name in text files and
// on the command line, its number of parameters.
struct ColmapCameraModel {
  int id = -1;
  const char* name = "";
  int num_params = 0;
};

// The models COLMAP 3.8 knows (ids 0-10) and RAD_TAN_THIN_PRISM_FISHEYE (11, COLMAP >= 3.11).
const std::vector<ColmapCameraModel>& ColmapCameraModels();
// nullptr if the name / id is not in ColmapCameraModels().
const ColmapCameraModel* FindColmapCameraModel(const std::string& name);
const ColmapCameraModel* FindColmapCameraModel(int id);

// 2^64 - 1: "no 3D point" in images.bin, -1 in images.txt.
constexpr uint64_t kColmapInvalidPoint3DId = ~uint64_t{0};

struct ColmapCamera {
  uint32_t camera_id = 0;
  int32_t model_id = 0;
  uint64_t width = 0, height = 0;
  std::vector<double> params;
};

struct ColmapImage {
  uint32_t image_id = 0;
  std::array<double, 4> qvec{};  // qw, qx, qy, qz of cam_from_world
  std::array<double, 3> tvec{};  // cam_from_world translation
  uint32_t camera_id = 0;
  std::string name;
  std::vector<uint64_t> point3D_ids;  // ids of the observed 3D points: sorted, unique
  uint64_t num_points2D = 0;          // 2D points, with or without a 3D point
  uint64_t num_observations = 0;      // 2D points with a 3D point
};

struct ColmapPoint3D {
  uint64_t point3D_id = 0;
  std::array<double, 3> xyz{};
  uint64_t track_length = 0;
};

// Binary model files (little-endian, as COLMAP writes cameras.bin / images.bin / points3D.bin).
std::vector<ColmapCamera> ReadColmapCamerasBinary(const std::string& path);
std::vector<ColmapImage> ReadColmapImagesBinary(const std::string& path);
std::vector<ColmapPoint3D> ReadColmapPoints3DBinary(const std::string& path);
// The image count in the header of images.bin, without reading the images.
uint64_t ReadColmapNumImagesBinary(const std::string& path);

// Writers of the same files (tests build real models with them). Written atomically.
void WriteColmapCamerasBinary(const std::string& path, const std::vector<ColmapCamera>& cameras);
// `observations[i]` = the point3D id of each 2D point of image i (kColmapInvalidPoint3DId = none).
void WriteColmapImagesBinary(const std::string& path, const std::vector<ColmapImage>& images,
                             const std::vector<std::vector<uint64_t>>& observations);
void WriteColmapPoints3DBinary(const std::string& path, const std::vector<ColmapPoint3D>& points,
                               const std::vector<std::vector<std::pair<uint32_t, uint32_t>>>& tracks);

// Text model files (images.txt: two lines per image; points3D.txt: one line per point).
std::vector<ColmapImage> ReadColmapImagesText(const std::string& path);
std::vector<ColmapPoint3D> ReadColmapPoints3DText(const std::string& path);

// Writes `model_dir`/cameras.txt, images.txt (poses only, no 2D points) and an empty points3D.txt,
// the input of `colmap point_triangulator` for known poses. Numbers with 17 significant digits.
// Throws InvalidArgument for a name with whitespace or an unknown camera model.
void WriteColmapTextModel(const std::string& model_dir, const std::vector<ColmapCamera>& cameras,
                          const std::vector<ColmapImage>& images);

}  // namespace megaloc
