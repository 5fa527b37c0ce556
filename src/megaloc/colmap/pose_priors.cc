#include "megaloc/colmap/pose_priors.h"

#include <vector>

#include "megaloc/colmap/database.h"

namespace megaloc {

PositionPriors ReadColmapPositionPriors(const std::string& database_path, int64_t* num_rows) {
  const auto database = ColmapDatabase::Open(database_path);
  const std::vector<ColmapPosePrior> rows = database->ReadPosePriors();
  PositionPriors priors;
  for (const ColmapPosePrior& row : rows) {
    const double* p = row.position;
    if (row.coordinate_system == 0) {
      priors.Set(row.name, Wgs84ToEcef(p[0], p[1], p[2]), PositionFrame::kEcef, database_path);
    } else {
      priors.Set(row.name, Eigen::Vector3d(p[0], p[1], p[2]), PositionFrame::kCartesian, database_path);
    }
  }
  if (num_rows != nullptr) *num_rows = static_cast<int64_t>(rows.size());
  return priors;
}

}  // namespace megaloc
