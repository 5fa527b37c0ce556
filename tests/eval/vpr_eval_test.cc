// `megaloc vpr_eval` through the built binary: a tiny generated dataset with the tiny model (known
// recalls, JSON, cache reuse computing nothing), cache-settings checks and bad inputs (one error
// line naming the file, non-zero exit).
#include <algorithm>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "megaloc/io/descriptor_store.h"
#include "megaloc/util/file_utils.h"
#include "tests/common/testing.h"
#include "tests/extraction/test_images.h"

namespace megaloc {
namespace {

std::string Quote(const std::string& s) { return "'" + s + "'"; }

// Runs `megaloc vpr_eval <args>` without weights from the environment; returns the exit status and
// stdout + stderr in *output (stdout alone in *stdout_text if given).
int RunVprEval(const std::string& args, std::string* output, std::string* stdout_text = nullptr) {
  const std::string dir = testing::TempDir();
  const std::string out = dir + "/stdout.txt", err = dir + "/stderr.txt";
  const int rc = testing::RunShell("env -u MEGALOC_WEIGHTS HOME=" + Quote(dir) + " " +
                                   Quote(testing::MegalocExecutable()) + " vpr_eval " + args + " > " +
                                   Quote(out) + " 2> " + Quote(err));
  if (stdout_text != nullptr) *stdout_text = ReadFileToString(out);
  *output = ReadFileToString(out) + ReadFileToString(err);
  return rc;
}

int CountLines(const std::string& text) { return static_cast<int>(std::count(text.begin(), text.end(), '\n')); }

// Database every 100 m along the easting (names in sub-folders), queries that are pixel copies of
// database images: q0 = db0's picture 5 m from db0 (R@1 hit), q1 = db1's picture 1 km away (no
// positive), q2 = db5's picture 20 m from db3 (top-1 wrong, db3 further down).
std::string MakeTinyDataset() {
  const std::string root = testing::TempDir() + "/tiny_vpr";
  const std::vector<std::string> db = {"database/@0@0@a@.png",         "database/@100@0@b@.png",
                                       "database/@200@0@c@.png",       "database/sub/@300@0@d@.png",
                                       "database/sub/@400@0@e@.png",   "database/sub/x/@500@0@f@.png"};
  for (size_t i = 0; i < db.size(); ++i) testing::WriteSceneImage(root, db[i], 98, 70, static_cast<int>(i) + 1);
  testing::WriteSceneImage(root, "queries/@5@0@q0@.png", 98, 70, 1);
  testing::WriteSceneImage(root, "queries/@1000@0@q1@.png", 98, 70, 2);
  testing::WriteSceneImage(root, "queries/sub/@300@20@q2@.png", 98, 70, 6);
  return root;
}

TEST(VprEvalCli, TinyDatasetEndToEndAndCacheReuse) {
  const std::string root = MakeTinyDataset();
  const std::string dir = testing::TempDir();
  const std::string cache = dir + "/cache.h5", json_path = dir + "/r.json";
  const std::string common = "--dataset_path " + Quote(root) + " --descriptors " + Quote(cache) +
                             " --output_path " + Quote(json_path);
  std::string log, stdout_text;
  ASSERT_EQ(RunVprEval(common + " --weights_path " + Quote(testing::TinyWeightsPath()), &log, &stdout_text), 0)
      << log;
  const nlohmann::json first = nlohmann::json::parse(ReadFileToString(json_path));
  EXPECT_EQ(first.at("num_queries"), 3);
  EXPECT_EQ(first.at("num_database"), 6);
  EXPECT_EQ(first.at("queries_without_positives"), 1);
  EXPECT_EQ(first.at("num_extracted"), 9);
  EXPECT_EQ(first.at("num_cached"), 0);
  EXPECT_EQ(first.at("preprocessing"), "native");  // the authors' default path
  EXPECT_EQ(first.at("descriptor_dim"), 48);
  EXPECT_EQ(first.at("positive_dist_threshold"), 25.0);
  // Keys in the order of --recall_values.
  std::vector<std::string> keys;
  const nlohmann::ordered_json ordered = nlohmann::ordered_json::parse(ReadFileToString(json_path));
  for (const auto& item : ordered.at("recall").items()) keys.push_back(item.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"1", "5", "10", "20"}));
  const auto& recall = first.at("recall");
  EXPECT_EQ(recall.at("1").get<double>(), 1.0 / 3.0 * 100.0);
  EXPECT_EQ(recall.at("10").get<double>(), 2.0 / 3.0 * 100.0);
  EXPECT_EQ(recall.at("20").get<double>(), 2.0 / 3.0 * 100.0);

