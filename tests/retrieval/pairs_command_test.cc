// `megaloc pairs` end to end: the built executable on real HDF5 files (summary, files, errors).

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "megaloc/util/string_utils.h"

#include "megaloc/io/descriptor_store.h"
#include "megaloc/retrieval/pair_graph.h"
#include "megaloc/retrieval/pairs_io.h"
#include "megaloc/util/file_utils.h"
#include "tests/common/testing.h"
#include "tests/retrieval/pairs_test_utils.h"

namespace megaloc {
namespace {

using testing::RunPairsCommand;
using testing::WriteRandomDescriptors;

TEST(PairsCommand, WritesPairsAndSummary) {
  const std::string dir = testing::TempDir();
  const std::string h5 = JoinPaths(dir, "global.h5");
  std::vector<std::string> names;
  for (int i = 0; i < 12; ++i) names.push_back("seq" + std::to_string(i % 2) + "/f" + std::to_string(i) + ".jpg");
  WriteRandomDescriptors(h5, names, 64, 1);
  const std::string pairs = JoinPaths(dir, "out/pairs.txt");
  const std::string scores = JoinPaths(dir, "out/scores.txt");
  std::string output;
  ASSERT_EQ(RunPairsCommand("--descriptors " + h5 + " --output_path " + pairs +
                                " --num_matched 3 --min_score -1 --scores_path " + scores +
                                " --memory_limit 64KiB --query_prefix seq0/",
                            &output),
            0)
      << output;
  EXPECT_NE(output.find("Queries:          6"), std::string::npos) << output;
  EXPECT_NE(output.find("Database images:  12"), std::string::npos) << output;
  EXPECT_NE(output.find("Pairs written:    18"), std::string::npos) << output;
  const auto written = ReadPairs(pairs);
  ASSERT_EQ(written.size(), 18u);
  for (const auto& p : written) {
    EXPECT_EQ(p.name1.rfind("seq0/", 0), 0u);
    EXPECT_NE(p.name1, p.name2);
  }
  EXPECT_EQ(ReadPairScores(scores).size(), 18u);

  // Help, and one clear error line with a non-zero exit for bad input.
  EXPECT_EQ(RunPairsCommand("--help", &output), 0);
  EXPECT_NE(output.find("--num_matched"), std::string::npos);
  EXPECT_NE(RunPairsCommand("--descriptors " + h5 + " --output_path " + pairs, &output), 0);
  EXPECT_NE(output.find("ERROR"), std::string::npos) << output;
  EXPECT_NE(RunPairsCommand("--descriptors " + h5 + " --output_path " + pairs +
                                " --num_matched 3 --query_prefix nothing/",
                            &output),
            0);
  EXPECT_NE(output.find("ERROR: Could not find any query image with the prefix nothing/"),
            std::string::npos)
      << output;
  EXPECT_NE(RunPairsCommand("--descriptors " + JoinPaths(dir, "missing.h5") + " --output_path " +
                                pairs + " --num_matched 3",
                            &output),
            0);
  EXPECT_NE(output.find("missing.h5"), std::string::npos) << output;
  EXPECT_NE(RunPairsCommand("--descriptors " + h5 + " --output_path " + pairs +
                                " --num_matched 3 --memory_limit lots",
                            &output),
            0);
  EXPECT_NE(output.find("ERROR: Invalid byte size 'lots'"), std::string::npos) << output;
  EXPECT_NE(RunPairsCommand("--descriptors " + h5 + " --output_path " + pairs +
                                " --num_matched 3 --backend flann",
                            &output),
            0);
  EXPECT_NE(output.find("Unknown retrieval backend 'flann'"), std::string::npos) << output;
  // Non-finite float options: exactly one plain error line (no "Check failed" log line before it).
  for (const std::string option : {"--min_score nan", "--min_score inf", "--max_distance nan"}) {
    EXPECT_NE(RunPairsCommand("--descriptors " + h5 + " --output_path " + pairs + " --num_matched 3 " + option,
                              &output),
              0)
        << option;
    const std::string name = option.substr(2, option.find(' ') - 2);
    EXPECT_EQ(output.find("ERROR: Invalid option " + name + ": "), 0u) << output;
    EXPECT_EQ(std::count(output.begin(), output.end(), '\n'), 1) << output;
  }
}

TEST(PairsCommand, NamesWithWhitespace) {
  const std::string dir = testing::TempDir();
  const std::string h5 = JoinPaths(dir, "names.h5");
  // megaloc never writes such names; hloc (h5py) does.
  const std::string script = JoinPaths(dir, "write_names.py");
  WriteFileAtomically(script,
                      "import sys, h5py, numpy as np\n"
                      "rng = np.random.default_rng(3)\n"
                      "with h5py.File(sys.argv[1], 'w') as f:\n"
                      "    for name in ['ok1.jpg', 'ok2.jpg', 'ok3.jpg', 'bad name.jpg', 'tab\\tname.jpg']:\n"
                      "        v = rng.standard_normal(16).astype(np.float32)\n"
                      "        g = f.create_group(name)\n"
                      "        g.create_dataset('global_descriptor', data=(v / np.linalg.norm(v)).astype(np.float16))\n"
                      "        g.create_dataset('image_size', data=np.array([320, 240], dtype=np.int64))\n");
  if (testing::RunShell("/usr/bin/python3 -c 'import h5py' 2> /dev/null") != 0) GTEST_SKIP() << "python3-h5py missing";
  ASSERT_EQ(testing::RunShell("/usr/bin/python3 '" + script + "' '" + h5 + "'"), 0);
  const std::string pairs = JoinPaths(dir, "pairs.txt");
  std::string output;
  EXPECT_NE(RunPairsCommand("--descriptors " + h5 + " --output_path " + pairs + " --num_matched 2", &output), 0);
  EXPECT_NE(output.find("2 image name(s) contain whitespace"), std::string::npos) << output;
  EXPECT_NE(output.find("'bad name.jpg'"), std::string::npos) << output;
  EXPECT_NE(output.find("'tab\\tname.jpg'"), std::string::npos) << output;
  EXPECT_NE(output.find("--skip_invalid_names"), std::string::npos) << output;
  EXPECT_FALSE(FileExists(pairs));
  ASSERT_EQ(RunPairsCommand("--descriptors " + h5 + " --output_path " + pairs +
                                " --num_matched 2 --min_score -1 --skip_invalid_names",
                            &output),
            0)
      << output;
  EXPECT_NE(output.find("Skipped:          2 image(s)"), std::string::npos) << output;
  const std::string text = ReadFileToString(pairs);
  int lines = 0;
  for (const std::string& line : Split(text, '\n')) {
    if (line.empty()) continue;
    ++lines;
    EXPECT_EQ(SplitWhitespace(line).size(), 2u) << line;
    EXPECT_EQ(line.find('\t'), std::string::npos);
  }
  EXPECT_EQ(lines, 6);  // 3 images x 2
}

// Two folders of 6 frames: sequential pairs, the stats line, --connect and --loop_closure.
TEST(PairsCommand, SequentialConnectAndStats) {
  const std::string dir = testing::TempDir();
  const std::string h5 = JoinPaths(dir, "seq.h5");
  std::vector<std::string> names;
  for (int i = 0; i < 6; ++i) names.push_back("seqA/f" + std::to_string(i) + ".jpg");
  for (int i = 0; i < 6; ++i) names.push_back("seqB/g" + std::to_string(i) + ".jpg");
  WriteRandomDescriptors(h5, names, 32, 5);
  const std::string pairs = JoinPaths(dir, "seq_pairs.txt");
  std::string output;
  ASSERT_EQ(RunPairsCommand("--descriptors " + h5 + " --output_path " + pairs +
                                " --num_matched 0 --sequential_overlap 2",
                            &output),
            0)
      << output;
  // Per folder 5 + 4 pairs; 2 components; mean degree 2 * 18 / 12 = 3.
  EXPECT_NE(output.find("Pair graph:       18 unique pairs (0 retrieval, 18 sequential, 0 spatial, 0 "
                        "connect), components 2 -> 2, mean degree 3.00, 0 isolated"),
            std::string::npos)
      << output;
  EXPECT_EQ(ReadPairs(pairs).size(), 18u);
  ASSERT_EQ(RunPairsCommand("--descriptors " + h5 + " --output_path " + pairs +
                                " --num_matched 0 --sequential_overlap 2 --connect",
                            &output),
            0)
      << output;
  EXPECT_NE(output.find("Pair graph:       19 unique pairs (0 retrieval, 18 sequential, 0 spatial, 1 "
                        "connect), components 2 -> 1"),
            std::string::npos)
      << output;
  const auto written = ReadPairs(pairs);
  EXPECT_EQ(DescribePairGraph(names, written).num_components, 1);
  // The connecting pair is the one bridge (each folder's overlap-2 chain has none): one more pair
  // covers it, and --cover_bridges alone implies --connect.
  ASSERT_EQ(RunPairsCommand("--descriptors " + h5 + " --output_path " + pairs +
                                " --num_matched 0 --sequential_overlap 2 --cover_bridges",
                            &output),
            0)
      << output;
  EXPECT_NE(output.find("Pair graph:       20 unique pairs (0 retrieval, 18 sequential, 0 spatial, 1 "
                        "connect, 1 bridge), components 2 -> 1"),
            std::string::npos)
      << output;
  EXPECT_NE(output.find("Bridges:          1 -> 0, 1 pair(s) added in 1 round(s)"), std::string::npos)
      << output;
  const auto covered = ReadPairs(pairs);
  EXPECT_TRUE(FindBridges(names, covered).empty());
  // Sequences by pattern: one sequence over both folders (the letter after 'seq' is ignored).
  ASSERT_EQ(RunPairsCommand("--descriptors " + h5 + " --output_path " + pairs +
                                " --num_matched 0 --sequential_overlap 1 --sequence_pattern '^(seq)'",
                            &output),
            0)
      << output;
  EXPECT_EQ(ReadPairs(pairs).size(), 11u);
  // Loop closure: no retrieved pair of the same folder within 3 frames.
  ASSERT_EQ(RunPairsCommand("--descriptors " + h5 + " --output_path " + pairs +
                                " --num_matched 3 --min_score -1 --loop_closure 3 --unique",
                            &output),
            0)
      << output;
  for (const auto& p : ReadPairs(pairs)) {
    if (p.name1.substr(0, 5) != p.name2.substr(0, 5)) continue;
    const int a = std::stoi(p.name1.substr(6)), b = std::stoi(p.name2.substr(6));
    EXPECT_GT(std::abs(a - b), 3) << p.name1 << " " << p.name2;
  }
  // Graph options need the SfM mode.
  EXPECT_NE(RunPairsCommand("--descriptors " + h5 + " --output_path " + pairs +
                                " --num_matched 2 --connect --query_prefix seqA/",
                            &output),
            0);
  EXPECT_NE(output.find("need the SfM mode"), std::string::npos) << output;
}

TEST(PairsCommand, PositionPriors) {
  const std::string dir = testing::TempDir();
  const std::string h5 = JoinPaths(dir, "gps.h5");
  const std::vector<std::string> names = {"a.jpg", "b.jpg", "c.jpg", "d.jpg"};
  WriteRandomDescriptors(h5, names, 16, 9);
  // On the equator, 0.001 degree of longitude apart = 111.32 m (a * 1.745e-5 rad).
  const std::string csv = JoinPaths(dir, "gps.csv");
  WriteFileAtomically(csv, "name,lat,lon,alt\na.jpg,0,0,0\nb.jpg,0,0.001,0\nc.jpg,0,0.003,0\nd.jpg,0,0.01,0\n");
  const std::string pairs = JoinPaths(dir, "gps_pairs.txt");
  std::string output;
  ASSERT_EQ(RunPairsCommand("--descriptors " + h5 + " --output_path " + pairs +
                                " --num_matched 0 --spatial_k 1 --position_priors " + csv,
                            &output),
            0)
      << output;
  EXPECT_EQ(ReadPairs(pairs), (std::vector<ImagePair>{{"a.jpg", "b.jpg"}, {"c.jpg", "b.jpg"}, {"d.jpg", "c.jpg"}}));
  EXPECT_NE(output.find("Images w/ prior:  4 of 4"), std::string::npos) << output;
  // Retrieval of everything, then only pairs within 250 m: a-b (111 m), b-c (223 m), a-c (334 m) no.
  ASSERT_EQ(RunPairsCommand("--descriptors " + h5 + " --output_path " + pairs +
                                " --num_matched 3 --min_score -1 --unique --max_distance 250 "
                                "--position_priors " + csv,
                            &output),
            0)
      << output;
  std::set<std::pair<std::string, std::string>> got;
  for (const auto& p : ReadPairs(pairs)) got.insert(std::minmax(p.name1, p.name2));
  EXPECT_EQ(got, (std::set<std::pair<std::string, std::string>>{{"a.jpg", "b.jpg"}, {"b.jpg", "c.jpg"}}));
  // COLMAP >= 3.11 pose_priors table (WGS84 rows), read-only.
  const std::string db = JoinPaths(dir, "priors.db");
  const std::string sql = JoinPaths(dir, "priors.sql");
  std::string script =
      "CREATE TABLE images (image_id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, name TEXT NOT NULL "
      "UNIQUE, camera_id INTEGER NOT NULL);\n"
      "CREATE TABLE matches (pair_id INTEGER PRIMARY KEY NOT NULL, rows INTEGER NOT NULL, cols INTEGER "
      "NOT NULL, data BLOB);\n"
      "CREATE TABLE two_view_geometries (pair_id INTEGER PRIMARY KEY NOT NULL, rows INTEGER NOT NULL, "
      "cols INTEGER NOT NULL, data BLOB, config INTEGER NOT NULL, F BLOB, E BLOB, H BLOB, qvec BLOB, "
      "tvec BLOB);\n"
      "CREATE TABLE pose_priors (image_id INTEGER PRIMARY KEY NOT NULL, position BLOB, "
      "coordinate_system INTEGER NOT NULL, position_covariance BLOB);\n";
  // float64 little-endian (lat, lon, alt): 0.0 = 0000000000000000, 0.001 = FCA9F1D24D62503F,
  // 0.003 = FA7E6ABC7493683F, 0.01 = 7B14AE47E17A843F.
  const char* lon_hex[] = {"0000000000000000", "FCA9F1D24D62503F", "FA7E6ABC7493683F", "7B14AE47E17A843F"};
  for (int i = 0; i < 4; ++i) {
    script += "INSERT INTO images VALUES (" + std::to_string(i + 1) + ", '" + names[i] + "', 1);\n";
    script += "INSERT INTO pose_priors VALUES (" + std::to_string(i + 1) + ", X'0000000000000000" +
              lon_hex[i] + "0000000000000000', 0, NULL);\n";
  }
  WriteFileAtomically(sql, script);
  ASSERT_EQ(testing::RunShell("sqlite3 '" + db + "' < '" + sql + "'"), 0);
  ASSERT_EQ(RunPairsCommand("--descriptors " + h5 + " --output_path " + pairs +
                                " --num_matched 0 --spatial_k 1 --pose_priors_database " + db,
                            &output),
            0)
      << output;
  EXPECT_EQ(ReadPairs(pairs), (std::vector<ImagePair>{{"a.jpg", "b.jpg"}, {"c.jpg", "b.jpg"}, {"d.jpg", "c.jpg"}}));
  EXPECT_NE(output.find("Position priors:  4 from the pose_priors table"), std::string::npos) << output;
  // Spatial options without priors: one error line.
  EXPECT_NE(RunPairsCommand("--descriptors " + h5 + " --output_path " + pairs + " --num_matched 2 --spatial_k 2",
                            &output),
            0);
  EXPECT_NE(output.find("ERROR: --max_distance and --spatial_k need position priors"), std::string::npos)
      << output;
}

// The retrieval GEMM can be routed to oneDNN (auto on generic OpenBLAS cores): same pairs.
TEST(PairsCommand, GemmBackends) {
  const std::string dir = testing::TempDir();
  const std::string h5 = JoinPaths(dir, "gemm.h5");
  std::vector<std::string> names;
  for (int i = 0; i < 40; ++i) names.push_back("img" + std::to_string(100 + i) + ".jpg");
  WriteRandomDescriptors(h5, names, 96, 11);
  auto run = [&](const std::string& mode, const std::string& extra, std::string* output) {
    const std::string pairs = JoinPaths(dir, "gemm_" + mode + ".txt");
    const std::string log = JoinPaths(dir, "gemm_" + mode + ".log");
    const int rc = testing::RunShell("MEGALOC_RETRIEVAL_GEMM=" + mode + " '" + testing::MegalocExecutable() +
                                     "' pairs --descriptors '" + h5 + "' --output_path '" + pairs +
                                     "' --num_matched 5 --min_score -1 --memory_limit 64KiB " + extra + " > '" +
                                     log + "' 2>&1");
    *output = ReadFileToString(log);
    EXPECT_EQ(rc, 0) << *output;
    std::set<std::pair<std::string, std::string>> got;
    for (const auto& p : ReadPairs(pairs)) got.insert({p.name1, p.name2});
    return got;
  };
  std::string blas_output, dnnl_output;
  const auto blas = run("blas", "", &blas_output);
  const auto dnnl = run("dnnl", "", &dnnl_output);
  EXPECT_EQ(blas, dnnl);
  EXPECT_EQ(blas.size(), 200u);
  EXPECT_NE(blas_output.find("GFLOP/s"), std::string::npos) << blas_output;
  if (dnnl_output.find("oneDNN dnnl_sgemm") == std::string::npos) {
    GTEST_SKIP() << "libdnnl not loadable here: " << dnnl_output;
  }
  EXPECT_EQ(blas_output.find("oneDNN"), std::string::npos) << blas_output;
  // The generic engine (query blocks) too.
  EXPECT_EQ(run("dnnl", "--query_prefix img1", &dnnl_output), run("blas", "--query_prefix img1", &blas_output));
}

}  // namespace
}  // namespace megaloc
