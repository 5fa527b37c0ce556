// Pair graphs: components, sequences, loop closure, connectivity, query expansion — small graphs
// with hand-computed answers, plus brute-force cross-checks on random descriptors.

#include "megaloc/retrieval/pair_graph.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "megaloc/retrieval/pairs_from_retrieval.h"
#include "megaloc/retrieval/position_priors.h"
#include "megaloc/util/logging.h"

namespace megaloc {
namespace {

constexpr double kPi = 3.14159265358979323846;

// 2-D unit descriptors at the given angles (degrees): similarity = cos(angle difference).
DescriptorMatrix AngleDescriptors(const std::vector<double>& degrees) {
  DescriptorMatrix x(degrees.size(), 2);
  for (size_t i = 0; i < degrees.size(); ++i) {
    x(i, 0) = static_cast<float>(std::cos(degrees[i] * kPi / 180.0));
    x(i, 1) = static_cast<float>(std::sin(degrees[i] * kPi / 180.0));
  }
  return x;
}

DescriptorMatrix RandomUnit(int n, int dim, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  DescriptorMatrix x(n, dim);
  for (int i = 0; i < n; ++i) {
    for (int d = 0; d < dim; ++d) x(i, d) = normal(rng);
    x.row(i).normalize();
  }
  return x;
}

// img1000, img1001, ... (byte order = index order).
std::vector<std::string> NumberedNames(int n) {
  std::vector<std::string> names;
  for (int i = 0; i < n; ++i) names.push_back("img" + std::to_string(1000 + i));
  return names;
}

std::set<std::pair<std::string, std::string>> Unordered(const std::vector<ImagePair>& pairs) {
  std::set<std::pair<std::string, std::string>> out;
  for (const auto& p : pairs) out.insert(std::minmax(p.name1, p.name2));
  return out;
}

std::vector<ImagePair> Plain(const std::vector<ScoredImagePair>& pairs) {
  std::vector<ImagePair> out;
  for (const auto& p : pairs) out.push_back(p.pair);
  return out;
}

TEST(PairGraph, ComponentsAndStats) {
  const std::vector<std::string> names = {"a", "b", "c", "d", "e", "f"};
  const std::vector<ImagePair> pairs = {{"a", "b"}, {"b", "a"}, {"b", "c"}, {"d", "e"}, {"e", "e"}};
  int64_t num = 0;
  const std::vector<int64_t> labels = ConnectedComponents(names, pairs, &num);
  EXPECT_EQ(num, 3);
  EXPECT_EQ(labels, (std::vector<int64_t>{0, 0, 0, 1, 1, 2}));
  const PairGraphStats stats = DescribePairGraph(names, pairs);
  EXPECT_EQ(stats.num_images, 6);
  EXPECT_EQ(stats.num_pairs, 3);  // a-b once, self pair ignored
  EXPECT_EQ(stats.num_components, 3);
  EXPECT_EQ(stats.num_isolated, 1);  // f
  EXPECT_DOUBLE_EQ(stats.mean_degree, 1.0);
  EXPECT_THROW(DescribePairGraph(names, {{"a", "zzz"}}), InvalidArgument);
  EXPECT_THROW(DescribePairGraph({"a", "a"}, {}), InvalidArgument);
}

TEST(PairGraph, SequentialPairsByFolder) {
  const std::vector<std::string> names = {"s2/0.jpg", "s1/1.jpg", "s1/0.jpg", "top.jpg",
                                          "s1/2.jpg", "s2/1.jpg", "root.jpg"};
  SequenceOptions options;
  options.overlap = 1;
  std::vector<ImagePair> expected = {{"root.jpg", "top.jpg"},
                                     {"s1/0.jpg", "s1/1.jpg"},
                                     {"s1/1.jpg", "s1/2.jpg"},
                                     {"s2/0.jpg", "s2/1.jpg"}};
  EXPECT_EQ(SequentialPairs(names, options), expected);
  options.overlap = 2;
  expected.insert(expected.begin() + 2, ImagePair{"s1/0.jpg", "s1/2.jpg"});
  EXPECT_EQ(SequentialPairs(names, options), expected);
  options.overlap = 0;
  EXPECT_TRUE(SequentialPairs(names, options).empty());
}

TEST(PairGraph, SequencesByPattern) {
  const std::vector<std::string> names = {"camB_002.jpg", "camA_001.jpg", "x.jpg", "camA_002.jpg",
                                          "camB_001.jpg", "camA_003.jpg"};
  SequenceOptions options;
  options.overlap = 1;
  options.pattern = "^(cam[AB])_";
  const std::vector<ImagePair> expected = {{"camA_001.jpg", "camA_002.jpg"},
                                           {"camA_002.jpg", "camA_003.jpg"},
                                           {"camB_001.jpg", "camB_002.jpg"}};
  EXPECT_EQ(SequentialPairs(names, options), expected);
  const SequenceLayout layout = ComputeSequenceLayout(names, options.pattern);
  EXPECT_EQ(layout.num_sequences, 2);
  EXPECT_EQ(layout.num_unassigned, 1);
  EXPECT_EQ(layout.sequence[2], -1);  // x.jpg
  EXPECT_EQ(layout.frame[5], 2);      // camA_003
  EXPECT_TRUE(layout.Near(1, 5, 2));
  EXPECT_FALSE(layout.Near(1, 5, 1));
  EXPECT_FALSE(layout.Near(1, 4, 5));  // other sequence
  EXPECT_THROW(ComputeSequenceLayout(names, "(unclosed"), InvalidArgument);
}

// Components A = {0, 1}, B = {2, 3}, C = {4}, D = {5} at angles 0, 10, 30, 40, 100, 200 degrees.
// Best inter-component similarities: A-B cos 20 (1-2), B-C cos 60 (3-4), A-C cos 90 (1-4),
// C-D cos 100 (4-5), A-D cos 160 (0-5), B-D cos 160 (3-5). Kruskal keeps 1-2, 3-4, 4-5.
TEST(PairGraph, ConnectHandComputed) {
  const std::vector<std::string> names = {"i0", "i1", "i2", "i3", "i4", "i5"};
  const DescriptorMatrix x = AngleDescriptors({0, 10, 30, 40, 100, 200});
  const MatrixDescriptorSource source(x);
  const std::vector<ImagePair> pairs = {{"i0", "i1"}, {"i2", "i3"}};
  for (int candidates : {1, 2, 8}) {
    ConnectOptions options;
    options.num_candidates = candidates;
    ConnectStats stats;
    const std::vector<ScoredImagePair> added = ConnectPairGraph(names, source, pairs, options, &stats);
    ASSERT_EQ(added.size(), 3u) << candidates;
    EXPECT_EQ(Unordered(Plain(added)),
              (std::set<std::pair<std::string, std::string>>{{"i1", "i2"}, {"i3", "i4"}, {"i4", "i5"}}));
    std::vector<float> scores;
    for (const auto& p : added) scores.push_back(p.score);
    std::sort(scores.begin(), scores.end());
    EXPECT_NEAR(scores[0], std::cos(100 * kPi / 180), 1e-6);
    EXPECT_NEAR(scores[1], std::cos(60 * kPi / 180), 1e-6);
    EXPECT_NEAR(scores[2], std::cos(20 * kPi / 180), 1e-6);
    EXPECT_EQ(stats.components_before, 4);
    EXPECT_EQ(stats.components_after, 1);
    EXPECT_EQ(stats.num_added, 3);
    std::vector<ImagePair> all = pairs;
    for (const auto& p : added) all.push_back(p.pair);
    EXPECT_EQ(DescribePairGraph(names, all).num_components, 1);
  }
  // Already connected: nothing to add.
  ConnectStats stats;
  EXPECT_TRUE(ConnectPairGraph({"i0", "i1"}, MatrixDescriptorSource(x.data(), 2, 2), {{"i0", "i1"}},
                               ConnectOptions(), &stats)
                  .empty());
  EXPECT_EQ(stats.components_before, 1);
}

// Maximum spanning forest by brute force: Kruskal over every inter-component pair of the full
// similarity matrix (the graph's own edges joined first).
double BruteForceForestWeight(const DescriptorMatrix& x,
                              const std::vector<std::string>& names,
                              const std::vector<ImagePair>& pairs,
                              int64_t* num_edges) {
  const int n = static_cast<int>(x.rows());
  const std::vector<int64_t> labels = ConnectedComponents(names, pairs);
  std::vector<int64_t> parent(n);
  std::iota(parent.begin(), parent.end(), 0);
  auto find = [&](int64_t a) {
    while (parent[a] != a) a = parent[a] = parent[parent[a]];
    return a;
  };
  // The graph's own components first: every image points at the first image of its component.
  std::vector<int64_t> first(n, -1);
  for (int i = 0; i < n; ++i) {
    if (first[labels[i]] < 0) first[labels[i]] = i;
    parent[i] = first[labels[i]];
  }
  struct E {
    float s;
    int a, b;
  };
  std::vector<E> edges;
  for (int i = 0; i < n; ++i) {
    for (int j = i + 1; j < n; ++j) {
      if (labels[i] != labels[j]) edges.push_back({x.row(i).dot(x.row(j)), i, j});
    }
  }
  std::sort(edges.begin(), edges.end(), [](const E& p, const E& q) { return p.s > q.s; });
  double weight = 0.0;
  *num_edges = 0;
  for (const E& e : edges) {
    const int64_t ra = find(e.a), rb = find(e.b);
    if (ra == rb) continue;
    parent[ra] = rb;
    weight += e.s;
    ++*num_edges;
  }
  return weight;
}

TEST(PairGraph, ConnectMatchesBruteForceKruskal) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    const int n = 60;
    const DescriptorMatrix x = RandomUnit(n, 6, seed);
    const std::vector<std::string> names = NumberedNames(n);
    std::mt19937 rng(seed);
    std::vector<ImagePair> pairs;
    for (int e = 0; e < 25; ++e) {
      pairs.push_back({names[rng() % n], names[rng() % n]});
    }
    int64_t expected_edges = 0;
    const double expected = BruteForceForestWeight(x, names, pairs, &expected_edges);
    for (int candidates : {1, 3, 16}) {
      ConnectOptions options;
      options.num_candidates = candidates;
      options.memory_limit = 16 << 10;  // small blocks (test only)
      ConnectStats stats;
      const auto added = ConnectPairGraph(names, MatrixDescriptorSource(x), pairs, options, &stats);
      double weight = 0.0;
      for (const auto& p : added) weight += p.score;
      EXPECT_EQ(static_cast<int64_t>(added.size()), expected_edges);
      EXPECT_NEAR(weight, expected, 1e-4) << "seed " << seed << " candidates " << candidates;
      EXPECT_EQ(stats.components_after, 1);
      if (candidates == 1) {
        EXPECT_GT(stats.num_searches, 1);
      }
    }
  }
}

