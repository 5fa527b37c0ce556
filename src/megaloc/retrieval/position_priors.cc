#include "megaloc/retrieval/position_priors.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <set>
#include <utility>

#ifdef MEGALOC_EXIV2_ENABLED
// Exiv2 0.27 returns std::auto_ptr (deprecated); 0.28 std::unique_ptr. `auto` takes either.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include <exiv2/exiv2.hpp>
#pragma GCC diagnostic pop
#endif

#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/string_utils.h"

namespace megaloc {
namespace {

constexpr double kWgs84A = 6378137.0;
constexpr double kWgs84F = 1.0 / 298.257223563;
constexpr double kPi = 3.14159265358979323846;

double Radians(double degrees) { return degrees * kPi / 180.0; }

}  // namespace

std::string PositionFrameToString(PositionFrame frame) {
  return frame == PositionFrame::kCartesian ? "cartesian" : "ecef (WGS84)";
}

Eigen::Vector3d Wgs84ToEcef(double latitude_deg, double longitude_deg, double altitude_m) {
  const double e2 = kWgs84F * (2.0 - kWgs84F);
  const double lat = Radians(latitude_deg);
  const double lon = Radians(longitude_deg);
  const double sin_lat = std::sin(lat);
  const double n = kWgs84A / std::sqrt(1.0 - e2 * sin_lat * sin_lat);
  return Eigen::Vector3d((n + altitude_m) * std::cos(lat) * std::cos(lon),
                         (n + altitude_m) * std::cos(lat) * std::sin(lon),
                         (n * (1.0 - e2) + altitude_m) * sin_lat);
}

Eigen::Vector3d EcefToEnu(const Eigen::Vector3d& ecef,
                          double ref_latitude_deg,
                          double ref_longitude_deg,
                          double ref_altitude_m) {
  const Eigen::Vector3d d =
      ecef - Wgs84ToEcef(ref_latitude_deg, ref_longitude_deg, ref_altitude_m);
  const double lat = Radians(ref_latitude_deg);
  const double lon = Radians(ref_longitude_deg);
  const double sl = std::sin(lat), cl = std::cos(lat), so = std::sin(lon), co = std::cos(lon);
  return Eigen::Vector3d(-so * d.x() + co * d.y(),
                         -sl * co * d.x() - sl * so * d.y() + cl * d.z(),
                         cl * co * d.x() + cl * so * d.y() + sl * d.z());
}

void PositionPriors::Set(const std::string& name,
                         const Eigen::Vector3d& position,
                         PositionFrame frame,
                         const std::string& source) {
  const std::string where = source.empty() ? "" : source + ": ";
  if (!positions_.empty() && frame != frame_) {
    MEGALOC_THROW(InvalidArgument, where << "position prior of '" << name << "' is "
                                         << PositionFrameToString(frame)
                                         << " but the priors read before are "
                                         << PositionFrameToString(frame_)
                                         << " (the two frames cannot be mixed)");
  }
  if (!position.allFinite()) {
    MEGALOC_THROW(InvalidArgument, where << "position prior of '" << name << "' is not finite");
  }
  frame_ = frame;
  positions_[name] = position;
}

void PositionPriors::Merge(const PositionPriors& other) {
  for (const auto& [name, position] : other.positions_) Set(name, position, other.frame_);
}

const Eigen::Vector3d* PositionPriors::Find(const std::string& name) const {
  auto it = positions_.find(name);
  return it == positions_.end() ? nullptr : &it->second;
}

CsvCoordinates CsvCoordinatesFromString(const std::string& name) {
  if (name == "auto") return CsvCoordinates::kAuto;
  if (name == "cartesian") return CsvCoordinates::kCartesian;
  if (name == "wgs84") return CsvCoordinates::kWgs84;
  MEGALOC_THROW(InvalidArgument,
                "Unknown prior coordinates '" << name << "' (valid: auto, cartesian, wgs84)");
}

PositionPriors ReadPositionPriorsCsv(const std::string& path, CsvCoordinates coordinates) {
  if (!FileExists(path)) MEGALOC_THROW(IoError, path << ": position prior file does not exist");
  const std::string text = ReadFileToString(path);
  PositionPriors priors;
  CsvCoordinates mode = coordinates;
  bool first_content_line = true;
  size_t start = 0;
  int line_number = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    ++line_number;
    const std::string line = Trim(text.substr(start, end - start));
    start = end + 1;
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> fields = Split(line, ',');
    for (auto& field : fields) field = Trim(field);
    if (fields.size() != 4) {
      MEGALOC_THROW(FormatError, path << ":" << line_number
                                      << ": expected 4 comma-separated fields (name,x,y,z or "
                                         "name,lat,lon,alt), got "
                                      << fields.size() << ": '" << line << "'");
    }
    if (first_content_line && ToLower(fields[0]) == "name") {
      first_content_line = false;
      const std::string columns =
          ToLower(fields[1]) + "," + ToLower(fields[2]) + "," + ToLower(fields[3]);
      CsvCoordinates header_mode;
      if (columns == "x,y,z") {
        header_mode = CsvCoordinates::kCartesian;
      } else if (columns == "lat,lon,alt" || columns == "latitude,longitude,altitude") {
        header_mode = CsvCoordinates::kWgs84;
      } else {
        MEGALOC_THROW(FormatError, path << ":" << line_number << ": unknown header columns '"
                                        << columns << "' (expected x,y,z or lat,lon,alt)");
      }
      if (mode != CsvCoordinates::kAuto && mode != header_mode) {
        MEGALOC_THROW(FormatError, path << ":" << line_number << ": the header says '" << columns
                                        << "' but the coordinates were given as "
                                        << (mode == CsvCoordinates::kWgs84 ? "wgs84" : "cartesian"));
      }
      mode = header_mode;
      continue;
    }
    first_content_line = false;
    if (mode == CsvCoordinates::kAuto) mode = CsvCoordinates::kCartesian;
    double v[3];
    for (int i = 0; i < 3; ++i) {
      if (!ParseFiniteDouble(fields[i + 1], &v[i])) {
        MEGALOC_THROW(FormatError, path << ":" << line_number << ": invalid number '"
                                        << fields[i + 1] << "' for '" << fields[0] << "'");
      }
    }
    CheckPairName(fields[0], path + ":" + std::to_string(line_number));
    if (priors.Find(fields[0]) != nullptr) {
      MEGALOC_THROW(FormatError, path << ":" << line_number << ": duplicate image '" << fields[0] << "'");
    }
    if (mode == CsvCoordinates::kWgs84) {
      if (v[0] < -90.0 || v[0] > 90.0) {
        MEGALOC_THROW(FormatError, path << ":" << line_number << ": latitude " << v[0]
                                        << " of '" << fields[0] << "' is outside [-90, 90]");
      }
      priors.Set(fields[0], Wgs84ToEcef(v[0], v[1], v[2]), PositionFrame::kEcef, path);
    } else {
      priors.Set(fields[0], Eigen::Vector3d(v[0], v[1], v[2]), PositionFrame::kCartesian, path);
    }
  }
  return priors;
}

