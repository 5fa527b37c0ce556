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
// ScanNet

bool ScanNetOptions::Check() const {
  CHECK_OPTION_GT(max_distance_m, 0.0);
  CHECK_OPTION_GT(max_angle_deg, 0.0);
  CHECK_OPTION(angle == "rotation" || angle == "optical_axis");
  CHECK_OPTION_GT(frame_stride, 0);
  CHECK_OPTION_GT(max_quadruplets_per_scan, 0);
  return true;
}

double CameraAngleDeg(const std::array<double, 9>& r1, const std::array<double, 9>& r2,
                      const std::string& rule) {
  double c = 0;
  if (rule == "rotation") {
    double tr = 0;  // tr(R1^T R2) = sum_ij R1_ij R2_ij
    for (int i = 0; i < 9; ++i) tr += r1[i] * r2[i];
    c = (tr - 1.0) / 2.0;
  } else if (rule == "optical_axis") {
    // Camera z axis in world coordinates = third column of the camera->world rotation.
    double n1 = 0, n2 = 0;
    for (int i = 0; i < 3; ++i) {
      c += r1[i * 3 + 2] * r2[i * 3 + 2];
      n1 += r1[i * 3 + 2] * r1[i * 3 + 2];
      n2 += r2[i * 3 + 2] * r2[i * 3 + 2];
    }
    c /= std::sqrt(n1 * n2);
  } else {
    MEGALOC_THROW(InvalidArgument, "unknown ScanNet angle rule '" << rule << "' (rotation, optical_axis)");
  }
  c = std::max(-1.0, std::min(1.0, c));
  return std::acos(c) * 180.0 / M_PI;
}

GroupedQuadruplets LoadScanNet(const std::string& root, const ScanNetOptions& options,
                               int images_per_place, uint64_t seed) {
  const std::string scans = JoinPaths(root, "scans");
  if (!DirectoryExists(scans)) MEGALOC_THROW(IoError, scans << ": ScanNet scans folder missing");
  std::vector<std::string> scan_names;
  if (!options.split_file.empty()) {
    std::istringstream in(ReadFileToString(options.split_file));
    std::string line;
    while (std::getline(in, line)) {
      if (!Trim(line).empty()) scan_names.push_back(Trim(line));
    }
  } else {
    scan_names = ListSubdirectories(scans);
  }
  GroupedQuadruplets out;
  std::map<std::string, int> group_of;
  for (const std::string& scan : scan_names) {
    const std::string dir = JoinPaths(scans, scan);
    const std::string pose_dir = JoinPaths(dir, "pose");
    if (!DirectoryExists(pose_dir)) {
      MEGALOC_THROW(IoError, pose_dir << ": missing (export the .sens file with SensReader "
                                         "--export_poses --export_color_images)");
    }
    struct Frame {
      std::string image;
      std::array<double, 9> r;
      std::array<double, 3> t;
    };
    std::vector<std::pair<int64_t, std::string>> pose_files;
    for (const std::string& f : ListFiles(pose_dir, false, {".txt"})) {
      const std::string stem = fs::path(f).stem().string();
      pose_files.emplace_back(ParseInt(stem, f), f);
    }
    std::sort(pose_files.begin(), pose_files.end());
    std::vector<Frame> frames;
    for (size_t i = 0; i < pose_files.size(); i += options.frame_stride) {
      const auto& [index, f] = pose_files[i];
      std::istringstream in(ReadFileToString(f));
      std::vector<double> m;
      std::string tok;
      while (in >> tok) {
        const std::string low = ToLower(tok);
        if (low == "-inf" || low == "inf" || low == "nan" || low == "-nan") {
          m.push_back(std::numeric_limits<double>::quiet_NaN());
        } else {
          m.push_back(ParseDouble(tok, f));
        }
      }
      if (m.size() != 16) MEGALOC_THROW(FormatError, f << ": expected a 4x4 matrix, got " << m.size() << " values");
      bool finite = true;
      for (double v : m) finite &= std::isfinite(v);
      if (!finite) continue;  // invalid tracking
      const std::string image = JoinPaths(JoinPaths(dir, "color"), std::to_string(index) + ".jpg");
      if (!FileExists(image)) MEGALOC_THROW(IoError, image << ": missing colour frame for " << f);
      Frame fr;
      fr.image = image;
      for (int r = 0; r < 3; ++r) {
        for (int c = 0; c < 3; ++c) fr.r[r * 3 + c] = m[r * 4 + c];
        fr.t[r] = m[r * 4 + 3];
      }
      frames.push_back(fr);
    }
    auto ok = [&](int a, int b) {
      double d2 = 0;
      for (int k = 0; k < 3; ++k) d2 += (frames[a].t[k] - frames[b].t[k]) * (frames[a].t[k] - frames[b].t[k]);
      return std::sqrt(d2) < options.max_distance_m &&
             CameraAngleDeg(frames[a].r, frames[b].r, options.angle) < options.max_angle_deg;
    };
    const int n = static_cast<int>(frames.size());
    auto candidates = [&](int a) {
      std::vector<int> c;
      for (int b = 0; b < n; ++b) {
        if (b != a && ok(a, b)) c.push_back(b);
      }
      return c;
    };
    std::mt19937_64 rng = MakeRng(seed, kStreamBuild, NameHash(scan));
    const auto quads = BuildDisjointCliques(n, images_per_place, options.max_quadruplets_per_scan,
                                            rng, candidates, ok);
    if (quads.empty()) continue;
    const std::string scene = scan.substr(0, scan.rfind('_'));  // scene0000_01 -> scene0000
    auto it = group_of.find(scene);
    if (it == group_of.end()) {
      it = group_of.emplace(scene, static_cast<int>(out.groups.size())).first;
      out.groups.push_back(scene);
      out.by_group.emplace_back();
    }
    for (const auto& q : quads) {
      Quadruplet quad;
      quad.group = it->second;
      for (int v : q) quad.images.push_back(frames[v].image);
      out.by_group[it->second].push_back(static_cast<int>(out.quadruplets.size()));
      out.quadruplets.push_back(std::move(quad));
    }
  }
  return out;
}