// Triangle a-b-c, c-d, triangle d-e-f, h-i, g alone (and a repeat, a reversed repeat, a self pair).
TEST(PairGraph, FindBridgesHandComputed) {
  const std::vector<std::string> names = {"a", "b", "c", "d", "e", "f", "g", "h", "i"};
  const std::vector<ImagePair> pairs = {{"a", "b"}, {"b", "c"}, {"c", "a"}, {"d", "c"}, {"d", "e"},
                                        {"e", "f"}, {"f", "d"}, {"i", "h"}, {"a", "b"}, {"b", "a"},
                                        {"g", "g"}};
  EXPECT_EQ(FindBridges(names, pairs), (std::vector<ImagePair>{{"c", "d"}, {"h", "i"}}));
  EXPECT_TRUE(FindBridges(names, {}).empty());
  EXPECT_THROW(FindBridges(names, {{"a", "zz"}}), InvalidArgument);
  // A chain of 200 000 frames (every pair a bridge) without exhausting the call stack.
  const int n = 200000;
  std::vector<std::string> chain;
  std::vector<ImagePair> links;
  for (int i = 0; i < n; ++i) chain.push_back(std::to_string(i));
  for (int i = 0; i + 1 < n; ++i) links.push_back({chain[i], chain[i + 1]});
  EXPECT_EQ(FindBridges(chain, links).size(), static_cast<size_t>(n - 1));
  links.push_back({chain[0], chain[n - 1]});  // closing the loop: no bridge left
  EXPECT_TRUE(FindBridges(chain, links).empty());
}