bool IsExifGpsAvailable() {
#ifdef MEGALOC_EXIV2_ENABLED
  return true;
#else
  return false;
#endif
}

#ifdef MEGALOC_EXIV2_ENABLED
namespace {

// Degrees from the three EXIF rationals (degrees, minutes, seconds); false if malformed.
bool ExifDegrees(const Exiv2::Exifdatum& datum, double* degrees) {
  if (datum.count() < 3) return false;
  double parts[3];
  for (long i = 0; i < 3; ++i) {
    const Exiv2::Rational r = datum.toRational(i);
    if (r.second == 0) return false;
    parts[i] = static_cast<double>(r.first) / r.second;
  }
  *degrees = parts[0] + parts[1] / 60.0 + parts[2] / 3600.0;
  return std::isfinite(*degrees);
}

}  // namespace
#endif

PositionPriors ReadExifPositionPriors(const std::string& image_root,
                                      const std::vector<std::string>& names,
                                      ExifGpsStats* stats) {
  ExifGpsStats local;
  PositionPriors priors;
#ifdef MEGALOC_EXIV2_ENABLED
  for (const std::string& name : names) {
    ++local.num_images;
    const std::string path = JoinPaths(image_root, name);
    try {
      auto image = Exiv2::ImageFactory::open(path);
      image->readMetadata();
      const Exiv2::ExifData& exif = image->exifData();
      auto lat = exif.findKey(Exiv2::ExifKey("Exif.GPSInfo.GPSLatitude"));
      auto lat_ref = exif.findKey(Exiv2::ExifKey("Exif.GPSInfo.GPSLatitudeRef"));
      auto lon = exif.findKey(Exiv2::ExifKey("Exif.GPSInfo.GPSLongitude"));
      auto lon_ref = exif.findKey(Exiv2::ExifKey("Exif.GPSInfo.GPSLongitudeRef"));
      if (lat == exif.end() || lon == exif.end()) continue;
      double latitude = 0.0, longitude = 0.0, altitude = 0.0;
      if (!ExifDegrees(*lat, &latitude) || !ExifDegrees(*lon, &longitude)) continue;
      if (lat_ref != exif.end() && lat_ref->toString().rfind('S', 0) == 0) latitude = -latitude;
      if (lon_ref != exif.end() && lon_ref->toString().rfind('W', 0) == 0) longitude = -longitude;
      auto alt = exif.findKey(Exiv2::ExifKey("Exif.GPSInfo.GPSAltitude"));
      if (alt != exif.end() && alt->count() >= 1) {
        const Exiv2::Rational r = alt->toRational(0);
        if (r.second != 0) altitude = static_cast<double>(r.first) / r.second;
        auto alt_ref = exif.findKey(Exiv2::ExifKey("Exif.GPSInfo.GPSAltitudeRef"));
        if (alt_ref != exif.end() && alt_ref->count() >= 1 && alt_ref->toFloat(0) == 1.0f) {  // toFloat: in Exiv2 0.27 and 0.28 (toLong is gone in 0.28)
          altitude = -altitude;  // below sea level
        }
      }
      if (latitude < -90.0 || latitude > 90.0) continue;
      priors.Set(name, Wgs84ToEcef(latitude, longitude, altitude), PositionFrame::kEcef, path);
      ++local.num_with_gps;
    } catch (const std::exception&) {
      local.unreadable.push_back(name);
    }
  }
#else
  (void)image_root;
  (void)names;
  throw std::runtime_error(
      "Reading GPS from EXIF requires Exiv2, but megaloc was built without it (install "
      "libexiv2-dev and reconfigure with -DMEGALOC_EXIV2_ENABLED=ON)");
#endif
  if (stats != nullptr) *stats = local;
  return priors;
}