namespace {

class QuadrupletSampler : public PlaceSampler {
 public:
  QuadrupletSampler(std::string name, GroupedQuadruplets data, const SamplerOptions& options)
      : name_(std::move(name)), data_(std::move(data)), options_(options) {
    if (static_cast<int>(data_.groups.size()) < options_.places_per_batch) {
      MEGALOC_THROW(InvalidArgument, name_ << ": " << data_.groups.size()
                                           << " classes with a valid quadruplet, fewer than "
                                              "places_per_batch = "
                                           << options_.places_per_batch);
    }
    for (const auto& q : data_.quadruplets) {
      MEGALOC_CHECK_EQ(static_cast<int>(q.images.size()), options_.images_per_place);
    }
  }
  std::string Name() const override { return name_; }
  std::string Summary() const override {
    std::ostringstream s;
    s << name_ << ": " << data_.groups.size() << " classes, " << data_.quadruplets.size()
      << " disjoint quadruplets";
    return s.str();
  }
  std::vector<SubBatchSpec> Sample(int64_t iteration) const override {
    std::mt19937_64 rng = MakeRng(options_.seed, kStreamQuadruplets, NameHash(name_), iteration);
    SubBatchSpec sb;
    sb.source = name_;
    for (int g : SampleWithoutReplacement(static_cast<int>(data_.groups.size()),
                                          options_.places_per_batch, rng)) {
      const auto& list = data_.by_group[g];
      std::uniform_int_distribution<size_t> dist(0, list.size() - 1);
      const Quadruplet& q = data_.quadruplets[list[dist(rng)]];
      for (const std::string& path : q.images) {
        ImageRef ref;
        ref.path = path;
        sb.images.push_back(ref);
        sb.labels.push_back(g);
      }
    }
    return {sb};
  }

 private:
  std::string name_;
  GroupedQuadruplets data_;
  SamplerOptions options_;
};

}  // namespace

std::unique_ptr<PlaceSampler> MakeQuadrupletSampler(const std::string& name, GroupedQuadruplets data,
                                                    const SamplerOptions& options) {
  return std::make_unique<QuadrupletSampler>(name, std::move(data), options);
}

}  // namespace megaloc
