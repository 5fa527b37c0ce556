// End to end with the real COLMAP binary: synthetic scene -> colmap feature_extractor ->
// `megaloc colmap_matcher` (tiny model) -> colmap mapper registers every image.

#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "megaloc/retrieval/pairs_from_retrieval.h"
#include "megaloc/retrieval/pairs_io.h"
#include "tests/common/synthetic/renderer.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/colmap/database.h"
#include "megaloc/colmap/executable.h"
#include "megaloc/colmap/matcher.h"
#include "tests/common/testing.h"

namespace megaloc {
namespace {

const char kColmap[] = MEGALOC_COLMAP_EXECUTABLE;

std::string Quote(const std::string& s) { return "'" + s + "'"; }

std::string TinyWeights() { return testing::TestDataPath("megaloc_tiny/megaloc_tiny_v2.safetensors"); }

// Number of registered images of a binary COLMAP model: images.bin starts with a uint64 count.
uint64_t NumRegisteredImages(const std::string& model_dir) {
  std::ifstream in(JoinPaths(model_dir, "images.bin"), std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), sizeof(n));
  return in ? n : 0;
}

class ColmapPlugin : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string(kColmap).empty()) GTEST_SKIP() << "colmap binary not found";
    dir_ = testing::TempDir();
    images_ = JoinPaths(dir_, "images");
    database_ = JoinPaths(dir_, "database.db");
    log_ = JoinPaths(dir_, "colmap.log");
    version_ = DetectColmapVersion(kColmap);
  }

  void RenderScene(int num_views) {
    synthetic::SyntheticSceneOptions options;
    options.num_views = num_views;
    const synthetic::SyntheticDataset dataset = synthetic::GenerateSyntheticScene(options);
    synthetic::WriteImages(dataset.views, images_);
    for (const auto& view : dataset.views) names_.push_back(view.name);
  }

  void ExtractFeatures() {
    const std::string prefix = version_.AtLeast(3, 13) ? "--FeatureExtraction." : "--SiftExtraction.";
    ASSERT_EQ(testing::RunShell(Quote(kColmap) + " feature_extractor --database_path " + Quote(database_) +
                                " --image_path " + Quote(images_) + " --ImageReader.single_camera 1 " + prefix +
                                "use_gpu 0 " + prefix + "num_threads 2 --SiftExtraction.max_num_features 1024 >> " +
                                Quote(log_) + " 2>&1"),
              0)
        << TailOfFile(log_, 30);
  }

  // Runs the megaloc CLI; returns its exit status, output in *output.
  int RunMatcher(const std::string& args, std::string* output) {
    const std::string out = JoinPaths(dir_, "matcher_out.txt");
    const int rc = testing::RunShell(Quote(testing::MegalocExecutable()) + " colmap_matcher --database_path " +
                                     Quote(database_) + " --image_path " + Quote(images_) + " --colmap " +
                                     Quote(kColmap) + " --use_gpu 0 --num_threads 1 " + args + " > " + Quote(out) +
                                     " 2>&1");
    *output = ReadFileToString(out);
    return rc;
  }

  std::string dir_, images_, database_, log_;
  std::vector<std::string> names_;
  ColmapVersion version_;
};

TEST_F(ColmapPlugin, MatcherThenMapperRegistersEveryImage) {
  RenderScene(10);
  ExtractFeatures();
  // K >= N - 1: every pair is a candidate, so registration does not depend on the tiny model's
  // (random) retrieval quality.
  std::string output;
  ASSERT_EQ(RunMatcher("--num_matched 9 --weights_path " + Quote(TinyWeights()), &output), 0) << output;
  EXPECT_NE(output.find("10 extracted"), std::string::npos) << output;
  EXPECT_NE(output.find("Pairs:             45 unique"), std::string::npos) << output;
  const std::string pairs_path = DefaultPairsPath(database_);
  ASSERT_EQ(ReadPairs(pairs_path).size(), 45u);
  // COLMAP accepted every line of our pair list.
  const std::string importer_log = ReadFileToString(pairs_path + ".matches_importer.log");
  EXPECT_EQ(importer_log.find("does not exist"), std::string::npos) << importer_log;
  {
    const auto db = ColmapDatabase::Open(database_);
    EXPECT_EQ(db->NumRows("matches"), 45);
    EXPECT_EQ(db->NumRows("two_view_geometries"), 45);
    EXPECT_GT(db->NumNonEmptyRows("two_view_geometries"), 20);
    // The rows are exactly the pairs of our list (joined by name, not by id).
    std::map<std::string, int64_t> ids;
    for (const ColmapDatabaseImage& image : db->ReadImages()) ids[image.name] = image.image_id;
    std::set<int64_t> expected;
    for (const ImagePair& pair : ReadPairs(pairs_path)) expected.insert(ImagePairToPairId(ids[pair.name1], ids[pair.name2]));
    const std::vector<int64_t> got = db->ReadPairIds("two_view_geometries");
    EXPECT_EQ(std::set<int64_t>(got.begin(), got.end()), expected);
  }

  const std::string sparse = JoinPaths(dir_, "sparse");
  CreateDirectories(sparse);
  ASSERT_EQ(testing::RunShell(Quote(kColmap) + " mapper --database_path " + Quote(database_) + " --image_path " +
                              Quote(images_) + " --output_path " + Quote(sparse) + " --Mapper.num_threads 2 >> " +
                              Quote(log_) + " 2>&1"),
            0)
      << TailOfFile(log_, 30);
  EXPECT_EQ(NumRegisteredImages(JoinPaths(sparse, "0")), 10u);
  EXPECT_FALSE(FileExists(JoinPaths(sparse, "1")));  // one model

  // Second run: descriptors come from the cache (no weights needed), COLMAP skips matched pairs.
  ASSERT_EQ(RunMatcher("--num_matched 9", &output), 0) << output;
  EXPECT_NE(output.find("10 cached, 0 extracted"), std::string::npos) << output;
  EXPECT_EQ(ColmapDatabase::Open(database_)->NumRows("two_view_geometries"), 45);
}