  // Independent check of R@5 from the cached descriptors: rank of db3 for q2 by a plain sort.
  {
    const auto file = DescriptorFile::Open(cache, DescriptorFile::Mode::kRead);
    EXPECT_EQ(file->GetAttribute(kAttrPreprocessing), "native");
    EXPECT_EQ(file->GetAttribute(kAttrDtype), "float32");
    const Eigen::VectorXf q2 = file->Read("queries/sub/@300@20@q2@.png");
    std::vector<std::string> db_names = {"database/@0@0@a@.png",       "database/@100@0@b@.png",
                                         "database/@200@0@c@.png",     "database/sub/@300@0@d@.png",
                                         "database/sub/@400@0@e@.png", "database/sub/x/@500@0@f@.png"};
    std::vector<double> score;
    for (const auto& name : db_names) score.push_back(file->Read(name).cast<double>().dot(q2.cast<double>()));
    std::vector<int> order(6);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return score[a] > score[b]; });
    EXPECT_EQ(order[0], 5);  // its own picture first
    const int rank_db3 = static_cast<int>(std::find(order.begin(), order.end(), 3) - order.begin());
    EXPECT_EQ(recall.at("5").get<double>(), (rank_db3 < 5 ? 2.0 : 1.0) / 3.0 * 100.0);
  }
  // The reference's summary line on stdout.
  std::ostringstream expected_line;
  expected_line << "R@1: 33.3, R@5: " << (recall.at("5").get<double>() > 50 ? "66.7" : "33.3")
                << ", R@10: 66.7, R@20: 66.7\n";
  EXPECT_EQ(stdout_text, expected_line.str());

  // Second run: everything comes from the cache, nothing is extracted; no weights needed either.
  ASSERT_EQ(RunVprEval(common + " --weights_path " + Quote(testing::TinyWeightsPath()), &log), 0) << log;
  const nlohmann::json second = nlohmann::json::parse(ReadFileToString(json_path));
  EXPECT_EQ(second.at("num_extracted"), 0);
  EXPECT_EQ(second.at("num_cached"), 9);
  EXPECT_EQ(second.at("recall"), first.at("recall"));
  EXPECT_NE(log.find("0 extracted, 9 cached"), std::string::npos) << log;
  ASSERT_EQ(RunVprEval(common + " --recall_values 1 6", &log, &stdout_text), 0) << log;
  EXPECT_EQ(stdout_text, "R@1: 33.3, R@6: 66.7\n");

  // Other settings on the same cache: one clear error, nothing recomputed.
  ASSERT_NE(RunVprEval(common + " --quiet --resize 322 322 --weights_path " + Quote(testing::TinyWeightsPath()),
                       &log),
            0);
  EXPECT_EQ(CountLines(log), 1) << log;
  EXPECT_NE(log.find("ERROR: " + cache), std::string::npos) << log;
  EXPECT_NE(log.find("preprocessing=native"), std::string::npos) << log;
  // Another checkpoint file (the v1 form of the same tiny model has another sha256).
  ASSERT_NE(RunVprEval(common + " --quiet --weights_path " +
                           Quote(testing::TestDataPath("megaloc_tiny/megaloc_tiny_v1.torch")),
                       &log),
            0);
  EXPECT_EQ(CountLines(log), 1) << log;
  EXPECT_NE(log.find("weights_sha256"), std::string::npos) << log;

  // A new query image: only it is extracted on the next run.
  testing::WriteSceneImage(root, "queries/@100@3@q3@.png", 98, 70, 2);
  ASSERT_EQ(RunVprEval(common + " --weights_path " + Quote(testing::TinyWeightsPath()), &log), 0) << log;
  const nlohmann::json third = nlohmann::json::parse(ReadFileToString(json_path));
  EXPECT_EQ(third.at("num_extracted"), 1);
  EXPECT_EQ(third.at("num_queries"), 4);
  EXPECT_EQ(third.at("recall").at("1").get<double>(), 2.0 / 4.0 * 100.0);  // q3 = db1's picture, 3 m away
}

TEST(VprEvalCli, WithoutCacheUsesATemporaryFile) {
  const std::string root = MakeTinyDataset();
  const std::string json_path = testing::TempDir() + "/r.json";
  std::string log, stdout_text;
  ASSERT_EQ(RunVprEval("--dataset_path " + Quote(root) + " --output_path " + Quote(json_path) +
                           " --recall_values 1 --quiet --weights_path " + Quote(testing::TinyWeightsPath()),
                       &log, &stdout_text),
            0)
      << log;
  EXPECT_EQ(stdout_text, "R@1: 33.3\n");
  EXPECT_EQ(log, stdout_text);  // --quiet: nothing else
  EXPECT_EQ(nlohmann::json::parse(ReadFileToString(json_path)).at("num_extracted"), 9);
}

// Bad inputs: exit status != 0 and exactly one line, naming the file.
void ExpectOneErrorLine(const std::string& args, const std::string& must_contain) {
  std::string log;
  EXPECT_NE(RunVprEval(args + " --quiet", &log), 0) << log;
  EXPECT_EQ(CountLines(log), 1) << log;
  EXPECT_EQ(log.rfind("ERROR: ", 0), 0u) << log;
  EXPECT_NE(log.find(must_contain), std::string::npos) << "expected '" << must_contain << "' in: " << log;
}

