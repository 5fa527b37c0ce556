// `megaloc pairs` output consumed by the real COLMAP 3.8 binary's `matches_importer --match_type pairs`.

#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "megaloc/io/descriptor_store.h"
#include "megaloc/retrieval/pairs_io.h"
#include "tests/common/synthetic/renderer.h"
#include "megaloc/util/file_utils.h"
#include "tests/common/testing.h"
#include "tests/retrieval/pairs_test_utils.h"

namespace megaloc {
namespace {

using testing::RunPairsCommand;
using testing::WriteRandomDescriptors;

int64_t CountRows(const std::string& database, const std::string& table) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(database.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  const std::string sql = "SELECT COUNT(*) FROM " + table;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK);
  int64_t count = -1;
  if (sqlite3_step(stmt) == SQLITE_ROW) count = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return count;
}

TEST(PairsCommandColmap, MatchesImporterReadsOurPairs) {
  if (!FileExists("/usr/bin/colmap")) GTEST_SKIP() << "COLMAP binary not installed";
  const std::string dir = testing::TempDir();
  const std::string image_dir = JoinPaths(dir, "images");
  synthetic::SyntheticSceneOptions scene;
  scene.num_views = 4;
  scene.width = 320;
  scene.height = 240;
  scene.focal_length = 260.0;
  scene.supersampling = 1;
  scene.arc_degrees = 30.0;
  const synthetic::SyntheticDataset data = synthetic::GenerateSyntheticScene(scene);
  // Sub-folder names (COLMAP stores them relative to --image_path with '/').
  synthetic::WriteImages(data.views, JoinPaths(image_dir, "seq"));
  std::vector<std::string> names;
  for (const auto& view : data.views) names.push_back("seq/" + view.name);

  // COLMAP >= 3.13 names these options FeatureExtraction.* / FeatureMatching.* (asked from its help).
  const std::string help_log = JoinPaths(dir, "help.log");
  testing::RunShell("colmap feature_extractor -h > '" + help_log + "' 2>&1");
  const bool feature_prefix = ReadFileToString(help_log).find("--FeatureExtraction.use_gpu") != std::string::npos;
  const std::string extraction = feature_prefix ? " --FeatureExtraction." : " --SiftExtraction.";
  const std::string matching = feature_prefix ? " --FeatureMatching." : " --SiftMatching.";

  const std::string database = JoinPaths(dir, "database.db");
  ASSERT_EQ(testing::RunShell("colmap feature_extractor --database_path '" + database +
                              "' --image_path '" + image_dir + "' --ImageReader.single_camera 1" + extraction +
                              "use_gpu 0" + extraction + "num_threads 1"
                              " --SiftExtraction.max_num_features 1024 > '" +
                              JoinPaths(dir, "extract.log") + "' 2>&1"),
            0)
      << ReadFileToString(JoinPaths(dir, "extract.log"));
  ASSERT_EQ(CountRows(database, "images"), 4);

  const std::string h5 = JoinPaths(dir, "global.h5");
  WriteRandomDescriptors(h5, names, 32, 2);
  const std::string pairs = JoinPaths(dir, "pairs.txt");
  std::string output;
  ASSERT_EQ(RunPairsCommand("--descriptors " + h5 + " --output_path " + pairs +
                                " --num_matched 2 --min_score -1",
                            &output),
            0)
      << output;
  const auto written = ReadPairs(pairs);
  ASSERT_EQ(written.size(), 8u);
  const size_t num_unique = UniquePairs(written).size();

  const std::string log = JoinPaths(dir, "import.log");
  const int rc = testing::RunShell("colmap matches_importer --database_path '" + database +
                                   "' --match_list_path '" + pairs +
                                   "' --match_type pairs" + matching + "use_gpu 0" + matching +
                                   "num_threads 1 > '" + log + "' 2>&1");
  const std::string import_log = ReadFileToString(log);
  EXPECT_EQ(rc, 0) << import_log;
  EXPECT_EQ(import_log.find("does not exist"), std::string::npos) << import_log;
  // COLMAP de-duplicates unordered pairs and writes one verification row per pair.
  EXPECT_EQ(CountRows(database, "two_view_geometries"), static_cast<int64_t>(num_unique));

  // Control: the same check catches a malformed list (two spaces -> empty second name).
  const std::string bad = JoinPaths(dir, "bad_pairs.txt");
  WriteFileAtomically(bad, names[0] + "  " + names[1] + "\n");
  testing::RunShell("colmap matches_importer --database_path '" + database + "' --match_list_path '" +
                    bad + "' --match_type pairs" + matching + "use_gpu 0 > '" + log + "' 2>&1");
  EXPECT_NE(ReadFileToString(log).find("does not exist"), std::string::npos);
}

}  // namespace
}  // namespace megaloc
