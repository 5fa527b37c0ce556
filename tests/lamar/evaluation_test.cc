#include "megaloc/eval/lamar/evaluation.h"

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "tests/common/testing.h"

namespace megaloc {
namespace lamar {
namespace {

constexpr double kTol = 1e-9;

nlohmann::json Expected() {
  std::ifstream file(testing::TestDataPath("lamar/expected.json"));
  return nlohmann::json::parse(file);
}

EvaluationOptions FixtureOptions(const std::string& which) {
  EvaluationOptions options;
  options.session_path = testing::TestDataPath("lamar/sessions/query_val_" + which);
  options.poses_path = testing::TestDataPath("lamar/poses_" + which + ".txt");
  return options;
}

// Every number of expected.json for one session.
void CheckAgainstOfficial(const std::string& which) {
  const nlohmann::json expected = Expected()[which];
  const EvaluationResult result = EvaluatePoses(FixtureOptions(which));
  EXPECT_EQ(EvaluationModeName(result.mode),
            expected["mode"].get<std::string>() == "rig" ? "rig" : "single_image");
  EXPECT_EQ(result.num_query_keys, expected["n_query_keys"].get<int>());
  EXPECT_EQ(result.num_eval_keys, expected["n_eval_keys"].get<int>());
  EXPECT_EQ(result.num_missing, expected["n_missing"].get<int>());
  ASSERT_EQ(result.recall.size(), 2u);
  EXPECT_NEAR(result.recall[0], expected["recall"][0].get<double>(), kTol);
  EXPECT_NEAR(result.recall[1], expected["recall"][1].get<double>(), kTol);

  const nlohmann::json expected_errors = expected["per_key_errors"];
  ASSERT_EQ(result.errors.size(), expected_errors.size());
  for (size_t i = 0; i < result.errors.size(); ++i) {
    const KeyPoseError& error = result.errors[i];
    const nlohmann::json& e = expected_errors[i];
    SCOPED_TRACE(which + " key " + std::to_string(i));
    EXPECT_EQ(error.key.first, e["timestamp"].get<int64_t>());
    EXPECT_EQ(error.key.second, e["sensor_id"].get<std::string>());
    if (e["err_R_deg"].is_null()) {
      EXPECT_FALSE(error.has_estimate);
      EXPECT_TRUE(std::isinf(error.err_R_deg));
      EXPECT_TRUE(std::isinf(error.err_t_m));
    } else {
      EXPECT_TRUE(error.has_estimate);
      EXPECT_NEAR(error.err_R_deg, e["err_R_deg"].get<double>(), kTol);
      EXPECT_NEAR(error.err_t_m, e["err_t_m"].get<double>(), kTol);
    }
  }

  // The JSON report: recalls in percent.
  const nlohmann::json json = EvaluationResultToJson(result);
  EXPECT_NEAR(json["recall"]["1deg_10cm"].get<double>(),
              expected["recall_percent"]["R1deg_t0.1m"].get<double>(), kTol);
  EXPECT_NEAR(json["recall"]["5deg_1m"].get<double>(),
              expected["recall_percent"]["R5deg_t1m"].get<double>(), kTol);
  EXPECT_EQ(json["per_key_errors"].size(), expected_errors.size());
  for (size_t i = 0; i < expected_errors.size(); ++i) {
    EXPECT_EQ(json["per_key_errors"][i]["err_R_deg"].is_null(),
              expected_errors[i]["err_R_deg"].is_null());
  }
}

TEST(LamarEvaluation, PhoneMatchesOfficial) { CheckAgainstOfficial("phone"); }

TEST(LamarEvaluation, HololensRigPerCameraMatchesOfficial) { CheckAgainstOfficial("hololens"); }

TEST(LamarEvaluation, RigLevelScoringDiffersNearThreshold) {
  // Scoring the rig poses themselves (not official) gives the fixture's informational numbers.
  EvaluationOptions options = FixtureOptions("hololens");
  options.mode = EvaluationMode::kSingleImage;
  const EvaluationResult result = EvaluatePoses(options);
  const nlohmann::json expected = Expected()["hololens"]["info_rig_level_recall_not_official"];
  EXPECT_EQ(result.num_eval_keys, 10);
  EXPECT_NEAR(result.recall[0], expected[0].get<double>(), kTol);
  EXPECT_NEAR(result.recall[1], expected[1].get<double>(), kTol);
}

TEST(LamarEvaluation, ThresholdsAreStrict) {
  // One key whose errors equal the thresholds exactly: (0 deg, 1.0 m) fails (5, 1.0), passes (5, 2).
  const Session session = LoadSession(testing::TestDataPath("lamar/sessions/query_val_phone"));
  const Key key(1650000000000218, "ios_synth_000/cam_phone_1650000000000218");
  Trajectories gt, estimates;
  gt.Set(key, Pose::FromQt(1, 0, 0, 0, 0, 0, 0));
  estimates.Set(key, Pose::FromQt(1, 0, 0, 0, 1.0, 0, 0));
  const EvaluationResult result = EvaluatePoses(session, {key}, gt, estimates,
                                                EvaluationMode::kSingleImage, {{5, 1.0}, {5, 2.0}});
  EXPECT_EQ(result.recall[0], 0.0);
  EXPECT_EQ(result.recall[1], 1.0);
  EXPECT_EQ(result.errors[0].err_t_m, 1.0);
  EXPECT_EQ(ThresholdLabel(1, 0.1), "1deg_10cm");
  EXPECT_EQ(ThresholdLabel(5, 1.0), "5deg_1m");
  EXPECT_EQ(ThresholdLabel(2, 0.25), "2deg_25cm");
}

TEST(LamarEvaluation, PerCameraRowsInRigModeAreRejected) {
  const std::string poses = JoinPaths(testing::TempDir(), "poses.txt");
  std::ofstream(poses) << "1650000500000000, hl_synth_000/cam_lf, 1, 0, 0, 0, 0, 0, 0\n";
  EvaluationOptions options = FixtureOptions("hololens");
  options.poses_path = poses;
  try {
    EvaluatePoses(options);
    FAIL() << "no exception";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(poses), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("hl_synth_000/cam_lf"), std::string::npos) << e.what();
  }
}

TEST(LamarEvaluation, MissingGroundTruthAndMalformedPosesAreErrors) {
  EvaluationOptions options = FixtureOptions("phone");
  const std::string dir = testing::TempDir();
  options.queries_path = JoinPaths(dir, "queries.txt");
  std::ofstream(options.queries_path) << "1650000000000218, ios_synth_000/cam_phone_1650000000000218\n"
                                      << "1650000000000219, ios_synth_000/cam_phone_1650000000000218\n";
  EXPECT_THROW(EvaluatePoses(options), FormatError);

  options = FixtureOptions("phone");
  options.poses_path = JoinPaths(dir, "bad_poses.txt");
  std::ofstream(options.poses_path) << "# header\n1650000000000218, ios_synth_000/cam_phone_1650000000000218, 1, 0, 0, 0, 0, 0\n";
  try {
    EvaluatePoses(options);
    FAIL() << "no exception";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(options.poses_path + ":2:"), std::string::npos) << e.what();
  }