// --mapper: matching, then COLMAP's incremental mapper, then (COLMAP >= 4.0) its global mapper
// (GLOMAP) on the same verified pairs; each registers every view in one model.
TEST_F(ColmapPlugin, MatcherRunsIncrementalAndGlobalMappers) {
  RenderScene(10);
  ExtractFeatures();
  std::string output;
  const std::string incremental = JoinPaths(dir_, "sparse_incremental");
  ASSERT_EQ(RunMatcher("--num_matched 9 --mapper incremental --output_path " + Quote(incremental) +
                           " --weights_path " + Quote(TinyWeights()),
                       &output),
            0)
      << output;
  EXPECT_NE(output.find("model 0: 10 of 10 images registered"), std::string::npos) << output;
  EXPECT_EQ(NumRegisteredImages(JoinPaths(incremental, "0")), 10u);
  EXPECT_FALSE(FileExists(JoinPaths(incremental, "1")));
  // The same folder again: refused before anything runs (the model would be overwritten).
  EXPECT_NE(RunMatcher("--num_matched 9 --mapper incremental --output_path " + Quote(incremental), &output), 0);
  EXPECT_NE(output.find("already holds a model"), std::string::npos) << output;

  const std::string global = JoinPaths(dir_, "sparse_global");
  const int rc = RunMatcher("--num_matched 9 --mapper global --output_path " + Quote(global), &output);
  if (version_.AtLeast(4, 0)) {
    ASSERT_EQ(rc, 0) << output;
    EXPECT_NE(output.find("global_mapper"), std::string::npos) << output;
    EXPECT_NE(output.find("model 0: 10 of 10 images registered"), std::string::npos) << output;
    EXPECT_EQ(NumRegisteredImages(JoinPaths(global, "0")), 10u);
  } else {
    // No global_mapper before 4.0: one plain error, nothing matched or written.
    EXPECT_NE(rc, 0);
    EXPECT_NE(output.find("needs COLMAP >= 4.0"), std::string::npos) << output;
    EXPECT_EQ(output.find("Pairs:"), std::string::npos) << output;
    EXPECT_FALSE(FileExists(global));
  }
}

TEST_F(ColmapPlugin, SmallKPairsAndFailureReporting) {
  RenderScene(6);
  ExtractFeatures();
  std::string output;
  ASSERT_EQ(RunMatcher("--num_matched 2 --sequential_overlap 1 --weights_path " + Quote(TinyWeights()) +
                           " --pairs_path " + Quote(JoinPaths(dir_, "pairs.txt")),
                       &output),
            0)
      << output;
  const std::vector<ImagePair> pairs = ReadPairs(JoinPaths(dir_, "pairs.txt"));
  // Small K: the list is the retrieval engine's top-2 on the tiny model's descriptors (same
  // settings: every score kept), then the sequential neighbours, de-duplicated.
  PairsFromRetrievalOptions engine;
  engine.descriptors_path = DefaultDescriptorsPath(database_);
  engine.search.num_neighbors = 2;
  engine.search.min_score = -std::numeric_limits<float>::infinity();
  std::vector<ImagePair> retrieved;
  for (const ScoredImagePair& s : PairsFromRetrieval(engine).pairs) retrieved.push_back(s.pair);
  ASSERT_EQ(retrieved.size(), 12u);
  EXPECT_EQ(pairs, MergePairs({retrieved, SequentialPairs(names_, 1)}));
  // COLMAP imported exactly these pairs.
  const auto db = ColmapDatabase::Open(database_);
  EXPECT_EQ(db->NumRows("two_view_geometries"), static_cast<int64_t>(pairs.size()));
  EXPECT_EQ(ReadFileToString(JoinPaths(dir_, "pairs.txt.matches_importer.log")).find("does not exist"),
            std::string::npos);

  // --dry_run never touches the database.
  ASSERT_EQ(RunMatcher("--num_matched 7 --dry_run --pairs_path " + Quote(JoinPaths(dir_, "all.txt")), &output), 0)
      << output;
  EXPECT_EQ(ReadPairs(JoinPaths(dir_, "all.txt")).size(), 15u);
  EXPECT_EQ(ColmapDatabase::Open(database_)->NumRows("two_view_geometries"), static_cast<int64_t>(pairs.size()));

  // A COLMAP failure: exit status, log tail and log path are reported; non-zero exit.
  EXPECT_NE(RunMatcher("--num_matched 7 --colmap_args '--NoSuchOption 1'", &output), 0);
  EXPECT_NE(output.find("ERROR: colmap matches_importer failed (exit status"), std::string::npos) << output;
  EXPECT_NE(output.find("matches_importer.log"), std::string::npos) << output;
  EXPECT_NE(output.find("NoSuchOption"), std::string::npos) << output;  // from COLMAP's own message
  EXPECT_EQ(ColmapDatabase::Open(database_)->NumRows("two_view_geometries"), static_cast<int64_t>(pairs.size()));

  // Wrong --image_path: clear error before anything runs.
  const std::string saved = images_;
  images_ = JoinPaths(dir_, "elsewhere");
  CreateDirectories(images_);
  std::remove(DefaultDescriptorsPath(database_).c_str());
  EXPECT_NE(RunMatcher("--num_matched 2 --weights_path " + Quote(TinyWeights()), &output), 0);
  EXPECT_NE(output.find("6 database image(s) are neither under --image_path"), std::string::npos) << output;
  images_ = saved;
}

}  // namespace
}  // namespace megaloc
