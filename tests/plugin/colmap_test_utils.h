#pragma once

// Test helpers: COLMAP databases of several schema generations made with plain SQLite (the CREATE
// TABLE statements of COLMAP 3.8, 3.11 and 4.x, docs: /work/shared/spec/formats.md §3).

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace megaloc {
namespace testing {

enum class ColmapSchemaVersion {
  k38,   // images.prior_*, user_version 3800
  k311,  // pose_priors with position_covariance, no rigs
  k4x,   // rigs/frames, descriptors.type
};

// "colmap38" / "colmap311" / "colmap4x", for parameterised test names.
std::string SchemaName(const ::testing::TestParamInfo<ColmapSchemaVersion>& info);
// gtest value printer (readable CTest names).
void PrintTo(ColmapSchemaVersion version, std::ostream* os);

// Creates `path` with the given schema, one camera, the images (id, name), and `matches` /
// `two_view_geometries` rows (pair_id, rows) with zero-filled data. Throws std::runtime_error on
// SQLite errors.
void CreateColmapDatabase(const std::string& path, ColmapSchemaVersion version,
                          const std::vector<std::pair<int64_t, std::string>>& images,
                          const std::vector<std::pair<int64_t, int>>& matches,
                          const std::vector<std::pair<int64_t, int>>& two_view_geometries);

}  // namespace testing
}  // namespace megaloc