// A chain i0-i1-i2-i3-i4 at 0, 10, 20, 32, 45 degrees: four bridges. The leaves i0 and i4 search
// their num_candidates + 1 best images outside their groups; their own pairs (to i1, i3) are
// skipped. With 1 or 2 candidates neither leaf sees the other: best first, i0-i2 (20 degrees)
// covers i0-i1 and i1-i2, i4-i2 (25) covers i2-i3 and i3-i4. With 8 (all four others), the pair
// between the two leaves, i0-i4 (45), comes first and covers all four. Already 2-edge-connected:
// nothing.
TEST(PairGraph, CoverBridgesHandComputed) {
  const std::vector<std::string> names = {"i0", "i1", "i2", "i3", "i4"};
  const DescriptorMatrix x = AngleDescriptors({0, 10, 20, 32, 45});
  const std::vector<ImagePair> chain = {{"i0", "i1"}, {"i1", "i2"}, {"i2", "i3"}, {"i3", "i4"}};
  for (int candidates : {1, 2, 8}) {
    ConnectOptions options;
    options.num_candidates = candidates;
    BridgeCoverStats stats;
    const auto added = CoverBridges(names, MatrixDescriptorSource(x), chain, options, &stats);
    if (candidates < 8) {
      ASSERT_EQ(added.size(), 2u) << candidates;
      EXPECT_EQ(added[0].pair.name1, "i0");
      EXPECT_EQ(added[0].pair.name2, "i2");
      EXPECT_NEAR(added[0].score, std::cos(20 * kPi / 180), 1e-6);
      EXPECT_EQ(added[1].pair.name1, "i4");
      EXPECT_EQ(added[1].pair.name2, "i2");
      EXPECT_NEAR(added[1].score, std::cos(25 * kPi / 180), 1e-6);
    } else {
      ASSERT_EQ(added.size(), 1u);
      EXPECT_EQ(std::minmax(added[0].pair.name1, added[0].pair.name2),
                std::minmax(std::string("i0"), std::string("i4")));
      EXPECT_NEAR(added[0].score, std::cos(45 * kPi / 180), 1e-6);
    }
    EXPECT_EQ(stats.bridges_before, 4);
    EXPECT_EQ(stats.bridges_after, 0);
    EXPECT_EQ(stats.num_added, static_cast<int64_t>(added.size()));
    EXPECT_EQ(stats.num_rounds, 1);
    EXPECT_EQ(stats.num_searched_rows, 2);
    std::vector<ImagePair> all = chain;
    for (const auto& p : added) all.push_back(p.pair);
    EXPECT_TRUE(FindBridges(names, all).empty());
  }
  BridgeCoverStats stats;
  std::vector<ImagePair> ring = chain;
  ring.push_back({"i4", "i0"});
  EXPECT_TRUE(CoverBridges(names, MatrixDescriptorSource(x), ring, ConnectOptions(), &stats).empty());
  EXPECT_EQ(stats.bridges_before, 0);
  EXPECT_EQ(stats.num_rounds, 0);
}

