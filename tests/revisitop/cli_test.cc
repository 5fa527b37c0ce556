// The model-free form of `megaloc revisitop_eval`, run through the built binary.
#include <cmath>
#include <cstdlib>

#include <sys/stat.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "megaloc/util/file_utils.h"
#include "megaloc/util/npy.h"
#include "tests/common/testing.h"

namespace megaloc {
namespace {

std::string Quote(const std::string& s) { return "'" + s + "'"; }

// Runs the binary; returns the exit code, stdout+stderr in *output.
int RunMegaloc(const std::string& args, std::string* output) {
  const std::string log = testing::TempDir() + "/out.txt";
  const int rc =
      testing::RunShell(Quote(testing::MegalocExecutable()) + " revisitop_eval " + args + " > " +
                        Quote(log) + " 2>&1");
  *output = ReadFileToString(log);
  return rc;
}

void CheckJsonAgainstExpected(const std::string& name) {
  const std::string out = testing::TempDir() + "/results.json";
  std::string log;
  ASSERT_EQ(RunMegaloc("--gnd_path " + Quote(testing::TestDataPath("revisitop/gnd_" + name + ".pkl")) +
                           " --ranks_path " +
                           Quote(testing::TestDataPath("revisitop/ranks_" + name + ".npy")) +
                           " --output_path " + Quote(out),
                       &log),
            0)
      << log;
  const nlohmann::json expected = nlohmann::json::parse(
      ReadFileToString(testing::TestDataPath("revisitop/expected_" + name + ".json")));
  const nlohmann::json got = nlohmann::json::parse(ReadFileToString(out));
  EXPECT_EQ(got.at("dataset"), name);
  EXPECT_EQ(got.at("num_queries").get<int>(), expected.at("nq").get<int>());
  EXPECT_EQ(got.at("num_database").get<int>(), expected.at("ndb").get<int>());
  const char* letters[3] = {"E", "M", "H"};
  const char* keys[3] = {"easy", "medium", "hard"};
  for (int s = 0; s < 3; ++s) {
    SCOPED_TRACE(keys[s]);
    const auto& e = expected.at(letters[s]);
    EXPECT_NEAR(got["mAP"][keys[s]].get<double>(), 100.0 * e["mAP"].get<double>(), 1e-9);
    EXPECT_EQ(got["nvalid"][keys[s]].get<int>(), e["nvalid"].get<int>());
    for (const std::string k : {"1", "5", "10"}) {
      EXPECT_NEAR(got["mP"][keys[s]][k].get<double>(), 100.0 * e["mP@k"][k].get<double>(), 1e-9);
    }
    const auto& aps = e["ap_per_query"];
    for (size_t q = 0; q < aps.size(); ++q) {
      const auto& g = got["ap_per_query"][keys[s]][q];
      if (aps[q].is_null()) {
        EXPECT_TRUE(g.is_null());
      } else {
        EXPECT_NEAR(g.get<double>(), 100.0 * aps[q].get<double>(), 1e-9);
      }
      const int kk[3] = {1, 5, 10};
      for (int j = 0; j < 3; ++j) {
        const auto& gp = got["p_at_k_per_query"][keys[s]][std::to_string(kk[j])][q];
        const auto& ep = e["p_at_k_per_query"][q][j];
        if (ep.is_null()) {
          EXPECT_TRUE(gp.is_null());
        } else {
          EXPECT_NEAR(gp.get<double>(), 100.0 * ep.get<double>(), 1e-9);
        }
      }
    }
  }
  // The first two printed lines are exactly what the official example_evaluate.py prints.
  for (const auto& line : expected.at("official_print")) {
    EXPECT_NE(log.find(line.get<std::string>() + "\n"), std::string::npos)
        << "missing official line '" << line.get<std::string>() << "' in:\n" << log;
  }
}

TEST(RevisitopCli, GoldenRanksFileEndToEnd) {
  CheckJsonAgainstExpected("golden");
}

TEST(RevisitopCli, RandomRanksFileEndToEnd) {
  CheckJsonAgainstExpected("random");
}

TEST(RevisitopCli, JsonGroundTruthAndTransposedLayout) {
  // (n_q, n_db) layout with --ranks_layout q_by_db gives the same numbers.
  const NpyArray a = ReadNpy(testing::TestDataPath("revisitop/ranks_golden.npy"));
  const std::vector<int64_t> v = a.As<int64_t>();
  std::vector<int64_t> t(v.size());
  for (int64_t r = 0; r < a.shape[0]; ++r) {
    for (int64_t q = 0; q < a.shape[1]; ++q) t[q * a.shape[0] + r] = v[r * a.shape[1] + q];
  }
  const std::string dir = testing::TempDir();
  WriteNpy(dir + "/t.npy", {a.shape[1], a.shape[0]}, t.data());
  std::string log;
  ASSERT_EQ(RunMegaloc("--gnd_path " + Quote(testing::TestDataPath("revisitop/gnd_golden.json")) +
                           " --ranks_path " + Quote(dir + "/t.npy") +
                           " --ranks_layout q_by_db --output_path " + Quote(dir + "/r.json"),
                       &log),
            0)
      << log;
  const nlohmann::json got = nlohmann::json::parse(ReadFileToString(dir + "/r.json"));
  EXPECT_NEAR(got["mAP"]["easy"].get<double>(), 43.75, 1e-12);
  EXPECT_NEAR(got["mAP"]["medium"].get<double>(), 39.722222222222221, 1e-12);
}

TEST(RevisitopCli, BadInputsFailWithOneClearError) {
  const std::string dir = testing::TempDir();
  const std::string gnd = Quote(testing::TestDataPath("revisitop/gnd_golden.pkl"));
  std::string log;
  // Missing ranks file.
  EXPECT_NE(RunMegaloc("--gnd_path " + gnd + " --ranks_path " + Quote(dir + "/none.npy"), &log), 0);
  EXPECT_NE(log.find("ERROR:"), std::string::npos) << log;
  EXPECT_NE(log.find("none.npy"), std::string::npos) << log;
  // Duplicate id in a list.
  std::vector<int64_t> dup(8 * 3, 0);
  for (int r = 0; r < 8; ++r) {
    for (int q = 0; q < 3; ++q) dup[r * 3 + q] = r;
  }
  dup[7 * 3 + 1] = 0;  // query 1 lists id 0 twice
  WriteNpy(dir + "/dup.npy", {8, 3}, dup.data());
  EXPECT_NE(RunMegaloc("--gnd_path " + gnd + " --ranks_path " + Quote(dir + "/dup.npy"), &log), 0);
  EXPECT_NE(log.find("appears twice"), std::string::npos) << log;
  // Float ranks.
  std::vector<double> f(24, 0.0);
  WriteNpy(dir + "/f.npy", {8, 3}, f.data());
  EXPECT_NE(RunMegaloc("--gnd_path " + gnd + " --ranks_path " + Quote(dir + "/f.npy"), &log), 0);
  EXPECT_NE(log.find("integers"), std::string::npos) << log;
  // Truncated pickle.
  const std::string bytes = ReadFileToString(testing::TestDataPath("revisitop/gnd_golden.pkl"));
  WriteFileAtomically(dir + "/cut.pkl", bytes.substr(0, bytes.size() / 2));
  EXPECT_NE(RunMegaloc("--gnd_path " + Quote(dir + "/cut.pkl") + " --ranks_path " +
                           Quote(testing::TestDataPath("revisitop/ranks_golden.npy")),
                       &log),
            0);
  EXPECT_NE(log.find("cut.pkl"), std::string::npos) << log;
  EXPECT_NE(log.find("truncated"), std::string::npos) << log;
  // Model form without weights or data.
  EXPECT_NE(RunMegaloc("--dataset roxford5k", &log), 0);
  EXPECT_NE(log.find("ERROR:"), std::string::npos) << log;
  EXPECT_NE(RunMegaloc("--dataset oxford --data_root " + Quote(dir), &log), 0);
  EXPECT_NE(log.find("roxford5k or rparis6k"), std::string::npos) << log;
  // --help works.
  EXPECT_EQ(RunMegaloc("--help", &log), 0);
  EXPECT_NE(log.find("--ranks_path"), std::string::npos) << log;
}

// Issue 14, bad inputs 5 and 10: a 2 M-deep pickle crashed the command (SIGSEGV); a FIFO as
// --gnd_path blocked forever. Both are one clear error now.
TEST(RevisitopCli, DeepPickleAndFifoGroundTruthAreClearErrors) {
  const std::string dir = testing::TempDir();
  const std::string ranks = Quote(testing::TestDataPath("revisitop/ranks_golden.npy"));
  WriteFileAtomically(dir + "/deep.pkl", "\x80\x02N" + std::string(2000000, '\x85') + ".");
  std::string log;
  EXPECT_EQ(RunMegaloc("--gnd_path " + Quote(dir + "/deep.pkl") + " --ranks_path " + ranks, &log), 1);
  EXPECT_NE(log.find("deep.pkl"), std::string::npos) << log;
  EXPECT_NE(log.find("nest deeper than 1000 levels"), std::string::npos) << log;
  const std::string fifo = dir + "/gnd_fifo.pkl";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_EQ(RunMegaloc("--gnd_path " + Quote(fifo) + " --ranks_path " + ranks, &log), 1);
  EXPECT_NE(log.find(fifo + ": not a regular file"), std::string::npos) << log;
}

}  // namespace
}  // namespace megaloc
