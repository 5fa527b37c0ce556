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
// MegaScenes

OverlapDenominator OverlapDenominatorFromString(const std::string& name) {
  if (name == "min") return OverlapDenominator::kMin;
  if (name == "union") return OverlapDenominator::kUnion;
  if (name == "num_points") return OverlapDenominator::kNumPoints;
  MEGALOC_THROW(InvalidArgument, "unknown overlap denominator '" << name
                                                                 << "' (min, union, num_points)");
}

double PointOverlap(const std::vector<uint64_t>& a, const std::vector<uint64_t>& b,
                    OverlapDenominator denominator, uint64_t num_points) {
  size_t i = 0, j = 0, inter = 0;
  while (i < a.size() && j < b.size()) {
    if (a[i] < b[j]) {
      ++i;
    } else if (b[j] < a[i]) {
      ++j;
    } else {
      ++inter;
      ++i;
      ++j;
    }
  }
  double denom = 0;
  switch (denominator) {
    case OverlapDenominator::kMin: denom = static_cast<double>(std::min(a.size(), b.size())); break;
    case OverlapDenominator::kUnion: denom = static_cast<double>(a.size() + b.size() - inter); break;
    case OverlapDenominator::kNumPoints: denom = static_cast<double>(num_points); break;
  }
  return denom > 0 ? static_cast<double>(inter) / denom : 0.0;
}

bool MegaScenesOptions::Check() const {
  CHECK_OPTION_GT(min_overlap, 0.0);
  CHECK_OPTION_LE(min_overlap, 1.0);
  CHECK_OPTION_GT(max_quadruplets_per_model, 0);
  CHECK_OPTION(overlap_denominator == "min" || overlap_denominator == "union" ||
               overlap_denominator == "num_points");
  return true;
}

GroupedQuadruplets LoadMegaScenes(const std::string& root, const MegaScenesOptions& options,
                                  int images_per_place, uint64_t seed) {
  const OverlapDenominator denom = OverlapDenominatorFromString(options.overlap_denominator);
  const std::string rec = JoinPaths(root, "reconstruct");
  if (!DirectoryExists(rec)) MEGALOC_THROW(IoError, rec << ": MegaScenes reconstruct folder missing");
  GroupedQuadruplets out;
  for (const std::string& aaa : ListSubdirectories(rec)) {
    for (const std::string& bbb : ListSubdirectories(JoinPaths(rec, aaa))) {
      const std::string scene = aaa + bbb;
      const std::string sparses = JoinPaths(JoinPaths(JoinPaths(rec, aaa), bbb), "sparses");
      if (!DirectoryExists(sparses)) continue;
      const std::string image_root = JoinPaths(JoinPaths(JoinPaths(root, "images"), aaa), bbb);
      int group = -1;
      for (const std::string& k : ListSubdirectories(sparses)) {
        const std::string model = JoinPaths(sparses, k);
        if (!FileExists(JoinPaths(model, "images.bin"))) continue;
        ReadColmapCamerasBinary(JoinPaths(model, "cameras.bin"));  // validates the model
        std::vector<ColmapImage> images = ReadColmapImagesBinary(JoinPaths(model, "images.bin"));
        const uint64_t num_points = ReadColmapPoints3DBinary(JoinPaths(model, "points3D.bin")).size();
        std::vector<int> valid;
        for (size_t i = 0; i < images.size(); ++i) {
          if (images[i].point3D_ids.empty()) continue;
          if (options.skip_missing_images && !FileExists(JoinPaths(image_root, images[i].name))) continue;
          valid.push_back(static_cast<int>(i));
        }
        // Inverted index point -> valid images.
        std::unordered_map<uint64_t, std::vector<int>> observers;
        for (int v = 0; v < static_cast<int>(valid.size()); ++v) {
          for (uint64_t id : images[valid[v]].point3D_ids) observers[id].push_back(v);
        }
        auto ok = [&](int a, int b) {
          return PointOverlap(images[valid[a]].point3D_ids, images[valid[b]].point3D_ids, denom,
                              num_points) >= options.min_overlap;
        };
        auto candidates = [&](int a) {
          std::set<int> seen;
          for (uint64_t id : images[valid[a]].point3D_ids) {
            for (int b : observers[id]) seen.insert(b);
          }
          std::vector<int> c;
          for (int b : seen) {
            if (b != a && ok(a, b)) c.push_back(b);
          }
          return c;
        };
        std::mt19937_64 rng = MakeRng(seed, kStreamBuild, NameHash(model));
        for (const auto& q : BuildDisjointCliques(static_cast<int>(valid.size()), images_per_place,
                                                  options.max_quadruplets_per_model, rng,
                                                  candidates, ok)) {
          if (group < 0) {
            group = static_cast<int>(out.groups.size());
            out.groups.push_back(scene);
            out.by_group.emplace_back();
          }
          Quadruplet quad;
          quad.group = group;
          for (int v : q) quad.images.push_back(JoinPaths(image_root, images[valid[v]].name));
          out.by_group[group].push_back(static_cast<int>(out.quadruplets.size()));
          out.quadruplets.push_back(std::move(quad));
        }
      }
    }
  }
  return out;
}

}  // namespace megaloc
