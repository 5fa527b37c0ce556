// `revisitop_eval` on a tiny synthetic dataset in the official directory layout with the tiny
// MegaLoc model: cropping, extraction, caching, ranking and metrics checked independently.
#include <algorithm>
#include <cmath>
#include <numeric>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "megaloc/extraction/extraction.h"
#include "megaloc/io/descriptor_store.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/npy.h"
#include "megaloc/eval/revisitop/revisitop_eval.h"
#include "tests/common/testing.h"
#include "tests/revisitop/pickle_writer.h"

namespace megaloc {
namespace {

std::string TinyWeights() {
  return testing::TestDataPath("megaloc_tiny/megaloc_tiny_v2.safetensors");
}

cv::Mat RandomImage(int width, int height, uint64_t seed) {
  cv::RNG rng(seed);
  cv::Mat small(height / 8 + 1, width / 8 + 1, CV_8UC3);
  rng.fill(small, cv::RNG::UNIFORM, 0, 256);
  cv::Mat image;
  cv::resize(small, image, cv::Size(width, height), 0, 0, cv::INTER_LINEAR);
  cv::Mat noise(height, width, CV_8UC3);
  rng.fill(noise, cv::RNG::UNIFORM, 0, 40);
  return image + noise;
}

// Writes `bgr` losslessly (PNG bytes; OpenCV and PIL detect the format by content) to path.
void WritePngAs(const std::string& path, const cv::Mat& bgr) {
  std::vector<uint8_t> buffer;
  ASSERT_TRUE(cv::imencode(".png", bgr, buffer));
  WriteFileAtomically(path, std::string(buffer.begin(), buffer.end()));
}

struct Dataset {
  std::string root;
  std::string gnd_path;
  std::string jpg_dir;
};

// 2 queries, 6 database images. db_000 / db_001 are the exact (lossless) crops of the queries'
// boxes, so they must rank first; the others are real JPEGs.
//   q_000: bbx [10.5, 20.5, 110.5, 90.5] -> PIL box (10, 20, 110, 90); easy [0], hard [2], junk [3]
//   q_001: bbx [0, 0, 80.4, 60.6]        -> PIL box (0, 0, 80, 61);    easy [1]
Dataset MakeDataset() {
  Dataset d;
  d.root = testing::TempDir();
  const std::string dir = d.root + "/datasets/roxford5k";
  d.jpg_dir = dir + "/jpg";
  CreateDirectories(d.jpg_dir);
  const cv::Mat q0 = RandomImage(200, 150, 1);
  const cv::Mat q1 = RandomImage(120, 160, 2);
  WritePngAs(d.jpg_dir + "/q_000.jpg", q0);
  WritePngAs(d.jpg_dir + "/q_001.jpg", q1);
  WritePngAs(d.jpg_dir + "/db_000.jpg", q0(cv::Rect(10, 20, 100, 70)).clone());
  WritePngAs(d.jpg_dir + "/db_001.jpg", q1(cv::Rect(0, 0, 80, 61)).clone());
  for (int i = 2; i < 6; ++i) {
    cv::imwrite(d.jpg_dir + "/db_00" + std::to_string(i) + ".jpg", RandomImage(140, 100, 10 + i));
  }
  testing::PickleWriter w;
  w.Proto(2).EmptyDict().Mark();
  w.Str("imlist").StrList({"db_000", "db_001", "db_002", "db_003", "db_004", "db_005"});
  w.Str("qimlist").StrList({"q_000", "q_001"});
  w.Str("gnd").EmptyList().Mark();
  w.EmptyDict().Mark().Str("bbx").FloatList({10.5, 20.5, 110.5, 90.5});
  w.Str("easy").IntList({0}).Str("hard").IntList({2}).Str("junk").IntList({3}).SetItems();
  w.EmptyDict().Mark().Str("bbx").FloatList({0, 0, 80.4, 60.6});
  w.Str("easy").IntList({1}).Str("hard").IntList({}).Str("junk").IntList({}).SetItems();
  w.Appends().SetItems().Stop();
  d.gnd_path = dir + "/gnd_roxford5k.pkl";
  WriteFileAtomically(d.gnd_path, w.bytes());
  return d;
}

RevisitopEvalOptions BaseOptions(const Dataset& d) {
  RevisitopEvalOptions o;
  o.dataset = "roxford5k";
  o.data_root = d.root;
  o.weights_path = TinyWeights();
  o.model.num_threads = 1;
  return o;
}

TEST(RevisitopEndToEnd, TinyModelOfficialLayout) {
  const Dataset d = MakeDataset();
  RevisitopEvalOptions options = BaseOptions(d);
  options.descriptors_path = d.root + "/feats.h5";
  options.ranks_output_path = d.root + "/ranks.npy";
  const RevisitopReport report = RunRevisitopEvaluation(options);
  EXPECT_EQ(report.num_extracted, 8);
  EXPECT_EQ(report.num_cached, 0);
  EXPECT_EQ(report.preprocessing, "resize=322x322");
  EXPECT_EQ(report.num_database, 6);

  // Independent check: descriptors from the cache, scores in double, ranking, official metrics.
  auto file = DescriptorFile::Open(options.descriptors_path, DescriptorFile::Mode::kRead);
  EXPECT_EQ(file->GetAttribute(kAttrPreprocessing), "resize=322x322");
  const std::vector<std::string> qkeys = {"query_crop/q_000.jpg", "query_crop/q_001.jpg"};
  std::vector<std::vector<int64_t>> ranks(2);
  for (int q = 0; q < 2; ++q) {
    const Eigen::VectorXf qd = file->Read(qkeys[q]);
    EXPECT_NEAR(qd.norm(), 1.0f, 1e-5f);
    std::vector<double> scores(6);
    for (int i = 0; i < 6; ++i) {
      const Eigen::VectorXf xd = file->Read("db_00" + std::to_string(i) + ".jpg");
      scores[i] = qd.cast<double>().dot(xd.cast<double>());
    }
    ranks[q].resize(6);
    std::iota(ranks[q].begin(), ranks[q].end(), 0);
    std::stable_sort(ranks[q].begin(), ranks[q].end(),
                     [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
    // The exact crop of the query box is the best match.
    EXPECT_EQ(ranks[q][0], q) << "query " << q;
    EXPECT_NEAR(scores[q], 1.0, 1e-5);
  }
  const NpyArray written = ReadNpy(options.ranks_output_path);
  ASSERT_EQ(written.shape, (std::vector<int64_t>{6, 2}));
  EXPECT_EQ(RanksFromOfficialLayout(written.As<int64_t>(), 6, 2), ranks);

  const RevisitopGroundTruth gt = ReadRevisitopGroundTruth(d.gnd_path);
  const RevisitopEvaluation expected = EvaluateRevisitop(ranks, gt.gnd);
  for (int s = 0; s < 3; ++s) {
    EXPECT_EQ(report.evaluation.setups[s].nvalid, expected.setups[s].nvalid);
    EXPECT_DOUBLE_EQ(report.evaluation.setups[s].map, expected.setups[s].map);
  }
  EXPECT_DOUBLE_EQ(report.evaluation.Get(RevisitopSetup::kEasy).map, 1.0);
  EXPECT_EQ(report.evaluation.Get(RevisitopSetup::kHard).nvalid, 1);

  // The stored query descriptor is that of the PIL crop (10, 20, 110, 90) of the decoded image.
  {
    cv::Mat bgr = cv::imread(d.jpg_dir + "/q_000.jpg", cv::IMREAD_COLOR);
    cv::Mat rgb;
    cv::cvtColor(bgr(cv::Rect(10, 20, 100, 70)), rgb, cv::COLOR_BGR2RGB);
    rgb = rgb.clone();
    ModelOptions mo;
    mo.weights_path = TinyWeights();
    mo.num_threads = 1;
    MegaLocModel model(mo);
    const Eigen::VectorXf expected_q =
        model.Extract(PreprocessRgbImage(rgb.ptr<uint8_t>(), 100, 70, options.preprocessing));
    const Eigen::VectorXf stored = file->Read("query_crop/q_000.jpg");
    ASSERT_EQ(expected_q.size(), stored.size());
    EXPECT_LE((expected_q - stored).cwiseAbs().maxCoeff(), 1e-6f);
    // ... and differs from the uncropped image's descriptor.
    const Eigen::VectorXf full = model.Extract(
        LoadAndPreprocessImage(d.jpg_dir + "/q_000.jpg", options.preprocessing));
    EXPECT_GT((full - stored).cwiseAbs().maxCoeff(), 1e-4f);
  }
  file.reset();

  // Second run: everything comes from the cache, identical results, no weights needed.
  RevisitopEvalOptions cached = options;
  cached.weights_path.clear();
  const RevisitopReport again = RunRevisitopEvaluation(cached);
  EXPECT_EQ(again.num_extracted, 0);
  EXPECT_EQ(again.num_cached, 8);
  for (int s = 0; s < 3; ++s) {
    EXPECT_EQ(again.evaluation.setups[s].aps.size(), report.evaluation.setups[s].aps.size());
    EXPECT_DOUBLE_EQ(again.evaluation.setups[s].map, report.evaluation.setups[s].map);
  }

  // Another preprocessing with the same cache is refused.
  RevisitopEvalOptions other = options;
  other.preprocessing.mode = ResizeMode::kResizeMax;
  other.preprocessing.resize_max = 224;
  EXPECT_THROW(RunRevisitopEvaluation(other), FormatError);
}

TEST(RevisitopEndToEnd, R1mDistractorsGetIdsAfterTheDatabase) {
  const Dataset d = MakeDataset();
  const std::string r1m = d.root + "/datasets/revisitop1m";
  CreateDirectories(r1m + "/jpg/a");
  cv::imwrite(r1m + "/jpg/a/x1.jpg", RandomImage(130, 90, 31));
  cv::imwrite(r1m + "/jpg/a/x2.jpg", RandomImage(90, 130, 32));
  cv::imwrite(r1m + "/jpg/x3.jpg", RandomImage(100, 100, 33));
  WriteFileAtomically(r1m + "/revisitop1m.txt", "a/x1.jpg\na/x2.jpg\nx3.jpg\n");
  RevisitopEvalOptions options = BaseOptions(d);
  options.r1m_dir = r1m;
  options.descriptors_path = d.root + "/feats_r1m.h5";
  options.ranks_output_path = d.root + "/ranks_r1m.npy";
  const RevisitopReport report = RunRevisitopEvaluation(options);
  EXPECT_EQ(report.num_distractors, 3);
  EXPECT_EQ(report.num_extracted, 11);
  const NpyArray written = ReadNpy(options.ranks_output_path);
  ASSERT_EQ(written.shape, (std::vector<int64_t>{9, 2}));
  const auto ranks = RanksFromOfficialLayout(written.As<int64_t>(), 9, 2);
  for (const auto& list : ranks) {
    std::vector<int64_t> sorted = list;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8}));
  }
  EXPECT_EQ(ranks[0][0], 0);
  EXPECT_EQ(ranks[1][0], 1);
  const RevisitopEvaluation expected =
      EvaluateRevisitop(ranks, ReadRevisitopGroundTruth(d.gnd_path).gnd);
  for (int s = 0; s < 3; ++s) {
    EXPECT_DOUBLE_EQ(report.evaluation.setups[s].map, expected.setups[s].map);
  }
  auto file = DescriptorFile::Open(options.descriptors_path, DescriptorFile::Mode::kRead);
  EXPECT_TRUE(file->Has("jpg/a/x1.jpg"));
  EXPECT_TRUE(file->Has("jpg/x3.jpg"));
  EXPECT_EQ(file->Dtype("jpg/x3.jpg"), DescriptorDtype::kFloat32);
}

TEST(RevisitopEndToEnd, ReusesAFloat16ExtractFile) {
  // Database descriptors made beforehand by the extraction pipeline (as `megaloc extract` does,
  // float16) with the same preprocessing are reused; the queries are added in float16 too.
  const Dataset d = MakeDataset();
  ExtractionOptions eo;
  eo.image_path = d.jpg_dir;
  eo.output_path = d.root + "/feats16.h5";
  eo.image_names = {"db_000.jpg", "db_001.jpg", "db_002.jpg", "db_003.jpg", "db_004.jpg",
                    "db_005.jpg"};
  eo.model.weights_path = TinyWeights();
  eo.model.num_threads = 1;
  eo.preprocessing = RevisitopDefaultPreprocessing();
  eo.dtype = DescriptorDtype::kFloat16;
  ASSERT_EQ(RunExtraction(eo).num_extracted, 6u);
  RevisitopEvalOptions options = BaseOptions(d);
  options.descriptors_path = eo.output_path;
  const RevisitopReport report = RunRevisitopEvaluation(options);
  EXPECT_EQ(report.num_cached, 6);
  EXPECT_EQ(report.num_extracted, 2);
  EXPECT_DOUBLE_EQ(report.evaluation.Get(RevisitopSetup::kEasy).map, 1.0);
  auto file = DescriptorFile::Open(eo.output_path, DescriptorFile::Mode::kRead);
  EXPECT_EQ(file->Dtype("query_crop/q_000.jpg"), DescriptorDtype::kFloat16);
}

TEST(RevisitopEndToEnd, MissingImageFailsBeforeAnyWork) {
  const Dataset d = MakeDataset();
  ASSERT_EQ(std::remove((d.jpg_dir + "/db_004.jpg").c_str()), 0);
  RevisitopEvalOptions options = BaseOptions(d);
  options.descriptors_path = d.root + "/feats.h5";
  try {
    RunRevisitopEvaluation(options);
    FAIL() << "no error";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("db_004.jpg: image not found"), std::string::npos)
        << e.what();
  }
}

