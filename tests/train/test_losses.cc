// Multi-similarity loss and miner: spec goldens, a brute-force per-anchor loop, boundaries.
#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "megaloc/train/losses.h"

namespace megaloc {
namespace {

torch::Tensor GoldenEmbeddings() {
  return torch::tensor({1.0, 0.0, 0.8, 0.6, 0.0, 1.0, 0.6, 0.8}, torch::kDouble).view({4, 2});
}
torch::Tensor GoldenLabels() { return torch::tensor({0, 0, 1, 1}, torch::kLong); }

std::set<std::pair<int64_t, int64_t>> ToSet(const torch::Tensor& a, const torch::Tensor& b) {
  std::set<std::pair<int64_t, int64_t>> s;
  for (int64_t i = 0; i < a.numel(); ++i) s.insert({a[i].item<int64_t>(), b[i].item<int64_t>()});
  return s;
}

TEST(MultiSimilarity, MinerGolden) {
  torch::Tensor s = CosineSimilarityMatrix(GoldenEmbeddings());
  const MinedPairs p = MultiSimilarityMine(s, GoldenLabels(), 0.1);
  EXPECT_EQ(ToSet(p.pos_anchor, p.pos_other),
            (std::set<std::pair<int64_t, int64_t>>{{1, 0}, {3, 2}}));
  EXPECT_EQ(ToSet(p.neg_anchor, p.neg_other),
            (std::set<std::pair<int64_t, int64_t>>{{1, 3}, {3, 1}}));
}

TEST(MultiSimilarity, LossGolden) {
  MultiSimilarityOptions o;
  const double with_miner = MultiSimilarityLoss(GoldenEmbeddings(), GoldenLabels(), o).item<double>();
  EXPECT_NEAR(with_miner, 0.6655503329738888, 1e-12);
  o.use_miner = false;
  const double all = MultiSimilarityLoss(GoldenEmbeddings(), GoldenLabels(), o).item<double>();
  EXPECT_NEAR(all, 1.1511006661000796, 1e-12);
}

// Naive per-anchor implementation of the spec's formulas, float64.
double BruteForce(const std::vector<std::vector<double>>& e, const std::vector<int64_t>& y,
                  bool use_miner, double eps = 0.1, double alpha = 1, double beta = 50,
                  double base = 0, int64_t* npos_out = nullptr, int64_t* nneg_out = nullptr) {
  const size_t n = e.size();
  std::vector<std::vector<double>> x = e;
  for (auto& v : x) {
    double nn = 0;
    for (double t : v) nn += t * t;
    nn = std::max(std::sqrt(nn), 1e-12);
    for (double& t : v) t /= nn;
  }
  std::vector<std::vector<double>> s(n, std::vector<double>(n));
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j) {
      double d = 0;
      for (size_t k = 0; k < x[i].size(); ++k) d += x[i][k] * x[j][k];
      s[i][j] = d;
    }
  bool any_pos = false, any_neg = false;
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j) {
      if (i != j && y[i] == y[j]) any_pos = true;
      if (y[i] != y[j]) any_neg = true;
    }
  std::vector<std::vector<int>> keep_pos(n, std::vector<int>(n, 0)), keep_neg = keep_pos;
  int64_t npos = 0, nneg = 0;
  if (!use_miner || (any_pos && any_neg)) {
    for (size_t i = 0; i < n; ++i) {
      double h = -std::numeric_limits<double>::infinity(), g = std::numeric_limits<double>::infinity();
      for (size_t k = 0; k < n; ++k) {
        if (y[k] != y[i]) h = std::max(h, s[i][k]);
        if (k != i && y[k] == y[i]) g = std::min(g, s[i][k]);
      }
      for (size_t j = 0; j < n; ++j) {
        if (j != i && y[j] == y[i] && (!use_miner || s[i][j] - eps < h)) keep_pos[i][j] = 1, ++npos;
        if (y[j] != y[i] && (!use_miner || s[i][j] + eps > g)) keep_neg[i][j] = 1, ++nneg;
      }
    }
  }
  if (npos_out) *npos_out = npos;
  if (nneg_out) *nneg_out = nneg;
  if (npos <= 1 && nneg <= 1) return 0.0;
  double total = 0;
  for (size_t i = 0; i < n; ++i) {
    double sp = 0, sn = 0;
    bool hp = false, hn = false;
    for (size_t j = 0; j < n; ++j) {
      if (keep_pos[i][j]) sp += std::exp(-alpha * (s[i][j] - base)), hp = true;
      if (keep_neg[i][j]) sn += std::exp(beta * (s[i][j] - base)), hn = true;
    }
    if (hp) total += std::log1p(sp) / alpha;
    if (hn) total += std::log1p(sn) / beta;
  }
  return total / n;
}

TEST(MultiSimilarity, GoldenMatchesBruteForce) {
  std::vector<std::vector<double>> e = {{1, 0}, {0.8, 0.6}, {0, 1}, {0.6, 0.8}};
  EXPECT_NEAR(BruteForce(e, {0, 0, 1, 1}, true), 0.6655503329738888, 1e-12);
  EXPECT_NEAR(BruteForce(e, {0, 0, 1, 1}, false), 1.1511006661000796, 1e-12);
}