// A video of 3000 frames whose descriptors drift smoothly (similarity falls with the frame gap),
// chained by its sequential pairs: 2999 bridges, two leaves. Two leaf rounds advance a few frames
// from each end; the third round, over every uncovered group, covers the rest.
TEST(PairGraph, CoverBridgesOnALongChainTakesFewRounds) {
  const int n = 3000;
  const std::vector<double> rates = {0.0011, 0.0043, 0.017};
  DescriptorMatrix x(n, 2 * static_cast<int>(rates.size()));
  std::vector<std::string> names;
  std::vector<ImagePair> chain;
  for (int i = 0; i < n; ++i) {
    for (size_t r = 0; r < rates.size(); ++r) {
      x(i, 2 * r) = static_cast<float>(std::cos(i * rates[r]) / std::sqrt(3.0));
      x(i, 2 * r + 1) = static_cast<float>(std::sin(i * rates[r]) / std::sqrt(3.0));
    }
    char name[16];
    std::snprintf(name, sizeof(name), "f%05d", i);
    names.push_back(name);
    if (i > 0) chain.push_back({names[i - 1], names[i]});
  }
  BridgeCoverStats stats;
  const auto added = CoverBridges(names, MatrixDescriptorSource(x), chain, ConnectOptions(), &stats);
  EXPECT_EQ(stats.bridges_before, n - 1);
  EXPECT_EQ(stats.bridges_after, 0);
  EXPECT_LE(stats.num_rounds, 3);
  EXPECT_LT(stats.num_added, n);
  std::vector<ImagePair> all = chain;
  for (const auto& p : added) all.push_back(p.pair);
  EXPECT_TRUE(FindBridges(names, all).empty());
}

