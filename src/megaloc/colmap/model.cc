#include "megaloc/colmap/model.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/string_utils.h"

namespace megaloc {

const std::vector<ColmapCameraModel>& ColmapCameraModels() {
  static const std::vector<ColmapCameraModel> kModels = {
      {0, "SIMPLE_PINHOLE", 3}, {1, "PINHOLE", 4},         {2, "SIMPLE_RADIAL", 4},
      {3, "RADIAL", 5},         {4, "OPENCV", 8},          {5, "OPENCV_FISHEYE", 8},
      {6, "FULL_OPENCV", 12},   {7, "FOV", 5},             {8, "SIMPLE_RADIAL_FISHEYE", 4},
      {9, "RADIAL_FISHEYE", 5}, {10, "THIN_PRISM_FISHEYE", 12}, {11, "RAD_TAN_THIN_PRISM_FISHEYE", 16}};
  return kModels;
}

const ColmapCameraModel* FindColmapCameraModel(const std::string& name) {
  for (const ColmapCameraModel& model : ColmapCameraModels()) {
    if (name == model.name) return &model;
  }
  return nullptr;
}

const ColmapCameraModel* FindColmapCameraModel(int id) {
  for (const ColmapCameraModel& model : ColmapCameraModels()) {
    if (id == model.id) return &model;
  }
  return nullptr;
}

namespace {

// ColmapImage::point3D_ids holds each observed 3D point once, ascending.
void SortUniquePoint3DIds(ColmapImage* image) {
  std::sort(image->point3D_ids.begin(), image->point3D_ids.end());
  image->point3D_ids.erase(std::unique(image->point3D_ids.begin(), image->point3D_ids.end()),
                           image->point3D_ids.end());
}

class BinaryReader {
 public:
  explicit BinaryReader(const std::string& path) : path_(path) {
    data_ = ReadFileToString(path);
  }
  template <typename T>
  T Read() {
    if (pos_ + sizeof(T) > data_.size()) {
      MEGALOC_THROW(FormatError, path_ << ": truncated COLMAP binary file (at byte " << pos_ << " of "
                                       << data_.size() << ")");
    }
    T v;
    std::memcpy(&v, data_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string ReadString() {
    const size_t end = data_.find('\0', pos_);
    if (end == std::string::npos) {
      MEGALOC_THROW(FormatError, path_ << ": truncated COLMAP binary file (unterminated name)");
    }
    std::string s = data_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return s;
  }
  void CheckCount(uint64_t count, size_t min_bytes_each) const {
    if (count > (data_.size() - pos_) / std::max<size_t>(1, min_bytes_each)) {
      MEGALOC_THROW(FormatError, path_ << ": count " << count << " exceeds the file size (corrupt file)");
    }
  }
  void CheckEnd() const {
    if (pos_ != data_.size()) {
      MEGALOC_THROW(FormatError, path_ << ": " << (data_.size() - pos_) << " trailing bytes");
    }
  }

 private:
  std::string path_;
  std::string data_;
  size_t pos_ = 0;
};

class BinaryWriter {
 public:
  template <typename T>
  void Write(const T& v) {
    out_.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  void WriteString(const std::string& s) { out_.append(s.c_str(), s.size() + 1); }
  const std::string& data() const { return out_; }

 private:
  std::string out_;
};


}  // namespace

std::vector<ColmapCamera> ReadColmapCamerasBinary(const std::string& path) {
  BinaryReader r(path);
  const uint64_t n = r.Read<uint64_t>();
  r.CheckCount(n, 24);
  std::vector<ColmapCamera> cams(n);
  for (auto& c : cams) {
    c.camera_id = r.Read<uint32_t>();
    c.model_id = r.Read<int32_t>();
    c.width = r.Read<uint64_t>();
    c.height = r.Read<uint64_t>();
    const ColmapCameraModel* model = FindColmapCameraModel(c.model_id);
    if (model == nullptr) MEGALOC_THROW(FormatError, path << ": unknown camera model id " << c.model_id);
    c.params.resize(model->num_params);
    for (double& p : c.params) p = r.Read<double>();
  }
  r.CheckEnd();
  return cams;
}

std::vector<ColmapImage> ReadColmapImagesBinary(const std::string& path) {
  BinaryReader r(path);
  const uint64_t n = r.Read<uint64_t>();
  r.CheckCount(n, 4 + 56 + 4 + 1 + 8);
  std::vector<ColmapImage> images(n);
  for (auto& im : images) {
    im.image_id = r.Read<uint32_t>();
    for (double& q : im.qvec) q = r.Read<double>();
    for (double& t : im.tvec) t = r.Read<double>();
    im.camera_id = r.Read<uint32_t>();
    im.name = r.ReadString();
    im.num_points2D = r.Read<uint64_t>();
    r.CheckCount(im.num_points2D, 24);
    for (uint64_t k = 0; k < im.num_points2D; ++k) {
      r.Read<double>();
      r.Read<double>();
      const uint64_t id = r.Read<uint64_t>();
      if (id != kColmapInvalidPoint3DId) {
        im.point3D_ids.push_back(id);
        ++im.num_observations;
      }
    }
    SortUniquePoint3DIds(&im);
  }
  r.CheckEnd();
  return images;
}

std::vector<ColmapPoint3D> ReadColmapPoints3DBinary(const std::string& path) {
  BinaryReader r(path);
  const uint64_t n = r.Read<uint64_t>();
  r.CheckCount(n, 8 + 24 + 3 + 8 + 8);
  std::vector<ColmapPoint3D> points(n);
  for (auto& p : points) {
    p.point3D_id = r.Read<uint64_t>();
    for (double& x : p.xyz) x = r.Read<double>();
    r.Read<uint8_t>();
    r.Read<uint8_t>();
    r.Read<uint8_t>();
    r.Read<double>();
    p.track_length = r.Read<uint64_t>();
    r.CheckCount(p.track_length, 8);
    for (uint64_t k = 0; k < p.track_length; ++k) {
      r.Read<uint32_t>();
      r.Read<uint32_t>();
    }
  }
  r.CheckEnd();
  return points;
}

void WriteColmapCamerasBinary(const std::string& path, const std::vector<ColmapCamera>& cameras) {
  BinaryWriter w;
  w.Write<uint64_t>(cameras.size());
  for (const auto& c : cameras) {
    w.Write(c.camera_id);
    w.Write(c.model_id);
    w.Write(c.width);
    w.Write(c.height);
    for (double p : c.params) w.Write(p);
  }
  WriteFileAtomically(path, w.data());
}

void WriteColmapImagesBinary(const std::string& path, const std::vector<ColmapImage>& images,
                             const std::vector<std::vector<uint64_t>>& observations) {
  MEGALOC_CHECK_EQ(images.size(), observations.size());
  BinaryWriter w;
  w.Write<uint64_t>(images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    const auto& im = images[i];
    w.Write(im.image_id);
    for (double q : im.qvec) w.Write(q);
    for (double t : im.tvec) w.Write(t);
    w.Write(im.camera_id);
    w.WriteString(im.name);
    w.Write<uint64_t>(observations[i].size());
    for (size_t k = 0; k < observations[i].size(); ++k) {
      w.Write<double>(static_cast<double>(k));
      w.Write<double>(0.5);
      w.Write<uint64_t>(observations[i][k]);
    }
  }
  WriteFileAtomically(path, w.data());
}

void WriteColmapPoints3DBinary(const std::string& path, const std::vector<ColmapPoint3D>& points,
                               const std::vector<std::vector<std::pair<uint32_t, uint32_t>>>& tracks) {
  MEGALOC_CHECK_EQ(points.size(), tracks.size());
  BinaryWriter w;
  w.Write<uint64_t>(points.size());
  for (size_t i = 0; i < points.size(); ++i) {
    w.Write(points[i].point3D_id);
    for (double x : points[i].xyz) w.Write(x);
    w.Write<uint8_t>(128);
    w.Write<uint8_t>(128);
    w.Write<uint8_t>(128);
    w.Write<double>(0.5);
    w.Write<uint64_t>(tracks[i].size());
    for (const auto& [im, pt] : tracks[i]) {
      w.Write(im);
      w.Write(pt);
    }
  }
  WriteFileAtomically(path, w.data());
}

uint64_t ReadColmapNumImagesBinary(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) MEGALOC_THROW(IoError, path << ": cannot open COLMAP images.bin");
  uint64_t n = 0;
  if (!in.read(reinterpret_cast<char*>(&n), sizeof(n))) {
    MEGALOC_THROW(FormatError, path << ": truncated COLMAP model (no image count)");
  }
  return n;
}

namespace {

// Parses a finite double of a text model field; FormatError naming file and line otherwise.
double ParseModelDouble(const std::string& field, const std::string& path, int line_number) {
  double value = 0.0;
  if (!ParseFiniteDouble(field, &value)) {
    MEGALOC_THROW(FormatError, path << ":" << line_number << ": '" << field << "' is not a finite number");
  }
  return value;
}

uint64_t ParseModelId(const std::string& field, const std::string& path, int line_number) {
  int64_t value = 0;
  if (!ParseInt64(field, &value) || value < 0) {
    MEGALOC_THROW(FormatError, path << ":" << line_number << ": '" << field << "' is not an id");
  }
  return static_cast<uint64_t>(value);
}

std::string FormatG17(double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.17g", value);
  return buffer;
}

}  // namespace

std::vector<ColmapImage> ReadColmapImagesText(const std::string& path) {
  std::ifstream file(path);
  if (!file) MEGALOC_THROW(IoError, path << ": cannot open COLMAP images.txt");
  std::vector<ColmapImage> images;
  std::string line;
  int line_number = 0;
  while (std::getline(file, line)) {
    ++line_number;
    if (Trim(line).empty() || line[0] == '#') continue;
    const std::vector<std::string> fields = SplitWhitespace(line);
    if (fields.size() != 10) {
      MEGALOC_THROW(FormatError, path << ":" << line_number
                                      << ": malformed image line (expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME)");
    }
    ColmapImage image;
    image.image_id = static_cast<uint32_t>(ParseModelId(fields[0], path, line_number));
    for (int i = 0; i < 4; ++i) image.qvec[i] = ParseModelDouble(fields[1 + i], path, line_number);
    for (int i = 0; i < 3; ++i) image.tvec[i] = ParseModelDouble(fields[5 + i], path, line_number);
    image.camera_id = static_cast<uint32_t>(ParseModelId(fields[8], path, line_number));
    image.name = fields[9];
    std::string points;
    if (!std::getline(file, points)) {
      MEGALOC_THROW(FormatError, path << ":" << line_number << ": image " << image.name
                                      << " has no POINTS2D line (truncated file)");
    }
    ++line_number;
    const std::vector<std::string> p = SplitWhitespace(points);
    if (p.size() % 3 != 0) {
      MEGALOC_THROW(FormatError, path << ":" << line_number << ": POINTS2D is not a list of (X, Y, POINT3D_ID)");
    }
    image.num_points2D = p.size() / 3;
    for (size_t i = 2; i < p.size(); i += 3) {
      if (p[i] == "-1") continue;
      image.point3D_ids.push_back(ParseModelId(p[i], path, line_number));
      ++image.num_observations;
    }
    SortUniquePoint3DIds(&image);
    images.push_back(std::move(image));
  }
  return images;
}

std::vector<ColmapPoint3D> ReadColmapPoints3DText(const std::string& path) {
  std::ifstream file(path);
  if (!file) MEGALOC_THROW(IoError, path << ": cannot open COLMAP points3D.txt");
  std::vector<ColmapPoint3D> points;
  std::string line;
  int line_number = 0;
  while (std::getline(file, line)) {
    ++line_number;
    if (Trim(line).empty() || line[0] == '#') continue;
    const std::vector<std::string> fields = SplitWhitespace(line);
    if (fields.size() < 8 || (fields.size() - 8) % 2 != 0) {
      MEGALOC_THROW(FormatError, path << ":" << line_number
                                      << ": malformed point line (expected POINT3D_ID X Y Z R G B ERROR TRACK[])");
    }
    ColmapPoint3D point;
    point.point3D_id = ParseModelId(fields[0], path, line_number);
    for (int i = 0; i < 3; ++i) point.xyz[i] = ParseModelDouble(fields[1 + i], path, line_number);
    point.track_length = (fields.size() - 8) / 2;
    points.push_back(point);
  }
  return points;
}

void WriteColmapTextModel(const std::string& model_dir, const std::vector<ColmapCamera>& cameras,
                          const std::vector<ColmapImage>& images) {
  std::ostringstream cameras_txt;
  cameras_txt << "# Camera list with one line of data per camera:\n"
              << "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n"
              << "# Number of cameras: " << cameras.size() << "\n";
  for (const ColmapCamera& camera : cameras) {
    const ColmapCameraModel* model = FindColmapCameraModel(camera.model_id);
    if (model == nullptr) {
      MEGALOC_THROW(InvalidArgument, "camera " << camera.camera_id << ": unknown COLMAP camera model id " << camera.model_id);
    }
    if (static_cast<int>(camera.params.size()) != model->num_params) {
      MEGALOC_THROW(InvalidArgument, "camera " << camera.camera_id << ": " << model->name << " has "
                                               << model->num_params << " parameters, got " << camera.params.size());
    }
    cameras_txt << camera.camera_id << " " << model->name << " " << camera.width << " " << camera.height;
    for (double p : camera.params) cameras_txt << " " << FormatG17(p);
    cameras_txt << "\n";
  }
  std::ostringstream images_txt;
  images_txt << "# Image list with two lines of data per image:\n"
             << "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n"
             << "#   POINTS2D[] as (X, Y, POINT3D_ID)\n"
             << "# Number of images: " << images.size() << ", mean observations per image: 0\n";
  for (const ColmapImage& image : images) {
    if (image.name.empty() || HasWhitespace(image.name)) {
      MEGALOC_THROW(InvalidArgument, "image name '" << image.name << "' is empty or has whitespace: COLMAP's "
                                                       "text format cannot hold it");
    }
    images_txt << image.image_id;
    for (double q : image.qvec) images_txt << " " << FormatG17(q);
    for (double t : image.tvec) images_txt << " " << FormatG17(t);
    images_txt << " " << image.camera_id << " " << image.name << "\n\n";
  }
  CreateDirectories(model_dir);
  WriteFileAtomically(JoinPaths(model_dir, "cameras.txt"), cameras_txt.str());
  WriteFileAtomically(JoinPaths(model_dir, "images.txt"), images_txt.str());
  WriteFileAtomically(JoinPaths(model_dir, "points3D.txt"),
                      "# 3D point list with one line of data per point:\n"
                      "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)\n"
                      "# Number of points: 0, mean track length: 0\n");
}

}  // namespace megaloc
