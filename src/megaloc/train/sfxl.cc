#include "megaloc/train/datasets.h"
#include "megaloc/train/datasets_internal.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <numeric>
#include <set>
#include <sstream>
#include <unordered_map>

#include <Eigen/Core>
#include <Eigen/SVD>

#include "megaloc/util/csv.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/string_utils.h"

namespace megaloc {

namespace fs = std::filesystem;
using namespace datasets_internal;

// =============================================================================================
// SF-XL + EigenPlaces

SfxlPanorama ParseSfxlName(const std::string& path) {
  const std::string name = fs::path(path).filename().string();
  const std::vector<std::string> f = Split(name, '@');
  if (f.size() < 11) {
    MEGALOC_THROW(FormatError, path << ": not an SF-XL file name (@E@N@zone@letter@lat@lon@pano@tile@"
                                       "heading@pitch@...)");
  }
  SfxlPanorama p;
  p.path = path;
  p.easting = ParseDouble(f[1], path);
  p.northing = ParseDouble(f[2], path);
  p.heading_deg = ParseDouble(f[9], path);
  return p;
}

bool EigenPlacesOptions::Check() const {
  CHECK_OPTION_GT(cell_size_m, 0.0);
  CHECK_OPTION_GT(groups_per_axis, 0);
  CHECK_OPTION_GT(focal_distance_m, 0.0);
  CHECK_OPTION_GT(min_images_per_class, 0);
  CHECK_OPTION_GT(iterations_per_group, 0);
  return true;
}

EigenPlacesDataset BuildEigenPlaces(std::vector<SfxlPanorama> panoramas,
                                    const EigenPlacesOptions& options) {
  EigenPlacesDataset ds;
  ds.panoramas = std::move(panoramas);
  const double M = options.cell_size_m;
  const int N = options.groups_per_axis;
  std::map<std::pair<int64_t, int64_t>, std::vector<int>> cells;
  for (size_t i = 0; i < ds.panoramas.size(); ++i) {
    const int64_t ce = static_cast<int64_t>(std::floor(ds.panoramas[i].easting / M));
    const int64_t cn = static_cast<int64_t>(std::floor(ds.panoramas[i].northing / M));
    cells[{ce, cn}].push_back(static_cast<int>(i));
  }
  ds.groups.assign(N * N, {});
  auto mod = [](int64_t a, int64_t b) { return ((a % b) + b) % b; };
  for (const auto& [cell, members] : cells) {
    if (static_cast<int>(members.size()) < options.min_images_per_class) continue;
    const int ge = static_cast<int>(mod(cell.first, N));
    const int gn = static_cast<int>(mod(cell.second, N));
    EigenPlacesClass cls;
    cls.panoramas = members;
    double mu[2] = {0, 0};
    for (int m : members) {
      mu[0] += ds.panoramas[m].easting;
      mu[1] += ds.panoramas[m].northing;
    }
    mu[0] /= members.size();
    mu[1] /= members.size();
    Eigen::MatrixXd x(2, members.size());  // (utm - mu)^T
    for (size_t j = 0; j < members.size(); ++j) {
      x(0, j) = ds.panoramas[members[j]].easting - mu[0];
      x(1, j) = ds.panoramas[members[j]].northing - mu[1];
    }
    // Full U (2 x 2, as numpy's svd): a thin U has one column when the class has one image.
    Eigen::JacobiSVD<Eigen::MatrixXd> svd(x, Eigen::ComputeFullU);
    const Eigen::Vector2d u1 = svd.matrixU().col(1);  // second principal axis (across the street)
    cls.focal_lateral[0] = mu[0] + options.focal_distance_m * u1(0);
    cls.focal_lateral[1] = mu[1] + options.focal_distance_m * u1(1);
    // Frontal: the same axis rotated by +90 degrees (EigenPlaces' rotate_2d_vector(.., 90)), i.e.
    // along the street. (Which side is arbitrary, as the sign of the SVD's axis.)
    cls.focal_frontal[0] = mu[0] - options.focal_distance_m * u1(1);
    cls.focal_frontal[1] = mu[1] + options.focal_distance_m * u1(0);
    ds.groups[ge * N + gn].push_back(std::move(cls));
  }
  return ds;
}

EigenPlacesDataset LoadSfxlEigenPlaces(const std::string& root, const EigenPlacesOptions& options) {
  const std::string dir = JoinPaths(JoinPaths(JoinPaths(root, "raw"), "train"), "panoramas");
  if (!DirectoryExists(dir)) MEGALOC_THROW(IoError, dir << ": SF-XL panorama folder missing");
  std::vector<SfxlPanorama> panos;
  for (const std::string& f : ListFiles(dir, true, {".jpg", ".jpeg", ".png"})) {
    panos.push_back(ParseSfxlName(f));
  }
  if (panos.empty()) MEGALOC_THROW(IoError, dir << ": no panoramas");
  return BuildEigenPlaces(std::move(panos), options);
}

double BearingDeg(const double from[2], const double to[2]) {
  double b = std::atan2(to[0] - from[0], to[1] - from[1]) * 180.0 / M_PI;
  b = std::fmod(b, 360.0);
  if (b < 0) b += 360.0;
  return b;
}

int PanoramaCropX0(double bearing_deg, double heading_deg, int width, int crop_width) {
  const int crop_off = static_cast<int>(bearing_deg / 360.0 * width) % width;
  double h = std::fmod(180.0 - heading_deg, 360.0);
  if (h < 0) h += 360.0;
  const int yaw_off = static_cast<int>(h / 360.0 * width);
  return static_cast<int>((((static_cast<int64_t>(yaw_off) + crop_off - crop_width / 2) % width) + width) % width);
}

namespace {

class EigenPlacesSampler : public PlaceSampler {
 public:
  EigenPlacesSampler(EigenPlacesDataset ds, const EigenPlacesOptions& eigen,
                     const SamplerOptions& options)
      : ds_(std::move(ds)), eigen_(eigen), options_(options) {
    for (size_t g = 0; g < ds_.groups.size(); ++g) {
      if (static_cast<int>(ds_.groups[g].size()) >= options_.places_per_batch) usable_.push_back(g);
    }
    if (usable_.empty()) {
      MEGALOC_THROW(InvalidArgument, "SF-XL/EigenPlaces: no group has places_per_batch = "
                                         << options_.places_per_batch << " classes with >= "
                                         << eigen_.min_images_per_class << " panoramas");
    }
    for (const auto& g : ds_.groups) {
      for (const auto& c : g) {
        MEGALOC_CHECK_GE(static_cast<int>(c.panoramas.size()), options_.images_per_place);
      }
    }
  }
  std::string Name() const override { return "sfxl"; }
  int NumSubBatches() const override { return 2; }
  std::string Summary() const override {
    size_t classes = 0;
    for (const auto& g : ds_.groups) classes += g.size();
    std::ostringstream s;
    s << "SF-XL/EigenPlaces: " << ds_.panoramas.size() << " panoramas, " << classes << " classes, "
      << usable_.size() << " usable groups";
    return s.str();
  }
  int GroupOf(int64_t iteration) const {
    return static_cast<int>(usable_[(iteration / eigen_.iterations_per_group) % usable_.size()]);
  }
  std::vector<SubBatchSpec> Sample(int64_t iteration) const override {
    const auto& group = ds_.groups[GroupOf(iteration)];
    std::vector<SubBatchSpec> out;
    for (int lateral = 1; lateral >= 0; --lateral) {
      std::mt19937_64 rng =
          MakeRng(options_.seed, lateral ? kStreamEigenLateral : kStreamEigenFrontal, iteration);
      SubBatchSpec sb;
      sb.source = lateral ? "sfxl_lateral" : "sfxl_frontal";
      for (int c : SampleWithoutReplacement(static_cast<int>(group.size()), options_.places_per_batch, rng)) {
        const EigenPlacesClass& cls = group[c];
        const double* focal = lateral ? cls.focal_lateral : cls.focal_frontal;
        for (int k : SampleWithoutReplacement(static_cast<int>(cls.panoramas.size()),
                                              options_.images_per_place, rng)) {
          const SfxlPanorama& p = ds_.panoramas[cls.panoramas[k]];
          const double o[2] = {p.easting, p.northing};
          ImageRef ref;
          ref.path = p.path;
          ref.panorama_crop = true;
          ref.crop_bearing_deg = BearingDeg(o, focal);
          ref.pano_heading_deg = p.heading_deg;
          sb.images.push_back(ref);
          sb.labels.push_back(c);
        }
      }
      out.push_back(std::move(sb));
    }
    return out;
  }

 private:
  EigenPlacesDataset ds_;
  EigenPlacesOptions eigen_;
  SamplerOptions options_;
  std::vector<size_t> usable_;
};

}  // namespace

std::unique_ptr<PlaceSampler> MakeEigenPlacesSampler(EigenPlacesDataset dataset,
                                                     const EigenPlacesOptions& eigen,
                                                     const SamplerOptions& options) {
  return std::make_unique<EigenPlacesSampler>(std::move(dataset), eigen, options);
}

}  // namespace megaloc