TEST(RevisitopEndToEnd, CorruptImageKeepsWhatWasExtracted) {
  const Dataset d = MakeDataset();
  // Truncate a JPEG database image: reported by name, every other descriptor is stored.
  const std::string bad = d.jpg_dir + "/db_004.jpg";
  const std::string bytes = ReadFileToString(bad);
  WriteFileAtomically(bad, bytes.substr(0, bytes.size() / 2));
  RevisitopEvalOptions options = BaseOptions(d);
  options.descriptors_path = d.root + "/feats.h5";
  try {
    RunRevisitopEvaluation(options);
    FAIL() << "no error";
  } catch (const ImageError& e) {
    EXPECT_NE(std::string(e.what()).find("db_004.jpg"), std::string::npos) << e.what();
  }
  auto file = DescriptorFile::Open(options.descriptors_path, DescriptorFile::Mode::kRead);
  EXPECT_EQ(file->ListNames().size(), 7u);  // 2 queries + 5 good database images
  EXPECT_TRUE(file->Has("query_crop/q_001.jpg"));
  EXPECT_TRUE(file->Has("db_005.jpg"));
  EXPECT_FALSE(file->Has("db_004.jpg"));
  file.reset();
  // Repairing the image and rerunning extracts only the missing one.
  cv::imwrite(bad, RandomImage(140, 100, 14));
  const RevisitopReport report = RunRevisitopEvaluation(options);
  EXPECT_EQ(report.num_extracted, 1);
  EXPECT_EQ(report.num_cached, 7);
}

