// `megaloc pairs` end to end: the built executable on real HDF5 files (summary, files, errors).

#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "megaloc/io/descriptor_store.h"
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
}

}  // namespace
}  // namespace megaloc