// Random descriptors, nearest-neighbour pairs (a forest: nearly every pair a bridge), joined, then
// covered: no bridge left, so removing any one pair leaves one component; a pair is never repeated.
TEST(PairGraph, CoverBridgesLeavesNoBridge) {
  for (uint32_t seed : {7u, 8u, 9u}) {
    const int n = 50;
    const DescriptorMatrix x = RandomUnit(n, 6, seed);
    const std::vector<std::string> names = NumberedNames(n);
    PairGraphOptions options;
    options.search.num_neighbors = 1;
    options.search.min_score = -1.0f;
    options.unique = true;
    options.cover_bridges = true;
    options.connect_options.num_candidates = seed == 7u ? 1 : 4;
    const PairGraphResult graph = BuildPairGraph(names, MatrixDescriptorSource(x), nullptr, options);
    std::vector<ImagePair> all = Plain(graph.pairs);
    EXPECT_GT(graph.bridges.bridges_before, 0);
    EXPECT_EQ(graph.bridges.bridges_after, 0);
    EXPECT_EQ(graph.num_bridge, graph.bridges.num_added);
    EXPECT_EQ(graph.after.num_components, 1);
    EXPECT_EQ(graph.after.num_pairs, static_cast<int64_t>(all.size()));  // no repeats
    EXPECT_TRUE(FindBridges(names, all).empty());
    int64_t bridge_pairs = 0;
    for (PairSource s : graph.sources) bridge_pairs += s == PairSource::kBridge ? 1 : 0;
    EXPECT_EQ(bridge_pairs, graph.num_bridge);
    for (size_t skip = 0; skip < all.size(); ++skip) {
      std::vector<ImagePair> without = all;
      without.erase(without.begin() + skip);
      ASSERT_EQ(DescribePairGraph(names, without).num_components, 1) << seed << " " << skip;
    }
    // Every added pair closes a cycle over a bridge of the graph before it (none is redundant
    // with the pairs before it in the order they were added).
    std::vector<ImagePair> so_far(all.begin(), all.end() - graph.num_bridge);
    for (int64_t e = static_cast<int64_t>(all.size()) - graph.num_bridge; e < static_cast<int64_t>(all.size()); ++e) {
      const size_t before = FindBridges(names, so_far).size();
      so_far.push_back(all[e]);
      EXPECT_LT(FindBridges(names, so_far).size(), before) << seed << " pair " << e;
    }
  }
}

TEST(PairGraph, DefaultEqualsRetrievePairs) {
  const int n = 50;
  const DescriptorMatrix x = RandomUnit(n, 16, 7);
  std::vector<std::string> names;
  for (int i = 0; i < n; ++i) names.push_back("d" + std::to_string((i * 37) % n) + ".jpg");
  PairGraphOptions options;
  options.search.num_neighbors = 5;
  const PairGraphResult graph = BuildPairGraph(names, MatrixDescriptorSource(x), nullptr, options);
  const auto expected = RetrievePairs(names, x, names, x, options.search);
  ASSERT_EQ(graph.pairs.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(graph.pairs[i].pair, expected[i].pair);
    EXPECT_EQ(graph.pairs[i].score, expected[i].score);
  }
  EXPECT_EQ(graph.num_retrieval, static_cast<int64_t>(expected.size()));
  options.unique = true;
  const PairGraphResult unique = BuildPairGraph(names, MatrixDescriptorSource(x), nullptr, options);
  EXPECT_EQ(Plain(unique.pairs), UniquePairs(Plain(expected)));
}

