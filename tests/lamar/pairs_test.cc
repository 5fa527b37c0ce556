#include "megaloc/eval/lamar/pairs.h"

#include <cmath>
#include <fstream>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "megaloc/io/descriptor_store.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "tests/common/testing.h"

namespace megaloc {
namespace lamar {
namespace {

constexpr int kDim = 16;

Sensor MakeCamera(const std::string& id) {
  Sensor camera;
  camera.id = id;
  camera.sensor_type = "camera";
  camera.is_camera = true;
  camera.model = "PINHOLE";
  camera.width = 640;
  camera.height = 480;
  camera.params = {500, 500, 320, 240};
  return camera;
}

// Rotation of `deg` degrees about the camera y axis (yaw).
Pose Yaw(double deg, const Eigen::Vector3d& centre) {
  const double half = deg * M_PI / 360.0;
  return Pose::FromQt(std::cos(half), 0, std::sin(half), 0, centre.x(), centre.y(), centre.z());
}

TEST(LamarPairs, ConfigNamesAndJsonMatchTheOfficialLayout) {
  RetrievalMethod method;
  EXPECT_EQ(method.ToJson().dump(),
            R"({"name":"megaloc","hloc":{"model":{"name":"megaloc"},"preprocessing":{"resize_max":1024}}})");
  const PairSelectionConfig loc = PairSelectionConfig::Localization(method, 10);
  EXPECT_EQ(loc.Name(), "megaloc-10");
  const nlohmann::json expected_loc = nlohmann::json::parse(R"({"method": {"name": "megaloc", "hloc": {"model": {"name": "megaloc"}, "preprocessing": {"resize_max": 1024}}}, "filter_frustum": {"do": false, "max_depth": 20.0}, "filter_radio": {"do": false, "window_us": 10000000, "frac_pairs_filter": null}, "filter_pose": {"do": false, "max_rotation": 120.0, "max_translation": 20.0, "num_pairs_filter": null}, "num_pairs": 10, "name": "megaloc-10"})");
  EXPECT_EQ(nlohmann::json::parse(loc.ToJson().dump(4)), expected_loc);
  const PairSelectionConfig map = PairSelectionConfig::Mapping(method, 10);
  EXPECT_EQ(map.Name(), "megaloc-10_frustum_pose-120-20-250");
  const nlohmann::json map_json = map.ToJson();
  EXPECT_EQ(map_json["filter_frustum"]["do"], true);
  EXPECT_EQ(map_json["filter_pose"]["do"], true);
  EXPECT_EQ(map_json["filter_pose"]["num_pairs_filter"], 250);
  EXPECT_EQ(map_json["name"], "megaloc-10_frustum_pose-120-20-250");
  // json.dump(indent=4) layout of Python for the float fields.
  EXPECT_NE(map.ToJson().dump(4).find("\"max_depth\": 20.0"), std::string::npos);
  EXPECT_EQ(ExtractionDir("out/CAB", "map", "megaloc"), "out/CAB/extraction/map/megaloc");
  EXPECT_EQ(PairSelectionDir("out/CAB", "query_val_phone", "map", "megaloc-10"),
            "out/CAB/pair_selection/query_val_phone/map/megaloc-10");
}

TEST(LamarPairs, FrustumAndPoseDistances) {
  const Sensor camera = MakeCamera("cam");
  const Pyramid a = PyramidFromCamera(Yaw(0, {0, 0, 0}), camera, 20.0);
  // Far corner of the pyramid: (640 - 320) / 500 * 20 = 12.8 m to the right at 20 m depth.
  EXPECT_NEAR(a[3].x(), 12.8, 1e-5);
  EXPECT_NEAR(a[3].y(), 9.6, 1e-5);
  EXPECT_NEAR(a[3].z(), 20.0, 1e-5);
  EXPECT_TRUE(PyramidsIntersect(a, PyramidFromCamera(Yaw(180, {0, 0, 10}), camera, 20.0)));
  EXPECT_FALSE(PyramidsIntersect(a, PyramidFromCamera(Yaw(180, {0, 0, -1}), camera, 20.0)));
  EXPECT_FALSE(PyramidsIntersect(a, PyramidFromCamera(Yaw(0, {50, 0, 0}), camera, 20.0)));
  EXPECT_TRUE(PyramidsIntersect(a, PyramidFromCamera(Yaw(0, {5, 0, 0}), camera, 20.0)));
  const auto dr_dt = PairwisePoseDistance(Yaw(0, {0, 0, 0}), Yaw(90, {3, 4, 0}));
  EXPECT_NEAR(dr_dt.first, 90.0f, 1e-3f);
  EXPECT_NEAR(dr_dt.second, 5.0f, 1e-5f);
}

// A map session with cameras 0..9 at x = 0..9 m looking +z, camera 10 at x = 0 looking -z and
// camera 11 at x = 30, plus a 2-camera rig query session.
class LamarPairsSession : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = testing::TempDir();
    map_.id = "map";
    map_.path = JoinPaths(root_, "map");
    for (int i = 0; i < 12; ++i) {
      const std::string id = "cam" + std::to_string(i);
      map_.sensor_ids.push_back(id);
      map_.sensors[id] = MakeCamera(id);
      const Key key(1000 + i, id);
      map_.image_keys.push_back(key);
      map_.images[key] = "images/" + std::to_string(i) + ".jpg";
      Pose pose = Yaw(0, {static_cast<double>(i), 0, 0});
      if (i == 10) pose = Yaw(180, {0, 0, 0});
      if (i == 11) pose = Yaw(0, {30, 0, 0});
      map_.trajectories.Set(key, pose);
    }
    map_.has_trajectories = true;