TEST(RevisitopEndToEnd, CommandLineWithModel) {
  const Dataset d = MakeDataset();
  const std::string out = d.root + "/results.json";
  const std::string log = d.root + "/log.txt";
  const std::string cmd = "'" + testing::MegalocExecutable() + "' revisitop_eval --dataset roxford5k" +
                          " --data_root '" + d.root + "' --weights_path '" + TinyWeights() +
                          "' --resize_max 224 --num_threads 1 --output_path '" + out + "' > '" +
                          log + "' 2>&1";
  ASSERT_EQ(testing::RunShell(cmd), 0) << ReadFileToString(log);
  const nlohmann::json j = nlohmann::json::parse(ReadFileToString(out));
  EXPECT_EQ(j["dataset"], "roxford5k");
  EXPECT_EQ(j["preprocessing"], "resize_max=224");
  EXPECT_EQ(j["nvalid"]["easy"], 2);
  EXPECT_EQ(j["nvalid"]["hard"], 1);
  EXPECT_DOUBLE_EQ(j["mAP"]["easy"].get<double>(), 100.0);
  EXPECT_TRUE(j["ap_per_query"]["hard"][1].is_null());
  EXPECT_EQ(j["num_extracted"], 8);
  const std::string printed = ReadFileToString(log);
  EXPECT_NE(printed.find(">> roxford5k: mAP E: 100.0, M: "), std::string::npos) << printed;
}

}  // namespace
}  // namespace megaloc

