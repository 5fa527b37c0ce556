// Error paths of the native localization that need no COLMAP run.
#include "megaloc/eval/lamar/localize.h"

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "tests/common/testing.h"

namespace megaloc {
namespace lamar {
namespace {

// A capture whose "map" is a copy of the fixture phone session (it has poses in trajectories.txt).
std::string MakeCapture() {
  const std::string root = testing::TempDir();
  const std::string sessions = JoinPaths(root, "FIX/sessions");
  CreateDirectories(sessions);
  const std::string phone = testing::TestDataPath("lamar/sessions/query_val_phone");
  std::filesystem::copy(phone, JoinPaths(sessions, "query_val_phone"),
                        std::filesystem::copy_options::recursive);
  std::filesystem::copy(phone, JoinPaths(sessions, "map"), std::filesystem::copy_options::recursive);
  return root;
}

LocalizeOptions Options(const std::string& root) {
  LocalizeOptions options;
  options.capture_path = root;
  options.scene = "FIX";
  options.outputs = JoinPaths(root, "outputs");
  options.query_id = "query_val_phone";
  return options;
}

TEST(LamarLocalizeErrors, MissingPairsAndFailingColmapAreNamed) {
  const std::string root = MakeCapture();
  LocalizeOptions options = Options(root);
  try {
    RunLocalization(options);
    FAIL() << "no exception";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("megaloc-10_frustum_pose-120-20-250/pairs.txt"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("lamar_eval pairs"), std::string::npos) << e.what();
  }

  // Pairs present (map images are the phone images renamed), COLMAP replaced by a failing program.
  const Session map = LoadSession(JoinPaths(root, "FIX/sessions/map"));
  const Session query = LoadSession(JoinPaths(root, "FIX/sessions/query_val_phone"));
  PairSelectionResult map_pairs, loc_pairs;
  map_pairs.pairs.emplace_back(map.ImageName(map.image_keys[0]), map.ImageName(map.image_keys[1]));
  loc_pairs.pairs.emplace_back(query.ImageName(query.image_keys[0]),
                               map.ImageName(map.image_keys[0]));
  const std::string scene_outputs = JoinPaths(options.outputs, "FIX");
  const PairSelectionConfig map_config = PairSelectionConfig::Mapping(options.method, 10);
  const PairSelectionConfig loc_config = PairSelectionConfig::Localization(options.method, 10);
  WritePairSelection(PairSelectionDir(scene_outputs, "map", "map", map_config.Name()), map_config,
                     map_pairs);
  WritePairSelection(PairSelectionDir(scene_outputs, "query_val_phone", "map", loc_config.Name()),
                     loc_config, loc_pairs);
  // A `colmap` that reports a version (asked first, for the option names) and fails every command.
  const std::string failing_colmap = JoinPaths(options.outputs, "failing_colmap.sh");
  WriteFileAtomically(failing_colmap,
                      "#!/bin/sh\n"
                      "if [ \"$1\" = help ]; then echo 'COLMAP 3.8 -- Structure-from-Motion and Multi-View Stereo'; "
                      "exit 0; fi\n"
                      "echo \"failing on purpose: $1\" >&2\nexit 3\n");
  std::filesystem::permissions(failing_colmap, std::filesystem::perms::owner_all);
  options.colmap_path = failing_colmap;
  try {
    RunLocalization(options);
    FAIL() << "no exception";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("colmap feature_extractor failed"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("colmap_feature_extractor.log"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("exit status 3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("failing on purpose: feature_extractor"), std::string::npos) << e.what();
  }

  // A pair naming an image of neither session.
  loc_pairs.pairs[0].second = "map/raw_data/nope.jpg";
  WritePairSelection(PairSelectionDir(scene_outputs, "query_val_phone", "map", loc_config.Name()),
                     loc_config, loc_pairs);
  EXPECT_THROW(RunLocalization(options), FormatError);

  options.query_id = "map";
  EXPECT_THROW(RunLocalization(options), InvalidArgument);
}

}  // namespace
}  // namespace lamar
}  // namespace megaloc
