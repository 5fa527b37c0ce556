#include "megaloc/eval/lamar/capture.h"

#include <cmath>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "tests/common/testing.h"

namespace megaloc {
namespace lamar {
namespace {

std::string FixtureSession(const std::string& name) {
  return testing::TestDataPath("lamar/sessions/" + name);
}

// Copy of a fixture session in a temp dir, so that a test can corrupt one file.
std::string CopySession(const std::string& name) {
  const std::string dir = JoinPaths(testing::TempDir(), name);
  std::filesystem::copy(FixtureSession(name), dir, std::filesystem::copy_options::recursive);
  return dir;
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream file(path);
  file << text;
}

// Expects `body` to throw an exception of type E whose message contains every fragment.
template <typename E, typename F>
void ExpectThrowContaining(F body, const std::vector<std::string>& fragments) {
  try {
    body();
    FAIL() << "no exception";
  } catch (const E& e) {
    const std::string what = e.what();
    for (const std::string& fragment : fragments) {
      EXPECT_NE(what.find(fragment), std::string::npos) << "'" << fragment << "' not in: " << what;
    }
  }
}

TEST(LamarPose, QuaternionConventionAndComposition) {
  // 90 deg about z, camera centre at (1, 2, 3): X_w = R X_s + t.
  const double s = std::sqrt(0.5);
  const Pose pose = Pose::FromQt(s, 0, 0, s, 1, 2, 3);
  const Eigen::Vector3d x_w = pose.R() * Eigen::Vector3d(1, 0, 0) + pose.t;
  EXPECT_NEAR(x_w.x(), 1.0, 1e-15);
  EXPECT_NEAR(x_w.y(), 3.0, 1e-15);
  EXPECT_NEAR(x_w.z(), 3.0, 1e-15);
  // Non-unit quaternion values are normalised; negated quaternions are the same rotation.
  const Pose scaled = Pose::FromQt(2 * s, 0, 0, 2 * s, 0, 0, 0);
  const Pose negated = Pose::FromQt(-s, 0, 0, -s, 0, 0, 0);
  EXPECT_NEAR((scaled.R() - pose.R()).norm(), 0.0, 1e-15);
  EXPECT_NEAR((negated.Inverse() * pose).Magnitude().first, 0.0, 1e-12);
  // Inverse and composition.
  const Pose other = Pose::FromQt(0.9, 0.1, -0.3, 0.2, -4, 5, 0.5);
  const Pose identity = other.Inverse() * other;
  EXPECT_NEAR(identity.Magnitude().first, 0.0, 1e-12);
  EXPECT_NEAR(identity.Magnitude().second, 0.0, 1e-12);
  const Pose ab = pose * other;
  EXPECT_NEAR((ab.R() - pose.R() * other.R()).norm(), 0.0, 1e-14);
  EXPECT_NEAR((ab.t - (pose.t + pose.R() * other.t)).norm(), 0.0, 1e-14);
  // 179 deg rotation about x.
  const double half = 179.0 / 2.0 * M_PI / 180.0;
  EXPECT_NEAR(Pose::FromQt(std::cos(half), std::sin(half), 0, 0, 0, 0, 0).Magnitude().first, 179.0,
              1e-12);
  EXPECT_THROW(Pose::FromQt(0, 0, 0, 0, 0, 0, 0), InvalidArgument);
}

TEST(LamarCapture, LoadsPhoneSession) {
  const Session session = LoadSession(FixtureSession("query_val_phone"));
  EXPECT_EQ(session.id, "query_val_phone");
  EXPECT_EQ(session.sensor_ids.size(), session.sensors.size());
  EXPECT_GE(session.sensors.size(), 16u);
  const Sensor& camera = session.Camera("ios_synth_000/cam_phone_1650000000000218");
  EXPECT_EQ(camera.model, "PINHOLE");
  EXPECT_EQ(camera.width, 1440);
  EXPECT_EQ(camera.height, 1920);
  ASSERT_EQ(camera.params.size(), 4u);
  EXPECT_DOUBLE_EQ(camera.params[0], 1467.4448249572918);
  EXPECT_DOUBLE_EQ(camera.params[3], 960.0);
  EXPECT_TRUE(session.rigs.Empty());
  EXPECT_TRUE(session.has_trajectories);
  ASSERT_TRUE(session.has_alignment_trajectories);
  // A GT row with 36 covariance values.
  const Pose& gt = session.alignment_trajectories.Get(
      Key(1650000000000218, "ios_synth_000/cam_phone_1650000000000218"));
  EXPECT_DOUBLE_EQ(gt.t.x(), -37.95309660354158);
  EXPECT_EQ(session.ImageName(Key(1650000000000218, "ios_synth_000/cam_phone_1650000000000218")),
            "query_val_phone/raw_data/ios_synth_000/images/1650000000000218.jpg");
  const std::vector<Key> queries = ReadQueryList(JoinPaths(session.path, "queries.txt"));
  EXPECT_EQ(queries.size(), 16u);
}

TEST(LamarCapture, LoadsRigSession) {
  const Session session = LoadSession(FixtureSession("query_val_hololens"));
  ASSERT_TRUE(session.IsRig("hl_synth_000/rig"));
  const auto& cameras = session.rigs.Sensors("hl_synth_000/rig");
  ASSERT_EQ(cameras.size(), 4u);
  EXPECT_EQ(cameras[0].first, "hl_synth_000/cam_lf");
  EXPECT_EQ(cameras[3].first, "hl_synth_000/cam_rr");
  EXPECT_DOUBLE_EQ(cameras[0].second.t.x(), -0.05);
  EXPECT_FALSE(session.IsRig("hl_synth_000/cam_lf"));
  EXPECT_TRUE(session.IsCamera("hl_synth_000/cam_lf"));
  // Camera pose through the rig (Session.get_pose).
  const Key rig_key(1650000500000000, "hl_synth_000/rig");
  const Pose cam = session.SensorPose(session.trajectories, Key(rig_key.first, "hl_synth_000/cam_rf"));
  const Pose expected = session.trajectories.Get(rig_key) * cameras[1].second;
  EXPECT_NEAR((cam.t - expected.t).norm(), 0.0, 1e-15);
}

TEST(LamarCapture, ListsQueryImagesLikeLamar) {
  std::ifstream file(testing::TestDataPath("lamar/expected.json"));
  const nlohmann::json expected = nlohmann::json::parse(file);
  for (const std::string which : {"phone", "hololens"}) {
    const Session session = LoadSession(FixtureSession("query_val_" + which));
    const std::vector<Key> queries = ReadQueryList(JoinPaths(session.path, "queries.txt"));
    std::vector<Key> keys;
    std::vector<std::string> names;
    ListImagesForSession(session, &queries, &keys, &names);
    EXPECT_EQ(names, expected[which]["hloc_image_names_for_queries"].get<std::vector<std::string>>())
        << which;
    // Without query keys: every images.txt image sorted by (ts, sensor id).
    ListImagesForSession(session, nullptr, &keys, &names);
    EXPECT_EQ(keys.size(), session.images.size());
    EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
  }
}

TEST(LamarCapture, TrajectoriesKeepPythonDictOrderAndRoundTrip) {
  Trajectories trajectories;
  trajectories.Set(Key(20, "b"), Pose::FromQt(1, 0, 0, 0, 0.1, 0.2, 0.3));
  trajectories.Set(Key(10, "a"), Pose::FromQt(0.3, 0.1, 0.7, -0.2, 1.0 / 3.0, -2e-7, 1e17));
  trajectories.Set(Key(20, "a"), Pose::FromQt(1, 0, 0, 0, 0, 0, 0));
  const std::vector<Key> expected = {Key(20, "b"), Key(20, "a"), Key(10, "a")};
  EXPECT_EQ(trajectories.KeyPairs(), expected);
  const std::string path = JoinPaths(testing::TempDir(), "poses.txt");
  WriteTrajectories(path, trajectories);
  const std::string text = ReadFileToString(path);
  EXPECT_EQ(text.rfind("# timestamp, device_id, qw, qx, qy, qz, tx, ty, tz, *covar\n", 0), 0u);
  EXPECT_NE(text.find("20, b, 1.0, 0.0, 0.0, 0.0, 0.1, 0.2, 0.3\n"), std::string::npos) << text;
  const Trajectories read = ReadTrajectories(path);
  EXPECT_EQ(read.KeyPairs(), expected);
  for (const Key& key : expected) {
    EXPECT_EQ(read.Get(key).t, trajectories.Get(key).t);  // bit-exact round trip
    // The reader renormalises the quaternion (as scantools does): equal to the last bit or so.
    EXPECT_NEAR((read.Get(key).q.coeffs() - trajectories.Get(key).q.coeffs()).norm(), 0.0, 1e-15);
  }
  EXPECT_EQ(FormatDouble(0.1), "0.1");
  EXPECT_EQ(FormatDouble(-3.0), "-3.0");
  EXPECT_EQ(FormatDouble(1.0 / 3.0), "0.3333333333333333");
}

TEST(LamarCapture, MalformedFilesNameFileAndLine) {
  const std::string session = CopySession("query_val_hololens");
  const std::string traj = JoinPaths(session, "trajectories.txt");
  // Wrong number of pose values on line 3 (header on line 1).
  WriteText(traj,
            "# timestamp, device_id, qw, qx, qy, qz, tx, ty, tz, *covar\n"
            "1650000500000000, hl_synth_000/rig, 1, 0, 0, 0, 0, 0, 0\n"
            "1650000500200000, hl_synth_000/rig, 1, 0, 0, 0, 0, 0\n");
  ExpectThrowContaining<FormatError>([&] { LoadSession(session); },
                                     {traj + ":3:", "expected 7 pose values"});
  // Non-numeric timestamp after a blank line and a comment (line numbers count them).
  WriteText(traj, "\n# comment\nabc, hl_synth_000/rig, 1, 0, 0, 0, 0, 0, 0\n");
  ExpectThrowContaining<FormatError>([&] { ReadTrajectories(traj); },
                                     {traj + ":3:", "invalid timestamp 'abc'"});
  // Bad number and zero quaternion.
  WriteText(traj, "1, hl_synth_000/rig, 1, 0, 0, 0, 0, x, 0\n");
  ExpectThrowContaining<FormatError>([&] { ReadTrajectories(traj); }, {traj + ":1:", "'x'", "ty"});
  WriteText(traj, "1, hl_synth_000/rig, 0, 0, 0, 0, 0, 0, 0\n");
  ExpectThrowContaining<FormatError>([&] { ReadTrajectories(traj); }, {traj + ":1:", "quaternion"});
  // Unknown device.
  WriteText(traj, "1, hl_synth_000/nope, 1, 0, 0, 0, 0, 0, 0\n");
  ExpectThrowContaining<FormatError>([&] { LoadSession(session); },
                                     {traj, "hl_synth_000/nope", "neither a sensor nor a rig"});
  std::filesystem::remove(traj);

  const std::string rigs = JoinPaths(session, "rigs.txt");
  WriteText(rigs, "# rig_id, sensor_id, qw, qx, qy, qz, tx, ty, tz\nhl_synth_000/rig, hl_synth_000/cam_lf, 1, 0, 0\n");
  ExpectThrowContaining<FormatError>([&] { LoadSession(session); }, {rigs + ":2:", "expected 9 fields"});
  WriteText(rigs, "hl_synth_000/rig, hl_synth_000/cam_zz, 1, 0, 0, 0, 0, 0, 0\n");
  ExpectThrowContaining<FormatError>([&] { LoadSession(session); }, {rigs, "cam_zz", "not in sensors.txt"});
  std::filesystem::remove(rigs);

  const std::string sensors = JoinPaths(session, "sensors.txt");
  WriteText(sensors, "# sensor_id, name, sensor_type, [sensor_params]+\n"
                     "hl_synth_000/cam_lf, grey, camera, PINHOLE, 640, 480, 450.0, 450.0, 320.0\n");
  ExpectThrowContaining<FormatError>([&] { LoadSession(session); }, {sensors + ":2:", "PINHOLE"});
  WriteText(sensors, "hl_synth_000/cam_lf, grey, camera, FANCY, 640, 480, 1\n");
  ExpectThrowContaining<FormatError>([&] { LoadSession(session); }, {sensors + ":1:", "FANCY"});
  std::filesystem::remove(sensors);
  ExpectThrowContaining<IoError>([&] { LoadSession(session); }, {"sensors.txt"});

  const std::string queries = JoinPaths(session, "queries.txt");
  WriteText(queries, "1650000500000000, hl_synth_000/rig\n1650000500200000 hl_synth_000/rig\n");
  ExpectThrowContaining<FormatError>([&] { ReadQueryList(queries); }, {queries + ":2:", "expected 2 fields"});

  const std::string images = JoinPaths(session, "images.txt");
  WriteText(images, "1, hl_synth_000/cam_lf\n");
  ExpectThrowContaining<FormatError>([&] { ReadImages(images); }, {images + ":1:", "expected 3 fields"});
}

// Issue 14, bad input 10: hexadecimal numbers were accepted (Python's float() refuses them) and a
// repeated (timestamp, device) key silently replaced the earlier row.
TEST(LamarCapture, HexNumbersAndDuplicateKeysAreRejected) {
  const std::string dir = testing::TempDir();
  const std::string traj = JoinPaths(dir, "trajectories.txt");
  WriteText(traj, "1, rig, 1, 0, 0, 0, 0x1p3, 0, 0\n");
  ExpectThrowContaining<FormatError>([&] { ReadTrajectories(traj); }, {traj + ":1:", "'0x1p3'", "tx"});
  WriteText(traj, "1, rig, 1, 0, 0, 0, nan(12), 0, 0\n");
  ExpectThrowContaining<FormatError>([&] { ReadTrajectories(traj); }, {traj + ":1:", "nan(12)"});
  WriteText(traj, "1, rig, 1, 0, 0, 0, 1e-3, 0, 0\n2, rig, 1, 0, 0, 0, 0, 0, 0\n"
                  "1, rig, 1, 0, 0, 0, 5, 0, 0\n");
  ExpectThrowContaining<FormatError>([&] { ReadTrajectories(traj); },
                                     {traj + ":3:", "duplicate key (1, rig)", "line 1"});
  const std::string queries = JoinPaths(dir, "queries.txt");
  WriteText(queries, "5, cam\n6, cam\n5, cam\n");
  ExpectThrowContaining<FormatError>([&] { ReadQueryList(queries); },
                                     {queries + ":3:", "duplicate key (5, cam)"});
  const std::string images = JoinPaths(dir, "images.txt");
  WriteText(images, "5, cam, a.jpg\n5, cam, b.jpg\n");
  ExpectThrowContaining<FormatError>([&] { ReadImages(images); }, {images + ":2:", "duplicate key"});
  // The same timestamp on another device is a different key.
  WriteText(images, "5, cam, a.jpg\n5, cam2, b.jpg\n");
  EXPECT_EQ(ReadImages(images).size(), 2u);
}

TEST(LamarCapture, MissingImageIsReported) {
  const std::string session = CopySession("query_val_phone");
  std::filesystem::remove(JoinPaths(session, "raw_data/ios_synth_000/images/1650000000000218.jpg"));
  ExpectThrowContaining<IoError>([&] { LoadSession(session); },
                                 {"images.txt", "1650000000000218.jpg", "does not exist"});
  SessionLoadOptions options;
  options.check_images_exist = false;
  EXPECT_NO_THROW(LoadSession(session, options));
}

}  // namespace
}  // namespace lamar
}  // namespace megaloc