// One sequence of 10 frames at 0, 10, ..., 90 degrees: the nearest frames are the adjacent ones.
TEST(PairGraph, LoopClosureSkipsNearFrames) {
  std::vector<std::string> names;
  std::vector<double> angles;
  for (int i = 0; i < 10; ++i) {
    names.push_back("seq/f" + std::to_string(i) + ".jpg");
    angles.push_back(10.0 * i);
  }
  names.push_back("other/g0.jpg");
  angles.push_back(5.0);
  const DescriptorMatrix x = AngleDescriptors(angles);
  PairGraphOptions options;
  options.search.num_neighbors = 2;
  options.search.min_score = -1.0f;
  options.sequence.loop_closure = 2;
  options.sequence.overlap = 1;
  const PairGraphResult graph = BuildPairGraph(names, MatrixDescriptorSource(x), nullptr, options);
  // f0 (0 deg): g0 (other sequence, 5 deg), then f3 (30 deg) - f1, f2 are within 2 frames.
  std::vector<std::string> f0;
  for (size_t i = 0; i < graph.pairs.size(); ++i) {
    if (graph.sources[i] == PairSource::kRetrieval && graph.pairs[i].pair.name1 == "seq/f0.jpg") {
      f0.push_back(graph.pairs[i].pair.name2);
    }
  }
  EXPECT_EQ(f0, (std::vector<std::string>{"other/g0.jpg", "seq/f3.jpg"}));
  for (size_t i = 0; i < graph.pairs.size(); ++i) {
    if (graph.sources[i] != PairSource::kRetrieval) continue;
    const auto& p = graph.pairs[i].pair;
    if (p.name1.rfind("seq/", 0) == 0 && p.name2.rfind("seq/", 0) == 0) {
      const int a = std::stoi(p.name1.substr(5)), b = std::stoi(p.name2.substr(5));
      EXPECT_GT(std::abs(a - b), 2) << p.name1 << " " << p.name2;
    }
  }
  EXPECT_EQ(graph.num_sequential, 9);  // f0-f1 ... f8-f9, none retrieved
  EXPECT_EQ(graph.sequences.num_sequences, 2);
  EXPECT_GT(graph.num_dropped_by_loop_closure, 0);
}

TEST(PairGraph, PositionPriorsFilterAndSpatial) {
  // Four images on a line at x = 0, 1, 3, 7 m, all similar except d.
  const std::vector<std::string> names = {"a", "b", "c", "d"};
  const DescriptorMatrix x = AngleDescriptors({0, 1, 2, 90});
  PositionPriors priors;
  const double xs[] = {0, 1, 3, 7};
  for (int i = 0; i < 4; ++i) priors.Set(names[i], Eigen::Vector3d(xs[i], 0, 0), PositionFrame::kCartesian);
  EXPECT_EQ(SpatialPairs(names, priors, 1),
            (std::vector<ImagePair>{{"a", "b"}, {"b", "a"}, {"c", "b"}, {"d", "c"}}));
  EXPECT_EQ(SpatialPairs(names, priors, 2, 2.5),
            (std::vector<ImagePair>{{"a", "b"}, {"b", "a"}, {"b", "c"}, {"c", "b"}}));

  PairGraphOptions options;
  options.search.num_neighbors = 2;
  options.max_distance = 2.5;
  options.unique = true;
  const PairGraphResult filtered = BuildPairGraph(names, MatrixDescriptorSource(x), &priors, options);
  // Retrieval: a->{b,c}, b->{a,c}... a-c is 3 m apart: dropped; every pair with d is > 2.5 m.
  for (const auto& p : filtered.pairs) {
    EXPECT_LE(PriorDistance(priors, p.pair.name1, p.pair.name2), 2.5) << p.pair.name1 << p.pair.name2;
  }
  EXPECT_GT(filtered.num_dropped_by_distance, 0);
  options.max_distance = -1.0;
  options.search.num_neighbors = 0;
  options.spatial_k = 1;
  const PairGraphResult spatial = BuildPairGraph(names, MatrixDescriptorSource(x), &priors, options);
  EXPECT_EQ(Unordered(Plain(spatial.pairs)),
            (std::set<std::pair<std::string, std::string>>{{"a", "b"}, {"b", "c"}, {"c", "d"}}));
  EXPECT_EQ(spatial.num_spatial, 3);
  EXPECT_EQ(spatial.num_with_prior, 4);
  EXPECT_THROW(BuildPairGraph(names, MatrixDescriptorSource(x), nullptr, options), InvalidArgument);
}