TEST(MultiSimilarity, RandomInputsMatchBruteForce) {
  std::mt19937 rng(42);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (int trial = 0; trial < 40; ++trial) {
    const int places = 2 + trial % 5, per = 2 + trial % 3, dim = 3 + trial % 6;
    const int n = places * per;
    std::vector<std::vector<double>> e(n, std::vector<double>(dim));
    std::vector<int64_t> y(n);
    for (int i = 0; i < n; ++i) {
      y[i] = i / per;
      for (int k = 0; k < dim; ++k) e[i][k] = normal(rng) + (k == y[i] % dim ? 1.5 : 0.0);
    }
    torch::Tensor te = torch::empty({n, dim}, torch::kDouble);
    for (int i = 0; i < n; ++i)
      for (int k = 0; k < dim; ++k) te[i][k] = e[i][k];
    torch::Tensor ty = torch::tensor(y, torch::kLong);
    for (bool miner : {true, false}) {
      MultiSimilarityOptions o;
      o.use_miner = miner;
      MultiSimilarityStats st;
      int64_t np = 0, nn = 0;
      const double expect = BruteForce(e, y, miner, 0.1, 1, 50, 0, &np, &nn);
      const double got = MultiSimilarityLoss(te, ty, o, &st).item<double>();
      EXPECT_NEAR(got, expect, 1e-10) << "trial " << trial << " miner " << miner;
      EXPECT_EQ(st.num_positive_pairs, np);
      EXPECT_EQ(st.num_negative_pairs, nn);
    }
  }
}

TEST(MultiSimilarity, StrictInequalityBoundaries) {
  // Exactly representable values: anchor 0 has positive S_01 = 0.5 and hardest negative S_02 = 0.25.
  torch::Tensor s =
      torch::tensor({1.0, 0.5, 0.25, 0.5, 1.0, 0.0, 0.25, 0.0, 1.0}, torch::kDouble).view({3, 3});
  torch::Tensor y = torch::tensor({0, 0, 1}, torch::kLong);
  // eps = 0.25: positive kept iff 0.5 - 0.25 < 0.25 (false, strict); negative kept iff
  // 0.25 + 0.25 > 0.5 (false, strict).
  MinedPairs p = MultiSimilarityMine(s, y, 0.25);
  EXPECT_EQ(ToSet(p.pos_anchor, p.pos_other).count({0, 1}), 0u);
  EXPECT_EQ(ToSet(p.neg_anchor, p.neg_other).count({0, 2}), 0u);
  // A hair above the boundary both are kept.
  p = MultiSimilarityMine(s, y, 0.2500001);
  EXPECT_EQ(ToSet(p.pos_anchor, p.pos_other).count({0, 1}), 1u);
  EXPECT_EQ(ToSet(p.neg_anchor, p.neg_other).count({0, 2}), 1u);
}

TEST(MultiSimilarity, ZeroLossShortcuts) {
  // No negative pair at all (one label): the miner returns nothing, loss 0 with a graph.
  torch::Tensor e = torch::randn({4, 8}, torch::kDouble).requires_grad_(true);
  torch::Tensor y = torch::zeros({4}, torch::kLong);
  MultiSimilarityOptions o;
  torch::Tensor l = MultiSimilarityLoss(e, y, o);
  EXPECT_EQ(l.item<double>(), 0.0);
  l.backward();
  EXPECT_TRUE(e.grad().defined());
  EXPECT_EQ(e.grad().abs().sum().item<double>(), 0.0);
  // No positive pair: all labels distinct.
  EXPECT_EQ(MultiSimilarityLoss(torch::randn({5, 3}), torch::arange(5), o).item<float>(), 0.0f);
  // Exactly one positive and one negative pair given explicitly -> shortcut.
  MinedPairs p;
  p.pos_anchor = torch::tensor({0}, torch::kLong);
  p.pos_other = torch::tensor({1}, torch::kLong);
  p.neg_anchor = torch::tensor({0}, torch::kLong);
  p.neg_other = torch::tensor({2}, torch::kLong);
  EXPECT_EQ(MultiSimilarityLossWithPairs(torch::eye(3), p, o).item<float>(), 0.0f);
}

TEST(MultiSimilarity, FiniteInFloat32AndBf16AtBeta50) {
  // Highly similar negatives: exp(50 * 1) overflows fp16 and is large in fp32; the logsumexp form
  // stays finite. bf16 input is computed in fp32.
  torch::manual_seed(0);
  torch::Tensor base = torch::randn({1, 16});
  torch::Tensor e = base.repeat({8, 1}) + 1e-3 * torch::randn({8, 16});
  torch::Tensor y = torch::tensor({0, 0, 1, 1, 2, 2, 3, 3}, torch::kLong);
  MultiSimilarityOptions o;
  o.use_miner = false;
  const float l32 = MultiSimilarityLoss(e, y, o).item<float>();
  EXPECT_TRUE(std::isfinite(l32));
  const float lbf = MultiSimilarityLoss(e.to(torch::kBFloat16), y, o).item<float>();
  EXPECT_TRUE(std::isfinite(lbf));
  EXPECT_NEAR(lbf, l32, 0.05);
  // Gradient finite too.
  torch::Tensor ev = e.clone().requires_grad_(true);
  MultiSimilarityLoss(ev, y, o).backward();
  EXPECT_TRUE(torch::isfinite(ev.grad()).all().item<bool>());
}

}  // namespace
}  // namespace megaloc