TEST(VprEvalCli, BadInputsGiveOneLineNamingTheFile) {
  const std::string weights = " --weights_path " + Quote(testing::TinyWeightsPath());
  const std::string out = " --output_path " + Quote(testing::TempDir() + "/r.json");
  {  // a name without UTM fields
    const std::string root = testing::TempDir() + "/bad_name";
    testing::WriteSceneImage(root, "database/@0@0@.png", 98, 70, 1);
    testing::WriteSceneImage(root, "queries/sub/IMG_0001.png", 98, 70, 2);
    ExpectOneErrorLine("--dataset_path " + Quote(root) + out + weights, root + "/queries/sub/IMG_0001.png");
  }
  {  // a non-numeric northing
    const std::string root = testing::TempDir() + "/bad_number";
    testing::WriteSceneImage(root, "database/@0@north@.png", 98, 70, 1);
    testing::WriteSceneImage(root, "queries/@0@0@.png", 98, 70, 2);
    ExpectOneErrorLine("--dataset_path " + Quote(root) + out + weights, root + "/database/@0@north@.png");
  }
  {  // an empty queries folder
    const std::string root = testing::TempDir() + "/empty";
    testing::WriteSceneImage(root, "database/@0@0@.png", 98, 70, 1);
    CreateDirectories(root + "/queries");
    ExpectOneErrorLine("--dataset_path " + Quote(root) + out + weights, root + "/queries");
  }
  {  // the results file and the cache are the same file (and the weights are no output)
    const std::string root = MakeTinyDataset();
    const std::string same = testing::TempDir() + "/same.h5";
    ExpectOneErrorLine("--dataset_path " + Quote(root) + " --output_path " + Quote(same) + weights +
                           " --descriptors " + Quote(same),
                       "same.h5: the same file is given for two outputs");
    ExpectOneErrorLine("--dataset_path " + Quote(root) + out + weights + " --descriptors " +
                           Quote(testing::TinyWeightsPath()),
                       "megaloc_tiny_v2.safetensors");
  }
  {  // a missing dataset
    ExpectOneErrorLine("--dataset_path /nonexistent/vpr" + out + weights, "/nonexistent/vpr");
  }
  {  // mismatched descriptor dimensions in a cache (queries 32-d, database 48-d)
    const std::string root = testing::TempDir() + "/dims";
    testing::WriteSceneImage(root, "database/@0@0@.png", 98, 70, 1);
    testing::WriteSceneImage(root, "database/@50@0@.png", 98, 70, 3);
    testing::WriteSceneImage(root, "queries/@1@0@.png", 98, 70, 2);
    const std::string cache = testing::TempDir() + "/dims.h5";
    {
      const auto file = DescriptorFile::Open(cache, DescriptorFile::Mode::kCreate);
      const std::vector<float> d48(48, 0.1f), d32(32, 0.1f);
      file->Write("database/@0@0@.png", d48.data(), 48, 98, 70, DescriptorDtype::kFloat32);
      file->Write("database/@50@0@.png", d48.data(), 48, 98, 70, DescriptorDtype::kFloat32);
      file->Write("queries/@1@0@.png", d32.data(), 32, 98, 70, DescriptorDtype::kFloat32);
      file->Flush();
    }
    ExpectOneErrorLine("--dataset_path " + Quote(root) + out + " --descriptors " + Quote(cache), cache);
    // ... and inside the database (48-d then 32-d; the query 48-d).
    {
      const auto file = DescriptorFile::Open(cache, DescriptorFile::Mode::kAppend);
      const std::vector<float> d48(48, 0.1f), d32(32, 0.1f);
      file->Write("queries/@1@0@.png", d48.data(), 48, 98, 70, DescriptorDtype::kFloat32);
      file->Write("database/@50@0@.png", d32.data(), 32, 98, 70, DescriptorDtype::kFloat32);
      file->Flush();
    }
    ExpectOneErrorLine("--dataset_path " + Quote(root) + out + " --descriptors " + Quote(cache), cache);
  }
  {  // descriptors missing from the cache and no weights
    const std::string root = MakeTinyDataset();
    ExpectOneErrorLine("--dataset_path " + Quote(root) + out, "--weights_path");
  }
  {  // recall values that do not increase
    const std::string root = MakeTinyDataset();
    ExpectOneErrorLine("--dataset_path " + Quote(root) + out + weights + " --recall_values 5 1",
                       "--recall_values");
  }
  {  // an image the model cannot use (too small): named, the others are kept in the cache
    const std::string root = MakeTinyDataset();
    testing::WriteSceneImage(root, "database/@900@0@tiny@.png", 20, 20, 9);
    const std::string cache = testing::TempDir() + "/kept.h5";
    ExpectOneErrorLine("--dataset_path " + Quote(root) + out + weights + " --descriptors " + Quote(cache),
                       "@900@0@tiny@.png");
    EXPECT_EQ(DescriptorFile::Open(cache, DescriptorFile::Mode::kRead)->ListDescriptorNames().size(), 9u);
  }
}

}  // namespace
}  // namespace megaloc