    query_.id = "query_val_hololens";
    query_.path = JoinPaths(root_, "query_val_hololens");
    for (const std::string id : {"hl/cam_l", "hl/cam_r"}) {
      query_.sensor_ids.push_back(id);
      query_.sensors[id] = MakeCamera(id);
    }
    query_.rigs.Set("hl/rig", "hl/cam_l", Pose::FromQt(1, 0, 0, 0, -0.05, 0, 0));
    query_.rigs.Set("hl/rig", "hl/cam_r", Pose::FromQt(1, 0, 0, 0, 0.05, 0, 0));
    for (int64_t ts : {5000, 6000}) {
      for (const std::string cam : {"cam_l", "cam_r"}) {
        const Key key(ts, "hl/" + cam);
        query_.image_keys.push_back(key);
        query_.images[key] = cam + "/" + std::to_string(ts) + ".jpg";
      }
    }

    std::mt19937 rng(3);
    std::normal_distribution<float> normal;
    auto random_unit = [&]() {
      Eigen::VectorXf v(kDim);
      for (int d = 0; d < kDim; ++d) v[d] = normal(rng);
      return Eigen::VectorXf(v.normalized());
    };
    map_features_ = JoinPaths(root_, "map.h5");
    {
      auto file = DescriptorFile::Open(map_features_, DescriptorFile::Mode::kCreate);
      for (const Key& key : map_.image_keys) {
        map_desc_.push_back(random_unit());
        file->Write(map_.ImageName(key), map_desc_.back().data(), kDim, 640, 480);
      }
    }
    query_features_ = JoinPaths(root_, "query.h5");
    {
      auto file = DescriptorFile::Open(query_features_, DescriptorFile::Mode::kCreate);
      for (const Key& key : query_.image_keys) {
        // Query image i is a noisy copy of map image 2 * i + 1.
        const size_t i = query_desc_.size();
        Eigen::VectorXf v = map_desc_[2 * i + 1] + 0.1f * random_unit();
        query_desc_.push_back(v.normalized());
        file->Write(query_.ImageName(key), query_desc_.back().data(), kDim, 640, 480);
      }
    }
  }

  // float16-rounded descriptor as read back.
  static Eigen::VectorXf Half(const Eigen::VectorXf& v) {
    Eigen::VectorXf out(v.size());
    for (int i = 0; i < v.size(); ++i) out[i] = HalfToFloat(FloatToHalf(v[i]));
    return out;
  }