namespace megaloc {
namespace {

// αQE on a hand-computed case (descriptors cached, so no model runs). Query q = e1; database
// A = n(0.6 e1 + e2) (easy), B = n(e1 + e2) (easy), N = n(e1 + 1.5 e3) (negative).
// Plain ranking: B 0.707, N 0.555, A 0.514 -> AP = 0.5 + (1/2 + 2/3)/2 * 0.5 = 0.791667.
// αQE with 1 neighbour, alpha 3: q' = n(q + 0.707^3 B) = n(1.25 e1 + 0.25 e2): B 0.832, A 0.673,
// N 0.544 -> both positives first, AP = 1. DBA is run for its plumbing (the ranks source names it);
// its effect on mAP is measured by bench/revisitop_expansion_bench.cc.
TEST(RevisitopEndToEnd, AlphaQueryExpansionHandComputed) {
  const std::string root = testing::TempDir();
  const std::string dir = root + "/datasets/roxford5k";
  CreateDirectories(dir + "/jpg");
  for (const std::string name : {"a", "b", "n", "q"}) WriteFileAtomically(dir + "/jpg/" + name + ".jpg", "");
  testing::PickleWriter w;
  w.Proto(2).EmptyDict().Mark();
  w.Str("imlist").StrList({"a", "b", "n"});
  w.Str("qimlist").StrList({"q"});
  w.Str("gnd").EmptyList().Mark();
  w.EmptyDict().Mark().Str("bbx").FloatList({0, 0, 8, 8});
  w.Str("easy").IntList({0, 1}).Str("hard").IntList({}).Str("junk").IntList({}).SetItems();
  w.Appends().SetItems().Stop();
  WriteFileAtomically(dir + "/gnd_roxford5k.pkl", w.bytes());
  const std::string cache = root + "/feats.h5";
  {
    auto file = DescriptorFile::Open(cache, DescriptorFile::Mode::kCreate);
    auto put = [&](const std::string& name, float x, float y, float z) {
      const float norm = std::sqrt(x * x + y * y + z * z);
      const float v[3] = {x / norm, y / norm, z / norm};
      file->Write(name, v, 3, 8, 8, DescriptorDtype::kFloat32);
    };
    put("query_crop/q.jpg", 1, 0, 0);
    put("a.jpg", 0.6f, 1, 0);
    put("b.jpg", 1, 1, 0);
    put("n.jpg", 1, 0, 1.5f);
  }
  RevisitopEvalOptions options;
  options.dataset = "roxford5k";
  options.data_root = root;
  options.descriptors_path = cache;
  const RevisitopReport plain = RunRevisitopEvaluation(options);
  EXPECT_NEAR(plain.evaluation.Get(RevisitopSetup::kEasy).map, 0.5 + (0.5 + 2.0 / 3.0) / 2 * 0.5, 1e-9);
  EXPECT_EQ(plain.ranks_source, "dot product");
  options.expansion.qe_num = 1;
  const RevisitopReport qe = RunRevisitopEvaluation(options);
  EXPECT_NEAR(qe.evaluation.Get(RevisitopSetup::kEasy).map, 1.0, 1e-9);
  EXPECT_EQ(qe.ranks_source, "dot product after alpha-QE (1 neighbours, alpha 3)");
  options.expansion.dba_num = 1;
  const RevisitopReport both = RunRevisitopEvaluation(options);
  EXPECT_EQ(both.ranks_source, "dot product after DBA (1 neighbours, alpha 3) and alpha-QE (1 neighbours, alpha 3)");
  options.r1m_dir = root;  // expansion holds the database in memory: not with R1M
  EXPECT_FALSE(options.Check());
}

}  // namespace
}  // namespace megaloc
