// Recall@N of the VPR protocol (megaloc/eval/vpr_recall.h): hand-built cases with known answers
// (no positive, ties, boundary of the radius) and a literal port of the reference loop on random data.
#include "megaloc/eval/vpr/vpr_recall.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "megaloc/util/logging.h"

namespace megaloc {
namespace {

VprImage At(double east, double north) {
  VprImage image;
  image.easting = east;
  image.northing = north;
  return image;
}

DescriptorMatrix Rows(const std::vector<std::vector<float>>& rows) {
  DescriptorMatrix m(static_cast<Eigen::Index>(rows.size()), static_cast<Eigen::Index>(rows[0].size()));
  for (size_t i = 0; i < rows.size(); ++i) {
    for (size_t j = 0; j < rows[i].size(); ++j) m(i, j) = rows[i][j];
  }
  return m;
}

std::vector<float> Unit(double degrees) {
  return {static_cast<float>(std::cos(degrees * M_PI / 180)), static_cast<float>(std::sin(degrees * M_PI / 180))};
}

VprRecallResult Evaluate(const DescriptorMatrix& db, const DescriptorMatrix& q, const VprDataset& dataset,
                         const std::vector<int>& ns) {
  VprRecallOptions options;
  options.recall_values = ns;
  return EvaluateVprRecall(MatrixDescriptorSource(db), MatrixDescriptorSource(q), dataset, options);
}

TEST(VprRecall, PositivesUseTheClosedRadiusOnSquaredDistances) {
  // Large UTM values as in real data; (15, 20) from the query is exactly 25 m.
  const double e0 = 585000.5, n0 = 4477000.25;
  const std::vector<VprImage> db = {At(e0 + 15, n0 + 20), At(e0 + 15, n0 + 20.000001), At(e0 - 25, n0),
                                    At(e0, n0 - 25.0000001), At(e0 + 3, n0 + 4), At(e0 + 1000, n0)};
  const auto positives = FindVprPositives(db, {At(e0, n0), At(e0 + 2000, n0)}, 25.0);
  ASSERT_EQ(positives.size(), 2u);
  EXPECT_EQ(positives[0], (std::vector<int64_t>{0, 2, 4}));
  EXPECT_TRUE(positives[1].empty());
  // Radius 0: only the same position.
  EXPECT_EQ(FindVprPositives(db, {At(e0 + 3, n0 + 4)}, 0.0)[0], (std::vector<int64_t>{4}));
}

TEST(VprRecall, PositivesMatchBruteForceOnRandomPositions) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> coordinate(0, 200);
  std::vector<VprImage> db, q;
  for (int i = 0; i < 300; ++i) db.push_back(At(std::round(coordinate(rng)), std::round(coordinate(rng))));
  for (int i = 0; i < 50; ++i) q.push_back(At(std::round(coordinate(rng)), std::round(coordinate(rng))));
  const auto positives = FindVprPositives(db, q, 25.0);
  int64_t on_boundary = 0;
  for (size_t i = 0; i < q.size(); ++i) {
    std::vector<int64_t> expected;
    for (size_t j = 0; j < db.size(); ++j) {
      const double de = q[i].easting - db[j].easting, dn = q[i].northing - db[j].northing;
      if (de * de + dn * dn <= 625.0) expected.push_back(static_cast<int64_t>(j));
      if (de * de + dn * dn == 625.0) ++on_boundary;
    }
    EXPECT_EQ(positives[i], expected) << "query " << i;
  }
  EXPECT_GT(on_boundary, 0);  // integer positions put some at exactly 25 m (7-24-25, 15-20-25)
}

// The case of the trainer's former validation test: database every 100 m, 2-d descriptors.
TEST(VprRecall, QueryWithoutPositiveStaysInTheDenominator) {
  VprDataset dataset;
  for (int i = 0; i < 4; ++i) dataset.database.push_back(At(100.0 * i, 0));
  dataset.queries = {At(1000, 0), At(10, 0), At(290, 0)};
  const DescriptorMatrix db = Rows({Unit(0), Unit(30), Unit(60), Unit(90)});
  // q0 (no positive) looks like db0; q1 (near db0) looks like db1 then db0; q2 (near db3) like db3.
  const DescriptorMatrix q = Rows({Unit(0), Unit(16), Unit(89)});
  const VprRecallResult r = Evaluate(db, q, dataset, {1, 2, 5, 10});
  EXPECT_EQ(r.num_queries, 3);
  EXPECT_EQ(r.num_database, 4);
  EXPECT_EQ(r.queries_without_positives, 1);
  EXPECT_EQ(r.first_positive_rank, (std::vector<int64_t>{-1, 1, 0}));
  ASSERT_EQ(r.recalls.size(), 4u);
  EXPECT_EQ(r.recalls[0], 1.0 / 3.0 * 100.0);  // numpy's recalls / num_queries * 100, bit for bit
  EXPECT_EQ(r.recalls[1], 2.0 / 3.0 * 100.0);
  EXPECT_EQ(r.recalls[2], 2.0 / 3.0 * 100.0);
  EXPECT_EQ(r.recalls[3], 2.0 / 3.0 * 100.0);
  EXPECT_EQ(FormatVprRecalls(r), "R@1: 33.3, R@2: 66.7, R@5: 66.7, R@10: 66.7");
}

// Equal scores: the lower database index comes first (faiss IndexFlatL2's order for equal
// distances), whichever of the tied images is the positive.
TEST(VprRecall, TiesKeepAscendingDatabaseOrder) {
  VprDataset dataset;
  // db0 and db1 have the same descriptor; only db1 is near query 0, only db0 near query 1.
  dataset.database = {At(500, 0), At(0, 0), At(1000, 0)};
  dataset.queries = {At(1, 0), At(499, 0)};
  const DescriptorMatrix db = Rows({Unit(10), Unit(10), Unit(80)});
  const DescriptorMatrix q = Rows({Unit(12), Unit(12)});
  const VprRecallResult r = Evaluate(db, q, dataset, {1, 2, 3});
  EXPECT_EQ(r.first_positive_rank, (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(r.recalls, (std::vector<double>{50.0, 100.0, 100.0}));

  // Many tied database rows (more than the search keeps): the first ones by index are kept.
  VprDataset wide;
  DescriptorMatrix wide_db(40, 2);
  for (int i = 0; i < 40; ++i) {
    wide.database.push_back(At(100.0 * i, 0));
    wide_db(i, 0) = 1.0f;
    wide_db(i, 1) = 0.0f;
  }
  wide.queries = {At(100.0 * 7, 0), At(100.0 * 3, 0)};
  const DescriptorMatrix wide_q = Rows({{1, 0}, {1, 0}});
  const VprRecallResult w = Evaluate(wide_db, wide_q, wide, {1, 5, 10});
  EXPECT_EQ(w.first_positive_rank, (std::vector<int64_t>{7, 3}));
  EXPECT_EQ(w.recalls, (std::vector<double>{0.0, 50.0, 100.0}));
}

TEST(VprRecall, FewerDatabaseImagesThanN) {
  VprDataset dataset;
  dataset.database = {At(0, 0), At(100, 0)};
  dataset.queries = {At(101, 0)};
  const VprRecallResult r = Evaluate(Rows({Unit(0), Unit(90)}), Rows({Unit(1)}), dataset, {1, 5, 10, 20});
  EXPECT_EQ(r.recalls, (std::vector<double>{0.0, 100.0, 100.0, 100.0}));
}

TEST(VprRecall, RejectsBadOptionsAndShapes) {
  VprDataset dataset;
  dataset.database = {At(0, 0), At(1, 0)};
  dataset.queries = {At(0, 0)};
  const DescriptorMatrix db = Rows({Unit(0), Unit(1)});
  const DescriptorMatrix q = Rows({Unit(0)});
  VprRecallOptions options;
  options.recall_values = {5, 1};  // must increase
  EXPECT_THROW(EvaluateVprRecall(MatrixDescriptorSource(db), MatrixDescriptorSource(q), dataset, options),
               InvalidArgument);
  options.recall_values = {0, 1};
  EXPECT_THROW(EvaluateVprRecall(MatrixDescriptorSource(db), MatrixDescriptorSource(q), dataset, options),
               InvalidArgument);
  options = VprRecallOptions();
  const DescriptorMatrix q3(1, 3);
  EXPECT_THROW(EvaluateVprRecall(MatrixDescriptorSource(db), MatrixDescriptorSource(q3), dataset, options),
               InvalidArgument);
  EXPECT_THROW(EvaluateVprRecall(MatrixDescriptorSource(q), MatrixDescriptorSource(q), dataset, options),
               InvalidArgument);
}

// A literal port of VPR-methods-evaluation's scoring (full L2 argsort, then the per-query loop that
// adds 1 to recalls[i:] at the first N whose predictions hold a positive) against the library.
TEST(VprRecall, MatchesTheReferenceLoopOnRandomData) {
  std::mt19937 rng(3);
  std::normal_distribution<float> gaussian;
  std::uniform_real_distribution<double> coordinate(0, 1000);  // ~1 positive per query
  const int num_db = 500, num_q = 120, dim = 16;
  VprDataset dataset;
  DescriptorMatrix db(num_db, dim), q(num_q, dim);
  for (int i = 0; i < num_db; ++i) {
    dataset.database.push_back(At(coordinate(rng), coordinate(rng)));
    for (int j = 0; j < dim; ++j) db(i, j) = gaussian(rng);
    db.row(i).normalize();
  }
  for (int i = 0; i < num_q; ++i) {
    dataset.queries.push_back(At(coordinate(rng), coordinate(rng)));
    for (int j = 0; j < dim; ++j) q(i, j) = gaussian(rng);
    q.row(i).normalize();
  }
  const std::vector<int> ns = {1, 5, 10, 20};
  const VprRecallResult got = Evaluate(db, q, dataset, ns);

  std::vector<double> recalls(ns.size(), 0.0);
  int64_t without = 0;
  for (int i = 0; i < num_q; ++i) {
    std::vector<double> distance(num_db);
    for (int j = 0; j < num_db; ++j) {
      distance[j] = (q.row(i).cast<double>() - db.row(j).cast<double>()).squaredNorm();
    }
    std::vector<int> order(num_db);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return distance[a] < distance[b]; });
    std::vector<int> positives;
    for (int j = 0; j < num_db; ++j) {
      const double de = dataset.queries[i].easting - dataset.database[j].easting;
      const double dn = dataset.queries[i].northing - dataset.database[j].northing;
      if (std::sqrt(de * de + dn * dn) <= 25.0) positives.push_back(j);
    }
    without += positives.empty() ? 1 : 0;
    for (size_t k = 0; k < ns.size(); ++k) {
      bool hit = false;
      for (int r = 0; r < ns[k]; ++r) {
        hit = hit || std::find(positives.begin(), positives.end(), order[r]) != positives.end();
      }
      if (hit) {
        for (size_t m = k; m < ns.size(); ++m) recalls[m] += 1;
        break;
      }
    }
  }
  for (double& r : recalls) r = r / num_q * 100;
  EXPECT_EQ(got.queries_without_positives, without);
  EXPECT_GT(without, 0);
  EXPECT_EQ(got.recalls, recalls);
  EXPECT_GT(recalls[3], recalls[0]);  // the case is not degenerate
}

}  // namespace
}  // namespace megaloc