  options = FixtureOptions("phone");
  options.poses_path = JoinPaths(dir, "does_not_exist.txt");
  EXPECT_THROW(EvaluatePoses(options), IoError);

  // Issue 14, bad input 10: an empty query list scored every ground-truth key.
  options = FixtureOptions("phone");
  options.queries_path = JoinPaths(dir, "empty_queries.txt");
  std::ofstream(options.queries_path) << "# timestamp, device_id\n";
  try {
    EvaluatePoses(options);
    FAIL() << "no exception";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(options.queries_path + ": no query keys"), std::string::npos)
        << e.what();
  }
}

TEST(LamarEvaluation, CommandLineWritesJsonInPercent) {
  const std::string out = JoinPaths(testing::TempDir(), "R.json");
  const std::string session = testing::TestDataPath("lamar/sessions/query_val_hololens");
  const std::string cmd = testing::MegalocExecutable() + " lamar_eval evaluate --session_path " +
                          session + " --poses_path " +
                          testing::TestDataPath("lamar/poses_hololens.txt") + " --output_path " +
                          out + " > /dev/null";
  ASSERT_EQ(testing::RunShell(cmd), 0) << cmd;
  std::ifstream file(out);
  const nlohmann::json json = nlohmann::json::parse(file);
  EXPECT_NEAR(json["recall"]["1deg_10cm"].get<double>(), 40.0, kTol);
  EXPECT_NEAR(json["recall"]["5deg_1m"].get<double>(), 70.0, kTol);
  EXPECT_EQ(json["n_eval_keys"].get<int>(), 40);
  EXPECT_EQ(json["n_missing"].get<int>(), 8);
  EXPECT_EQ(json["mode"].get<std::string>(), "rig");

  // Bad input: non-zero exit and one ERROR line naming the file.
  const std::string err = JoinPaths(testing::TempDir(), "err.txt");
  const std::string bad = testing::MegalocExecutable() +
                          " lamar_eval evaluate --session_path " + session +
                          " --poses_path /nonexistent/poses.txt 2> " + err;
  EXPECT_NE(testing::RunShell(bad), 0);
  const std::string message = ReadFileToString(err);
  EXPECT_NE(message.find("ERROR: "), std::string::npos) << message;
  EXPECT_NE(message.find("/nonexistent/poses.txt"), std::string::npos) << message;
  EXPECT_NE(testing::RunShell(testing::MegalocExecutable() + " lamar_eval nostep 2> /dev/null"), 0);

  // The report may not replace an input (here: a copy of the poses given as both).
  const std::string poses = JoinPaths(testing::TempDir(), "poses_copy.txt");
  WriteFileAtomically(poses, ReadFileToString(testing::TestDataPath("lamar/poses_hololens.txt")));
  const std::string same = testing::MegalocExecutable() + " lamar_eval evaluate --session_path " + session +
                           " --poses_path " + poses + " --output_path " + poses + " 2> " + err;
  EXPECT_NE(testing::RunShell(same), 0);
  EXPECT_NE(ReadFileToString(err).find("same file"), std::string::npos) << ReadFileToString(err);
  EXPECT_EQ(ReadFileToString(poses), ReadFileToString(testing::TestDataPath("lamar/poses_hololens.txt")));
}

}  // namespace
}  // namespace lamar
}  // namespace megaloc
