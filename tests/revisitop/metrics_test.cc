#include "megaloc/eval/revisitop/revisitop_metrics.h"

#include <cmath>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "megaloc/eval/revisitop/revisitop_gnd.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/npy.h"
#include "tests/common/testing.h"

namespace megaloc {
namespace {

constexpr double kTol = 1e-12;

std::vector<std::vector<int64_t>> LoadFixtureRanks(const std::string& name) {
  const NpyArray a = ReadNpy(testing::TestDataPath("revisitop/ranks_" + name + ".npy"));
  EXPECT_EQ(a.shape.size(), 2u);
  return RanksFromOfficialLayout(a.As<int64_t>(), a.shape[0], a.shape[1]);
}

// Compares one setup with the fixture's expected values (fractions; null = excluded).
void ExpectSetupMatches(const RevisitopMapResult& r, const nlohmann::json& e) {
  EXPECT_NEAR(r.map, e.at("mAP").get<double>(), kTol);
  EXPECT_EQ(r.nvalid, e.at("nvalid").get<int>());
  ASSERT_EQ(r.kappas, (std::vector<int>{1, 5, 10}));
  for (size_t j = 0; j < r.kappas.size(); ++j) {
    EXPECT_NEAR(r.mean_precision_at_k[j],
                e.at("mP@k").at(std::to_string(r.kappas[j])).get<double>(), kTol);
  }
  const auto& aps = e.at("ap_per_query");
  const auto& prs = e.at("p_at_k_per_query");
  ASSERT_EQ(r.aps.size(), aps.size());
  for (size_t q = 0; q < aps.size(); ++q) {
    SCOPED_TRACE("query " + std::to_string(q));
    if (aps[q].is_null()) {
      EXPECT_TRUE(std::isnan(r.aps[q]));
      for (size_t j = 0; j < 3; ++j) EXPECT_TRUE(std::isnan(r.precision_at_k[q][j]));
      EXPECT_TRUE(prs[q][0].is_null());
    } else {
      EXPECT_NEAR(r.aps[q], aps[q].get<double>(), kTol);
      for (size_t j = 0; j < 3; ++j) {
        EXPECT_NEAR(r.precision_at_k[q][j], prs[q][j].get<double>(), kTol);
      }
    }
  }
}

void CheckFixture(const std::string& name, const std::string& gnd_extension) {
  const RevisitopGroundTruth gt =
      ReadRevisitopGroundTruth(testing::TestDataPath("revisitop/gnd_" + name + gnd_extension));
  const auto ranks = LoadFixtureRanks(name);
  const nlohmann::json expected = nlohmann::json::parse(
      ReadFileToString(testing::TestDataPath("revisitop/expected_" + name + ".json")));
  ASSERT_EQ(static_cast<int>(gt.qimlist.size()), expected.at("nq").get<int>());
  ASSERT_EQ(static_cast<int>(gt.imlist.size()), expected.at("ndb").get<int>());
  CheckRevisitopRanks(ranks, static_cast<int64_t>(gt.imlist.size()));
  const RevisitopEvaluation ev = EvaluateRevisitop(ranks, gt.gnd);
  const char* keys[3] = {"E", "M", "H"};
  for (int s = 0; s < 3; ++s) {
    SCOPED_TRACE(std::string("setup ") + keys[s]);
    ExpectSetupMatches(ev.setups[s], expected.at(keys[s]));
  }
}

TEST(RevisitopMetrics, GoldenFixtureFromPickle) { CheckFixture("golden", ".pkl"); }
TEST(RevisitopMetrics, GoldenFixtureFromJson) { CheckFixture("golden", ".json"); }
TEST(RevisitopMetrics, RandomFixtureFromPickle) { CheckFixture("random", ".pkl"); }
TEST(RevisitopMetrics, RandomFixtureFromJson) { CheckFixture("random", ".json"); }

// The hand-computed values of spec §1.6, as exact fractions.
TEST(RevisitopMetrics, GoldenHandComputedFractions) {
  const RevisitopGroundTruth gt =
      ReadRevisitopGroundTruth(testing::TestDataPath("revisitop/gnd_golden.pkl"));
  const RevisitopEvaluation ev = EvaluateRevisitop(LoadFixtureRanks("golden"), gt.gnd);
  const auto& e = ev.Get(RevisitopSetup::kEasy);
  const auto& m = ev.Get(RevisitopSetup::kMedium);
  const auto& h = ev.Get(RevisitopSetup::kHard);
  EXPECT_DOUBLE_EQ(e.aps[0], 19.0 / 24.0);
  EXPECT_DOUBLE_EQ(m.aps[0], 32.0 / 45.0);
  EXPECT_DOUBLE_EQ(h.aps[0], 1.0 / 6.0);
  EXPECT_DOUBLE_EQ(e.aps[1], 1.0 / 12.0);
  EXPECT_TRUE(std::isnan(h.aps[1]));
  EXPECT_DOUBLE_EQ(e.precision_at_k[1][2], 1.0 / 6.0);  // kq = 6 < 10
  EXPECT_DOUBLE_EQ(h.precision_at_k[0][1], 1.0 / 3.0);
  EXPECT_EQ(e.nvalid, 2);
  EXPECT_EQ(e.nempty, 1);
  EXPECT_EQ(h.nvalid, 1);
  EXPECT_NEAR(e.map * 100, 43.75, 1e-12);
  EXPECT_NEAR(m.map * 100, 39.72222222222222, 1e-12);
}

TEST(RevisitopMetrics, TrapezoidApIsNotMeanPrecisionAtHits) {
  // Positives at ranks 0 and 2 of 2: trapezoid = ((1 + 1) / 2 + (1/2 + 2/3) / 2) / 2.
  EXPECT_DOUBLE_EQ(ComputeRevisitopAp({0, 2}, 2), (1.0 + (0.5 + 2.0 / 3.0) / 2.0) / 2.0);
  // Single positive at rank 0: AP = 1.
  EXPECT_DOUBLE_EQ(ComputeRevisitopAp({0}, 1), 1.0);
  // Single positive at rank 3: (0 + 1/4) / 2.
  EXPECT_DOUBLE_EQ(ComputeRevisitopAp({3}, 1), 0.125);
  // A positive missing from the list still counts in the denominator.
  EXPECT_DOUBLE_EQ(ComputeRevisitopAp({0}, 2), 0.5);
  EXPECT_DOUBLE_EQ(ComputeRevisitopAp({}, 3), 0.0);
  EXPECT_THROW(ComputeRevisitopAp({0}, 0), InvalidArgument);
}

TEST(RevisitopMetrics, JunkShiftAndKappaClamp) {
  // List: 9 junk, then positive 1 at position 1 after junk removal... explicit:
  // ranks: [5(j), 1(ok), 6(j), 7, 2(ok)] -> positions ok {1, 4}, junk {0, 2}
  // shifted: 1 - 1 = 0, 4 - 2 = 2.
  std::vector<std::vector<int64_t>> ranks = {{5, 1, 6, 7, 2, 0, 3, 4}};
  RevisitopQueryLabels labels;
  labels.ok = {1, 2};
  labels.junk = {5, 6};
  const RevisitopMapResult r = ComputeRevisitopMap(ranks, {labels}, {1, 2, 5});
  EXPECT_DOUBLE_EQ(r.aps[0], ComputeRevisitopAp({0, 2}, 2));
  // 1-based shifted ranks {1, 3}: P@1 = 1, P@2 = 1/2, P@5 -> kq = 3: 2/3.
  EXPECT_DOUBLE_EQ(r.precision_at_k[0][0], 1.0);
  EXPECT_DOUBLE_EQ(r.precision_at_k[0][1], 0.5);
  EXPECT_DOUBLE_EQ(r.precision_at_k[0][2], 2.0 / 3.0);
  EXPECT_EQ(r.nvalid, 1);
}

TEST(RevisitopMetrics, IdInBothOkAndJunkStaysPositive) {
  // numpy in1d semantics: the id counts as positive, and a junk at the same position does not
  // shift it (strict comparison).
  std::vector<std::vector<int64_t>> ranks = {{3, 0, 1, 2}};
  RevisitopQueryLabels labels;
  labels.ok = {0, 2};
  labels.junk = {0};
  const RevisitopMapResult r = ComputeRevisitopMap(ranks, {labels}, {1});
  // pos = {1, 3}; junk pos = {1}; shifted: 1 (not > 1), 3 - 1 = 2.
  EXPECT_DOUBLE_EQ(r.aps[0], ComputeRevisitopAp({1, 2}, 2));
}

TEST(RevisitopMetrics, DuplicatePositivesCountInDenominator) {
  // example_evaluate.py concatenates easy + hard without deduplication.
  std::vector<std::vector<int64_t>> ranks = {{0, 1}};
  RevisitopQueryLabels labels;
  labels.ok = {0, 0};
  const RevisitopMapResult r = ComputeRevisitopMap(ranks, {labels}, {1});
  EXPECT_DOUBLE_EQ(r.aps[0], 0.5);
}

TEST(RevisitopMetrics, AllQueriesEmptyGivesNaNNotCrash) {
  std::vector<std::vector<int64_t>> ranks = {{0, 1}, {1, 0}};
  const RevisitopMapResult r =
      ComputeRevisitopMap(ranks, {RevisitopQueryLabels{}, RevisitopQueryLabels{}}, {1, 5});
  EXPECT_EQ(r.nvalid, 0);
  EXPECT_EQ(r.nempty, 2);
  EXPECT_TRUE(std::isnan(r.map));
  EXPECT_TRUE(std::isnan(r.mean_precision_at_k[0]));
}

TEST(RevisitopMetrics, TruncatedListWithoutPositives) {
  std::vector<std::vector<int64_t>> ranks = {{4, 5}};
  RevisitopQueryLabels labels;
  labels.ok = {0};
  const RevisitopMapResult r = ComputeRevisitopMap(ranks, {labels}, {1, 5});
  EXPECT_EQ(r.aps[0], 0.0);
  EXPECT_EQ(r.precision_at_k[0][0], 0.0);
  EXPECT_EQ(r.nvalid, 1);
}

TEST(RevisitopMetrics, DistractorIdsAreNegatives) {
  // Ids >= n_db (R1M distractors) are never positives.
  std::vector<std::vector<int64_t>> with = {{100, 101, 0, 1}};
  std::vector<std::vector<int64_t>> without = {{0, 1}};
  RevisitopQueryLabels labels;
  labels.ok = {0};
  EXPECT_DOUBLE_EQ(ComputeRevisitopMap(with, {labels}, {1}).aps[0], ComputeRevisitopAp({2}, 1));
  EXPECT_DOUBLE_EQ(ComputeRevisitopMap(without, {labels}, {1}).aps[0], 1.0);
}

TEST(RevisitopMetrics, SetupLabelsFollowTheOfficialExample) {
  RevisitopQueryGnd g;
  g.easy = {1, 2};
  g.hard = {3};
  g.junk = {4};
  const auto e = RevisitopSetupLabels({g}, RevisitopSetup::kEasy)[0];
  const auto m = RevisitopSetupLabels({g}, RevisitopSetup::kMedium)[0];
  const auto h = RevisitopSetupLabels({g}, RevisitopSetup::kHard)[0];
  EXPECT_EQ(e.ok, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(e.junk, (std::vector<int64_t>{4, 3}));
  EXPECT_EQ(m.ok, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(m.junk, (std::vector<int64_t>{4}));
  EXPECT_EQ(h.ok, (std::vector<int64_t>{3}));
  EXPECT_EQ(h.junk, (std::vector<int64_t>{4, 1, 2}));
}

TEST(RevisitopMetrics, RanksLayoutAndChecks) {
  // (n_rows = 3, n_q = 2) C order: row r = [rank r of q0, rank r of q1].
  const auto ranks = RanksFromOfficialLayout({0, 2, 1, 1, 2, 0}, 3, 2);
  EXPECT_EQ(ranks[0], (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(ranks[1], (std::vector<int64_t>{2, 1, 0}));
  EXPECT_NO_THROW(CheckRevisitopRanks(ranks, 3));
  EXPECT_THROW(CheckRevisitopRanks(ranks, 2), InvalidArgument);
  EXPECT_THROW(CheckRevisitopRanks({{0, 1, 0}}, -1), InvalidArgument);
  EXPECT_THROW(CheckRevisitopRanks({{-1}}, -1), InvalidArgument);
  EXPECT_THROW(ComputeRevisitopMap({{0}}, {}, {1}), InvalidArgument);
  EXPECT_THROW(ComputeRevisitopMap({{0}}, {RevisitopQueryLabels{}}, {0}), InvalidArgument);
}

}  // namespace
}  // namespace megaloc
