#pragma once

// Position priors of images (GPS, survey or SLAM positions) for pair selection: drop retrieval
// pairs of far-apart images and add the nearest images by position (like COLMAP's spatial
// matcher). All positions of one PositionPriors object are in one metric frame:
//   * kCartesian: x, y, z in metres in any local frame (a CSV `name,x,y,z`, COLMAP CARTESIAN priors);
//   * kEcef: WGS84 latitude/longitude/altitude converted to Earth-centred Earth-fixed metres
//     (a CSV `name,lat,lon,alt`, COLMAP WGS84 priors, EXIF GPS). ECEF distances are straight-line
//     (chord) distances in metres, equal to distances in a local ENU frame.
// Mixing frames is an error (the two cannot be related without a georeference).

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "megaloc/retrieval/pairs_io.h"

namespace megaloc {

enum class PositionFrame { kCartesian, kEcef };

// "cartesian" / "ecef (WGS84)".
std::string PositionFrameToString(PositionFrame frame);

// WGS84 ellipsoid (a = 6378137 m, f = 1 / 298.257223563) geodetic -> ECEF, metres.
// Latitude and longitude in degrees, altitude in metres above the ellipsoid.
Eigen::Vector3d Wgs84ToEcef(double latitude_deg, double longitude_deg, double altitude_m);

// ECEF -> local East-North-Up metres around the reference point (latitude/longitude in degrees).
Eigen::Vector3d EcefToEnu(const Eigen::Vector3d& ecef,
                          double ref_latitude_deg,
                          double ref_longitude_deg,
                          double ref_altitude_m);

class PositionPriors {
 public:
  // Adds or replaces the position of `name` (metres in `frame`). Throws InvalidArgument when the
  // frame differs from that of the positions already added (naming `source`) or a value is not
  // finite.
  void Set(const std::string& name,
           const Eigen::Vector3d& position,
           PositionFrame frame,
           const std::string& source = "");
  // Adds every prior of `other` (same frame rule; `other` wins on a name in both).
  void Merge(const PositionPriors& other);

  // nullptr if `name` has no prior.
  const Eigen::Vector3d* Find(const std::string& name) const;
  size_t Size() const { return positions_.size(); }
  bool Empty() const { return positions_.empty(); }
  PositionFrame Frame() const { return frame_; }
  const std::map<std::string, Eigen::Vector3d>& Positions() const { return positions_; }

 private:
  std::map<std::string, Eigen::Vector3d> positions_;
  PositionFrame frame_ = PositionFrame::kCartesian;
};

// How ReadPositionPriorsCsv interprets the three numbers.
enum class CsvCoordinates {
  kAuto,       // from the header line (`name,x,y,z` or `name,lat,lon,alt`); cartesian without one
  kCartesian,  // x, y, z in metres
  kWgs84,      // latitude, longitude (degrees), altitude (metres)
};
// "auto" / "cartesian" / "wgs84"; FromString throws InvalidArgument listing the valid names.
CsvCoordinates CsvCoordinatesFromString(const std::string& name);

// Reads `name,x,y,z` or `name,lat,lon,alt` lines (comma-separated, fields trimmed; empty lines and
// lines starting with '#' skipped; an optional header line whose first field is `name`; header
// columns x,y,z or lat,lon,alt / latitude,longitude,altitude). Throws IoError when the file cannot
// be read and FormatError naming file:line for a malformed line, a header that contradicts
// `coordinates`, a latitude outside [-90, 90] or a duplicate name.
PositionPriors ReadPositionPriorsCsv(const std::string& path,
                                     CsvCoordinates coordinates = CsvCoordinates::kAuto);

// True if this build reads EXIF GPS (compiled with MEGALOC_EXIV2_ENABLED, Debian's libexiv2-dev).
bool IsExifGpsAvailable();

struct ExifGpsStats {
  int64_t num_images = 0;
  int64_t num_with_gps = 0;
  std::vector<std::string> unreadable;  // files Exiv2 could not open or parse (no prior, no error)
};

// GPS position (EXIF GPSLatitude/GPSLongitude with their N/S/E/W references, GPSAltitude with
// GPSAltitudeRef; altitude 0 when absent) of every image `image_root/name` that has one, as ECEF.
// Images without GPS get no prior. Throws std::runtime_error in a build without Exiv2.
PositionPriors ReadExifPositionPriors(const std::string& image_root,
                                      const std::vector<std::string>& names,
                                      ExifGpsStats* stats = nullptr);

// Euclidean distance between the priors of a and b; negative if either has none.
double PriorDistance(const PositionPriors& priors, const std::string& a, const std::string& b);

// COLMAP's spatial matcher on `names`: every image that has a prior is paired with its
// `num_neighbors` nearest images (by prior; exact, ties by name order) among the other images of
// `names` that have one, no farther than max_distance metres (< 0 = unlimited). Oriented (image,
// neighbour), nearest first, images in name order. O(N^2) distance evaluations (doubles).
std::vector<ImagePair> SpatialPairs(const std::vector<std::string>& names,
                                    const PositionPriors& priors,
                                    int num_neighbors,
                                    double max_distance = -1.0);

}  // namespace megaloc