TEST(PairGraph, ConnectThroughBuildPairGraph) {
  // Two tight clusters (0-4 degrees and 90-94 degrees), k = 2 keeps them apart.
  std::vector<std::string> names;
  std::vector<double> angles;
  for (int i = 0; i < 5; ++i) {
    names.push_back("a" + std::to_string(i));
    angles.push_back(i);
    names.push_back("b" + std::to_string(i));
    angles.push_back(90 + i);
  }
  const DescriptorMatrix x = AngleDescriptors(angles);
  PairGraphOptions options;
  options.search.num_neighbors = 2;
  options.connect = true;
  const PairGraphResult graph = BuildPairGraph(names, MatrixDescriptorSource(x), nullptr, options);
  EXPECT_EQ(graph.before_connect.num_components, 2);
  EXPECT_EQ(graph.after.num_components, 1);
  ASSERT_EQ(graph.num_connect, 1);
  EXPECT_EQ(std::minmax(graph.pairs.back().pair.name1, graph.pairs.back().pair.name2),
            std::minmax(std::string("a4"), std::string("b0")));  // 86 degrees apart
  EXPECT_EQ(graph.sources.back(), PairSource::kConnect);
}

TEST(PairGraph, ExpandDescriptorsHandComputed) {
  DescriptorMatrix q(1, 2);
  q << 1.0f, 0.0f;
  DescriptorMatrix db(2, 2);
  db << 0.6f, 0.8f, 0.0f, -1.0f;
  SearchResult nn;
  nn.num_queries = 1;
  nn.k = 2;
  nn.labels = {0, 1};
  nn.scores = {0.6f, -0.1f};  // the negative score weighs 0
  const DescriptorMatrix e1 =
      ExpandDescriptors(MatrixDescriptorSource(q), MatrixDescriptorSource(db), nn, 2, 1.0f);
  // (1, 0) + 0.6 (0.6, 0.8) = (1.36, 0.48), norm sqrt(2.08).
  EXPECT_NEAR(e1(0, 0), 1.36 / std::sqrt(2.08), 1e-6);
  EXPECT_NEAR(e1(0, 1), 0.48 / std::sqrt(2.08), 1e-6);
  const DescriptorMatrix e3 =
      ExpandDescriptors(MatrixDescriptorSource(q), MatrixDescriptorSource(db), nn, 1, 3.0f);
  // weight 0.6^3 = 0.216: (1.1296, 0.1728).
  const double norm = std::sqrt(1.1296 * 1.1296 + 0.1728 * 0.1728);
  EXPECT_NEAR(e3(0, 0), 1.1296 / norm, 1e-6);
  EXPECT_NEAR(e3(0, 1), 0.1728 / norm, 1e-6);
}

TEST(PairGraph, QueryExpansionChangesNeighbours) {
  // Query expansion pulls in the neighbours of neighbours: with alpha = 0 and qe_num = 1, the
  // query "q" (0 deg) is expanded towards its nearest image "n" (20 deg) to 10 deg.
  const std::vector<std::string> names = {"m", "n", "q"};
  const DescriptorMatrix x = AngleDescriptors({-25, 20, 0});
  PairGraphOptions options;
  options.search.num_neighbors = 1;
  options.search.min_score = -1.0f;
  const PairGraphResult plain = BuildPairGraph(names, MatrixDescriptorSource(x), nullptr, options);
  options.expansion.qe_num = 1;
  options.expansion.qe_alpha = 0.0f;
  const PairGraphResult expanded = BuildPairGraph(names, MatrixDescriptorSource(x), nullptr, options);
  // m (-25) plain: q (25 deg away) ; expanded m -> (-25 + q at 0)/2 = -12.5, still q.
  // q plain: n (20) vs m (25) -> n.
  ASSERT_EQ(plain.pairs.size(), 3u);
  ASSERT_EQ(expanded.pairs.size(), 3u);
  EXPECT_EQ(plain.pairs[2].pair.name2, "n");
  EXPECT_EQ(expanded.pairs[2].pair.name2, "n");
  // Scores use the expanded query: q expanded = 10 deg, score with n = cos 10.
  EXPECT_NEAR(expanded.pairs[2].score, std::cos(10 * kPi / 180), 1e-6);
  // n (20): plain nearest q (0) ; expanded towards q: 10 deg -> q at cos 10.
  EXPECT_NEAR(expanded.pairs[1].score, std::cos(10 * kPi / 180), 1e-6);
}

}  // namespace
}  // namespace megaloc