  std::string root_, map_features_, query_features_;
  Session map_, query_;
  std::vector<Eigen::VectorXf> map_desc_, query_desc_;
};

TEST_F(LamarPairsSession, MappingPairsApplyFrustumPoseAndNearestFilters) {
  PairSelectionConfig config = PairSelectionConfig::Mapping(RetrievalMethod(), 2);
  config.pose_num_pairs_filter = 3;
  PairSelectionStats stats;
  const PairSelectionResult result =
      SelectPairs(map_, map_, nullptr, nullptr, config, map_features_, map_features_, &stats);
  EXPECT_EQ(stats.num_query_images, 12);
  std::map<Key, std::vector<Key>> retrieval(result.retrieval.begin(), result.retrieval.end());
  for (int i = 0; i < 12; ++i) {
    const Key key(1000 + i, "cam" + std::to_string(i));
    SCOPED_TRACE(i);
    if (i >= 10) {
      // Camera 10 faces away from everyone within 20 m; camera 11 is 21+ m from all others.
      EXPECT_EQ(retrieval.count(key), 0u);
      continue;
    }
    // Candidates: the 3 nearest of cameras 0..9 (ties at equal distance are all kept: dt < 4th).
    std::vector<int> candidates;
    for (int j = 0; j < 10; ++j) {
      if (j != i && std::abs(j - i) < [&] {
            std::vector<int> d;
            for (int k = 0; k < 10; ++k) if (k != i) d.push_back(std::abs(k - i));
            std::sort(d.begin(), d.end());
            return d[3];
          }()) {
        candidates.push_back(j);
      }
    }
    std::sort(candidates.begin(), candidates.end(), [&](int a, int b) {
      const float sa = Half(map_desc_[i]).dot(Half(map_desc_[a]));
      const float sb = Half(map_desc_[i]).dot(Half(map_desc_[b]));
      return sa > sb || (sa == sb && a < b);
    });
    candidates.resize(std::min<size_t>(2, candidates.size()));
    ASSERT_EQ(retrieval.count(key), 1u);
    std::vector<Key> expected;
    for (int j : candidates) expected.emplace_back(1000 + j, "cam" + std::to_string(j));
    EXPECT_EQ(retrieval[key], expected);
  }
}

TEST_F(LamarPairsSession, QueryPairsExpandRigsAndWriteOfficialFiles) {
  const std::vector<Key> queries = {Key(5000, "hl/rig"), Key(6000, "hl/rig")};
  const PairSelectionConfig config = PairSelectionConfig::Localization(RetrievalMethod(), 3);
  const PairSelectionResult result =
      SelectPairs(query_, map_, &queries, nullptr, config, query_features_, map_features_);
  ASSERT_EQ(result.retrieval.size(), 4u);
  EXPECT_EQ(result.retrieval[0].first, Key(5000, "hl/cam_l"));
  EXPECT_EQ(result.retrieval[1].first, Key(5000, "hl/cam_r"));
  EXPECT_EQ(result.pairs.size(), 12u);
  for (size_t i = 0; i < 4; ++i) {
    // The best match is the map image the query descriptor was made from (no filter applies, so
    // camera 10 and 11 are candidates too), and scores are non-increasing.
    EXPECT_EQ(result.retrieval[i].second[0].first, static_cast<int64_t>(1000 + 2 * i + 1));
    EXPECT_GE(result.scores[3 * i], result.scores[3 * i + 1]);
    EXPECT_GE(result.scores[3 * i + 1], result.scores[3 * i + 2]);
    EXPECT_NEAR(result.scores[3 * i], Half(query_desc_[i]).dot(Half(map_desc_[2 * i + 1])), 1e-5);
  }
  const std::string dir = JoinPaths(root_, "pair_selection/query_val_hololens/map/megaloc-3");
  WritePairSelection(dir, config, result);
  const std::string retrieval_txt = ReadFileToString(JoinPaths(dir, "retrieval.txt"));
  EXPECT_EQ(retrieval_txt.rfind("5000,hl/cam_l,1001,cam1\n", 0), 0u) << retrieval_txt;
  EXPECT_EQ(retrieval_txt.find(' '), std::string::npos);
  EXPECT_EQ(retrieval_txt.back(), '\n');
  const std::string pairs_txt = ReadFileToString(JoinPaths(dir, "pairs.txt"));
  EXPECT_EQ(pairs_txt.rfind("query_val_hololens/raw_data/cam_l/5000.jpg map/raw_data/images/1.jpg\n", 0), 0u)
      << pairs_txt;
  EXPECT_NE(pairs_txt.back(), '\n');
  EXPECT_EQ(std::count(pairs_txt.begin(), pairs_txt.end(), '\n'), 11);
  const nlohmann::json config_json =
      nlohmann::json::parse(ReadFileToString(JoinPaths(dir, "configuration.json")));
  EXPECT_EQ(config_json["name"], "megaloc-3");
  // Round trip of retrieval.txt.
  const auto read = ReadRetrieval(JoinPaths(dir, "retrieval.txt"));
  ASSERT_EQ(read.size(), result.retrieval.size());
  for (size_t i = 0; i < read.size(); ++i) EXPECT_EQ(read[i], result.retrieval[i]);

  // Retrieval proxy with GT = the poses of the map images each query was made from.
  Trajectories gt;
  gt.Set(Key(5000, "hl/rig"), Yaw(0, {1.05, 0, 0}));   // cam_l at x = 1.0 (map 1), cam_r at 1.1
  gt.Set(Key(6000, "hl/rig"), Yaw(0, {20.05, 0, 0}));  // far from everything retrieved
  const RetrievalProxyResult proxy = RetrievalProxy(query_, gt, map_, result.retrieval, 1, 10.0, 0.5);
  EXPECT_EQ(proxy.num_query_images, 4);
  EXPECT_EQ(proxy.num_hits, 1);  // only cam_l at ts 5000 (map 1 at 0.0 m; cam_r's map 3 is 1.9 m away)
  EXPECT_DOUBLE_EQ(proxy.Percent(), 25.0);
}

TEST_F(LamarPairsSession, MissingDescriptorIsAClearError) {
  const std::vector<Key> queries = {Key(5000, "hl/rig")};
  const std::string partial = JoinPaths(root_, "partial.h5");
  {
    auto file = DescriptorFile::Open(partial, DescriptorFile::Mode::kCreate);
    file->Write(query_.ImageName(Key(5000, "hl/cam_l")), query_desc_[0].data(), kDim, 640, 480);
  }
  try {
    SelectPairs(query_, map_, &queries, nullptr,
                PairSelectionConfig::Localization(RetrievalMethod(), 3), partial, map_features_);
    FAIL() << "no exception";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(partial), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cam_r/5000.jpg"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lamar
}  // namespace megaloc