double PriorDistance(const PositionPriors& priors, const std::string& a, const std::string& b) {
  const Eigen::Vector3d* pa = priors.Find(a);
  const Eigen::Vector3d* pb = priors.Find(b);
  if (pa == nullptr || pb == nullptr) return -1.0;
  return (*pa - *pb).norm();
}

std::vector<ImagePair> SpatialPairs(const std::vector<std::string>& names,
                                    const PositionPriors& priors,
                                    int num_neighbors,
                                    double max_distance) {
  std::vector<ImagePair> pairs;
  if (num_neighbors <= 0) return pairs;
  std::vector<std::string> with_prior;
  for (const std::string& name : names) {
    if (priors.Find(name) != nullptr) with_prior.push_back(name);
  }
  std::sort(with_prior.begin(), with_prior.end());
  with_prior.erase(std::unique(with_prior.begin(), with_prior.end()), with_prior.end());
  const int64_t n = static_cast<int64_t>(with_prior.size());
  std::vector<Eigen::Vector3d> positions(n);
  for (int64_t i = 0; i < n; ++i) positions[i] = *priors.Find(with_prior[i]);
  const int64_t k = std::min<int64_t>(num_neighbors, n - 1);
  std::vector<std::pair<double, int64_t>> candidates;
  for (int64_t i = 0; i < n; ++i) {
    candidates.clear();
    for (int64_t j = 0; j < n; ++j) {
      if (j == i) continue;
      const double d = (positions[i] - positions[j]).squaredNorm();
      if (max_distance >= 0.0 && d > max_distance * max_distance) continue;
      candidates.emplace_back(d, j);
    }
    const int64_t take = std::min<int64_t>(k, static_cast<int64_t>(candidates.size()));
    std::partial_sort(candidates.begin(), candidates.begin() + take, candidates.end());
    for (int64_t r = 0; r < take; ++r) pairs.push_back({with_prior[i], with_prior[candidates[r].second]});
  }
  return pairs;
}

}  // namespace megaloc
