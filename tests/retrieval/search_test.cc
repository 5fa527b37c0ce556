#include "megaloc/retrieval/search.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "megaloc/retrieval/search_internal.h"
#include "megaloc/util/logging.h"

namespace megaloc {
namespace {

DescriptorMatrix RandomUnitDescriptors(int64_t n, int dim, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  DescriptorMatrix m(n, dim);
  for (int64_t i = 0; i < n; ++i) {
    for (int d = 0; d < dim; ++d) m(i, d) = normal(rng);
    m.row(i).normalize();
  }
  return m;
}

struct Ref {
  float score;
  int64_t label;
};

// Brute force in double precision: every (query, db) score, filtered and fully sorted with the
// contract's order (score descending, then label ascending).
std::vector<std::vector<Ref>> BruteForce(const DescriptorMatrix& q,
                                         const DescriptorMatrix& db,
                                         int k,
                                         float min_score,
                                         const std::vector<int64_t>* qid = nullptr,
                                         const std::vector<int64_t>* dbid = nullptr) {
  std::vector<std::vector<Ref>> out(q.rows());
  for (int64_t i = 0; i < q.rows(); ++i) {
    std::vector<Ref> all;
    for (int64_t j = 0; j < db.rows(); ++j) {
      if (qid && (*qid)[i] == (*dbid)[j]) continue;
      double s = 0.0;
      for (int d = 0; d < q.cols(); ++d) s += static_cast<double>(q(i, d)) * db(j, d);
      if (!(static_cast<float>(s) >= min_score)) continue;
      all.push_back({static_cast<float>(s), j});
    }
    std::sort(all.begin(), all.end(), [](const Ref& a, const Ref& b) {
      return a.score > b.score || (a.score == b.score && a.label < b.label);
    });
    if (static_cast<int>(all.size()) > k) all.resize(k);
    out[i] = all;
  }
  return out;
}

// Exact equality of labels, except where the reference has a near-tie (< 1e-5) at that rank.
void ExpectMatchesReference(const SearchResult& result,
                            const std::vector<std::vector<Ref>>& ref,
                            int64_t expected_k) {
  ASSERT_EQ(result.k, expected_k);
  ASSERT_EQ(result.num_queries, static_cast<int64_t>(ref.size()));
  ASSERT_EQ(result.labels.size(), ref.size() * expected_k);
  for (size_t i = 0; i < ref.size(); ++i) {
    ASSERT_EQ(result.NumValid(i), static_cast<int64_t>(ref[i].size())) << "query " << i;
    for (size_t r = 0; r < ref[i].size(); ++r) {
      EXPECT_NEAR(result.Score(i, r), ref[i][r].score, 1e-5) << "query " << i << " rank " << r;
      const bool near_tie = (r > 0 && std::abs(ref[i][r].score - ref[i][r - 1].score) < 1e-5) ||
                            (r + 1 < ref[i].size() &&
                             std::abs(ref[i][r].score - ref[i][r + 1].score) < 1e-5);
      if (!near_tie) {
        EXPECT_EQ(result.Label(i, r), ref[i][r].label) << "query " << i << " rank " << r;
      }
    }
    for (int64_t r = ref[i].size(); r < expected_k; ++r) {
      EXPECT_EQ(result.Label(i, r), -1);
      EXPECT_EQ(result.Score(i, r), -std::numeric_limits<float>::infinity());
    }
  }
}

TEST(Search, MatchesBruteForceForManyBlockSizes) {
  const DescriptorMatrix q = RandomUnitDescriptors(37, 48, 1);
  const DescriptorMatrix db = RandomUnitDescriptors(211, 48, 2);
  const auto ref = BruteForce(q, db, 10, 0.0f);
  for (int64_t max_q : {0, 1, 5, 16}) {
    for (int64_t max_db : {0, 1, 7, 64, 500}) {
      SearchOptions options;
      options.num_neighbors = 10;
      options.max_query_block = max_q;
      options.max_db_block = max_db;
      SearchStats stats;
      const SearchResult result = Search(q, db, options, nullptr, nullptr, &stats);
      SCOPED_TRACE(::testing::Message() << "max_q " << max_q << " max_db " << max_db);
      ExpectMatchesReference(result, ref, 10);
      if (max_q > 0) { EXPECT_LE(stats.query_block, max_q); }
      if (max_db > 0) { EXPECT_LE(stats.db_block, max_db); }
    }
  }
}

TEST(Search, TinyMemoryLimitsBoundTheWorkingSet) {
  const DescriptorMatrix q = RandomUnitDescriptors(25, 32, 3);
  const DescriptorMatrix db = RandomUnitDescriptors(120, 32, 4);
  const auto ref = BruteForce(q, db, 7, 0.0f);
  // Streamed (non-resident) sources: blocks are copied, so the budget covers them too.
  MatrixDescriptorSource qm(q), dbm(db);
  CallbackDescriptorSource qs(q.rows(), 32, [&](int64_t b, int64_t n, float* out) {
    qm.ReadRows(b, n, out);
  });
  CallbackDescriptorSource ds(db.rows(), 32, [&](int64_t b, int64_t n, float* out) {
    dbm.ReadRows(b, n, out);
  });
  for (int64_t limit : {int64_t{600}, int64_t{2000}, int64_t{10000}, int64_t{1} << 20}) {
    SearchOptions options;
    options.num_neighbors = 7;
    options.memory_limit = limit;
    SearchStats stats;
    const SearchResult result = Search(qs, ds, options, nullptr, nullptr, &stats);
    SCOPED_TRACE(::testing::Message() << "limit " << limit);
    ExpectMatchesReference(result, ref, 7);
    EXPECT_LE(stats.working_bytes, limit);
    EXPECT_GE(stats.query_block, 1);
    EXPECT_GE(stats.db_block, 1);
    if (stats.query_block < q.rows()) {
      EXPECT_GT(stats.num_db_passes, 1);
    }
  }
  SearchOptions too_small;
  too_small.num_neighbors = 7;
  too_small.memory_limit = 100;
  EXPECT_THROW(Search(qs, ds, too_small), InvalidArgument);
}

TEST(Search, BlockSizesFollowTheBudget) {
  SearchOptions options;
  options.num_neighbors = 50;
  options.memory_limit = int64_t{4} << 30;
  int64_t bq = 0, bd = 0, bytes = 0;
  // 1000 queries x 1M streamed database of 8448-d: the queries fit, the database is blocked.
  ExactBlockSizes(1000, 1000000, 8448, options, &bq, &bd, &bytes);
  EXPECT_EQ(bq, 1000);
  EXPECT_GE(bd, 10000);
  EXPECT_LT(bd, 1000000);
  EXPECT_LE(bytes, options.memory_limit);
  // SfM self-retrieval of 1M images: queries are blocked too.
  ExactBlockSizes(1000000, 1000000, 8448, options, &bq, &bd, &bytes);
  EXPECT_LT(bq, 1000000);
  EXPECT_GE(bd, 1024);
  EXPECT_LE(bytes, options.memory_limit);
  // 4083 queries x 10k database at 32 MiB: 1024 database rows of 8448 floats do not fit at all.
  // Query blocks stop shrinking at half the reachable database block, not at one row (which made
  // 4083 database passes: 448 s instead of seconds for the bridge cover's leaf search).
  options.memory_limit = int64_t{32} << 20;
  ExactBlockSizes(4083, 10000, 8448, options, &bq, &bd, &bytes);
  EXPECT_GE(bq, 64);
  EXPECT_GE(bd, 400);
  EXPECT_LE(bytes, options.memory_limit);
  EXPECT_LE((4083 + bq - 1) / bq, 64);  // database passes
}

TEST(Search, KIsClampedToTheDatabaseSize) {
  const DescriptorMatrix q = RandomUnitDescriptors(4, 16, 5);
  const DescriptorMatrix db = RandomUnitDescriptors(6, 16, 6);
  SearchOptions options;
  options.num_neighbors = 50;
  options.min_score = -std::numeric_limits<float>::infinity();
  const SearchResult result = Search(q, db, options);
  EXPECT_EQ(result.k, 6);
  ExpectMatchesReference(result, BruteForce(q, db, 6, options.min_score), 6);
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(result.NumValid(i), 6);
}

TEST(Search, EmptyInputs) {
  const DescriptorMatrix q = RandomUnitDescriptors(3, 8, 7);
  const DescriptorMatrix empty(0, 8);
  SearchOptions options;
  options.num_neighbors = 5;
  const SearchResult none = Search(q, empty, options);
  EXPECT_EQ(none.k, 0);
  EXPECT_EQ(none.num_queries, 3);
  EXPECT_TRUE(none.labels.empty());
  const SearchResult no_queries = Search(empty, q, options);
  EXPECT_EQ(no_queries.num_queries, 0);
}

TEST(Search, MinScoreDropsLowerScoresAndKeepsEqualOnes) {
  // Exactly representable vectors: scores are exact in float.
  DescriptorMatrix q(1, 2);
  q << 1.0f, 0.0f;
  DescriptorMatrix db(5, 2);
  db << 0.5f, 0.5f,   // 0.5
      0.0f, 1.0f,     // 0.0 (kept with the default min_score 0, as in hloc)
      -0.25f, 1.0f,   // -0.25 (dropped)
      0.25f, 0.0f,    // 0.25
      1.0f, 0.0f;     // 1.0
  SearchOptions options;
  options.num_neighbors = 5;
  SearchResult r = Search(q, db, options);
  ASSERT_EQ(r.NumValid(0), 4);
  EXPECT_EQ(r.Label(0, 0), 4);
  EXPECT_EQ(r.Label(0, 1), 0);
  EXPECT_EQ(r.Label(0, 2), 3);
  EXPECT_EQ(r.Label(0, 3), 1);
  EXPECT_EQ(r.Score(0, 3), 0.0f);
  EXPECT_EQ(r.Label(0, 4), -1);
  options.min_score = 0.25f;
  r = Search(q, db, options);
  ASSERT_EQ(r.NumValid(0), 3);
  EXPECT_EQ(r.Label(0, 2), 3);
  options.min_score = -std::numeric_limits<float>::infinity();
  r = Search(q, db, options);
  EXPECT_EQ(r.NumValid(0), 5);
  EXPECT_EQ(r.Label(0, 4), 2);
}

TEST(Search, TiesAreBrokenByDatabaseRowAcrossBlocks) {
  // Values in {0, 0.5, 1}: every dot product is exact, so ties are exact too.
  std::mt19937 rng(8);
  std::uniform_int_distribution<int> pick(0, 2);
  DescriptorMatrix q(9, 6), db(40, 6);
  for (int64_t i = 0; i < q.size(); ++i) q.data()[i] = 0.5f * pick(rng);
  for (int64_t i = 0; i < db.size(); ++i) db.data()[i] = 0.5f * pick(rng);
  const auto ref = BruteForce(q, db, 12, 0.0f);
  for (int64_t max_db : {0, 1, 3, 8}) {
    SearchOptions options;
    options.num_neighbors = 12;
    options.max_db_block = max_db;
    const SearchResult result = Search(q, db, options);
    for (int64_t i = 0; i < q.rows(); ++i) {
      ASSERT_EQ(result.NumValid(i), static_cast<int64_t>(ref[i].size()));
      for (size_t r = 0; r < ref[i].size(); ++r) {
        EXPECT_EQ(result.Label(i, r), ref[i][r].label) << "max_db " << max_db;
        EXPECT_EQ(result.Score(i, r), ref[i][r].score);
      }
    }
  }
}

TEST(Search, SelfExclusionByIdIsExact) {
  const DescriptorMatrix x = RandomUnitDescriptors(50, 24, 9);
  std::vector<int64_t> ids(50);
  for (int i = 0; i < 50; ++i) ids[i] = 1000 + i;
  SearchOptions options;
  options.num_neighbors = 50;  // == |db|: works in SfM mode (self drops out)
  options.min_score = -std::numeric_limits<float>::infinity();
  options.max_db_block = 16;
  const SearchResult result = Search(x, x, options, &ids, &ids);
  ExpectMatchesReference(result, BruteForce(x, x, 50, options.min_score, &ids, &ids), 50);
  for (int64_t i = 0; i < 50; ++i) {
    EXPECT_EQ(result.NumValid(i), 49);
    for (int64_t r = 0; r < 49; ++r) EXPECT_NE(result.Label(i, r), i);
  }
  std::vector<int64_t> short_ids(3);
  EXPECT_THROW(Search(x, x, options, &short_ids, &ids), InvalidArgument);
  EXPECT_THROW(Search(x, x, options, &ids, nullptr), InvalidArgument);
}

TEST(Search, SymmetricSelfRetrievalMatchesGenericEngine) {
  const DescriptorMatrix x = RandomUnitDescriptors(173, 40, 16);
  std::vector<int64_t> ids(173);
  for (int i = 0; i < 173; ++i) ids[i] = i;
  const auto ref = BruteForce(x, x, 9, 0.0f, &ids, &ids);
  MatrixDescriptorSource xm(x);
  // One streamed source object for both sides -> symmetric engine; block caps force many blocks.
  CallbackDescriptorSource streamed(x.rows(), 40, [&](int64_t b, int64_t n, float* out) {
    xm.ReadRows(b, n, out);
  });
  for (int64_t cap : {0, 1, 16, 50, 1000}) {
    SearchOptions options;
    options.num_neighbors = 9;
    options.max_query_block = cap;
    SearchStats stats;
    const SearchResult resident = Search(x, x, options, &ids, &ids, &stats);
    SCOPED_TRACE(::testing::Message() << "cap " << cap);
    ExpectMatchesReference(resident, ref, 9);
    EXPECT_EQ(stats.query_block, stats.db_block);  // square blocks: the symmetric engine ran
    const SearchResult stream = Search(streamed, streamed, options, &ids, &ids);
    ExpectMatchesReference(stream, ref, 9);
    options.symmetric = false;
    const SearchResult generic = Search(streamed, streamed, options, &ids, &ids);
    ExpectMatchesReference(generic, ref, 9);
  }
  // Tight budget: heaps of all queries + two blocks + the square similarity block.
  SearchOptions tight;
  tight.num_neighbors = 9;
  tight.memory_limit = 2 * 173 * (9 * 16 + 8);
  SearchStats stats;
  ExpectMatchesReference(Search(streamed, streamed, tight, &ids, &ids, &stats), ref, 9);
  EXPECT_LE(stats.working_bytes, tight.memory_limit);
  EXPECT_EQ(stats.query_block, stats.db_block);  // still the symmetric engine
  EXPECT_LT(stats.query_block, 60);
  EXPECT_GT(stats.num_db_passes, 2);
  // Heaps above half the budget: the generic (query-blocked) engine takes over.
  tight.memory_limit = 173 * (9 * 16 + 8) + 1000;
  ExpectMatchesReference(Search(streamed, streamed, tight, &ids, &ids, &stats), ref, 9);
  EXPECT_LE(stats.working_bytes, tight.memory_limit);
  EXPECT_LT(stats.query_block, 173);
  // Without ids the diagonal (each row itself) is a regular candidate, as in the generic engine.
  SearchOptions options;
  options.num_neighbors = 3;
  options.max_query_block = 10;
  const SearchResult with_self = Search(x, x, options);
  ExpectMatchesReference(with_self, BruteForce(x, x, 3, 0.0f), 3);
  for (int64_t i = 0; i < x.rows(); ++i) EXPECT_EQ(with_self.Label(i, 0), i);
}

TEST(Search, SymmetricTiesAreBrokenByRow) {
  std::mt19937 rng(17);
  std::uniform_int_distribution<int> pick(0, 2);
  DescriptorMatrix x(45, 5);
  for (int64_t i = 0; i < x.size(); ++i) x.data()[i] = 0.5f * pick(rng);
  std::vector<int64_t> ids(45);
  for (int i = 0; i < 45; ++i) ids[i] = i;
  const auto ref = BruteForce(x, x, 11, 0.0f, &ids, &ids);
  for (int64_t cap : {0, 4, 7}) {
    SearchOptions options;
    options.num_neighbors = 11;
    options.max_query_block = cap;
    const SearchResult result = Search(x, x, options, &ids, &ids);
    for (int64_t i = 0; i < x.rows(); ++i) {
      ASSERT_EQ(result.NumValid(i), static_cast<int64_t>(ref[i].size()));
      for (size_t r = 0; r < ref[i].size(); ++r) {
        EXPECT_EQ(result.Label(i, r), ref[i][r].label) << "cap " << cap;
      }
    }
  }
}

TEST(Search, ThreadCountDoesNotChangeResults) {
  const DescriptorMatrix q = RandomUnitDescriptors(300, 64, 10);
  const DescriptorMatrix db = RandomUnitDescriptors(700, 64, 11);
  SearchOptions options;
  options.num_neighbors = 20;
  options.num_threads = 1;
  const SearchResult one = Search(q, db, options);
  options.num_threads = 2;
  const SearchResult two = Search(q, db, options);
  EXPECT_EQ(one.labels, two.labels);
  ExpectMatchesReference(two, BruteForce(q, db, 20, 0.0f), 20);
}

TEST(Search, RejectsBadArguments) {
  const DescriptorMatrix a = RandomUnitDescriptors(3, 8, 12);
  const DescriptorMatrix b = RandomUnitDescriptors(3, 9, 13);
  SearchOptions options;
  EXPECT_THROW(Search(a, b, options), InvalidArgument);
  options.num_neighbors = 0;
  EXPECT_THROW(Search(a, a, options), InvalidArgument);
}

TEST(Search, BackendNames) {
  EXPECT_EQ(SearchBackendFromString("exact"), SearchBackend::kExact);
  EXPECT_EQ(SearchBackendFromString("faiss_ivf"), SearchBackend::kFaissIvf);
  EXPECT_EQ(SearchBackendFromString("faiss_hnsw"), SearchBackend::kFaissHnsw);
  EXPECT_EQ(SearchBackendToString(SearchBackend::kFaissHnsw), "faiss_hnsw");
  EXPECT_THROW(SearchBackendFromString("flann"), InvalidArgument);
}

TEST(Search, FaissBackendsOrClearError) {
  const DescriptorMatrix db = RandomUnitDescriptors(2000, 32, 14);
  const DescriptorMatrix q = RandomUnitDescriptors(50, 32, 15);
  SearchOptions options;
  options.num_neighbors = 10;
  options.min_score = -std::numeric_limits<float>::infinity();
  const SearchResult exact = Search(q, db, options);
  for (SearchBackend backend : {SearchBackend::kFaissIvf, SearchBackend::kFaissHnsw}) {
    options.backend = backend;
    if (!IsFaissAvailable()) {
      try {
        Search(q, db, options);
        FAIL() << "expected an error";
      } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("requires FAISS"), std::string::npos);
      }
      continue;
    }
    const SearchResult approx = Search(q, db, options);
    EXPECT_EQ(approx.k, 10);
    const double recall = RecallAtK(exact, approx);
    EXPECT_GT(recall, 0.8) << SearchBackendToString(backend);
    EXPECT_LE(recall, 1.0);
    // Self exclusion and min_score still hold.
    std::vector<int64_t> ids(2000);
    for (int i = 0; i < 2000; ++i) ids[i] = i;
    options.min_score = 0.0f;
    const SearchResult self = Search(db, db, options, &ids, &ids);
    for (int64_t i = 0; i < 2000; ++i) {
      for (int64_t r = 0; r < self.NumValid(i); ++r) {
        EXPECT_NE(self.Label(i, r), i);
        EXPECT_GE(self.Score(i, r), 0.0f);
        if (r > 0) { EXPECT_GE(self.Score(i, r - 1), self.Score(i, r)); }
      }
    }
    options.min_score = -std::numeric_limits<float>::infinity();
  }
}

TEST(Search, RecallAtK) {
  SearchResult a;
  a.num_queries = 2;
  a.k = 2;
  a.labels = {1, 2, 3, -1};
  a.scores = {1, 1, 1, -1};
  SearchResult b = a;
  EXPECT_DOUBLE_EQ(RecallAtK(a, b), 1.0);
  b.labels = {2, 5, 4, -1};
  EXPECT_DOUBLE_EQ(RecallAtK(a, b), 0.25);
}

TEST(Search, ParseByteSize) {
  EXPECT_EQ(ParseByteSize("4096"), 4096);
  EXPECT_EQ(ParseByteSize("2GB"), 2000000000);
  EXPECT_EQ(ParseByteSize("2GiB"), int64_t{2} << 30);
  EXPECT_EQ(ParseByteSize("2G"), int64_t{2} << 30);
  EXPECT_EQ(ParseByteSize("512MB"), 512000000);
  EXPECT_EQ(ParseByteSize("1.5k"), 1536);
  EXPECT_THROW(ParseByteSize("lots"), InvalidArgument);
  EXPECT_THROW(ParseByteSize("-1GB"), InvalidArgument);
  EXPECT_THROW(ParseByteSize("3 parsecs"), InvalidArgument);
}

// OpenBLAS is bypassed exactly when its detected core has narrower kernels than the CPU.
TEST(RetrievalGemm, RoutingByVectorWidth) {
  EXPECT_EQ(internal::OpenBlasCoreVectorBits("SkylakeX"), 512);
  EXPECT_EQ(internal::OpenBlasCoreVectorBits("Cooperlake"), 512);
  EXPECT_EQ(internal::OpenBlasCoreVectorBits("Haswell"), 256);
  EXPECT_EQ(internal::OpenBlasCoreVectorBits("Zen"), 256);
  EXPECT_EQ(internal::OpenBlasCoreVectorBits("Prescott"), 128);
  EXPECT_EQ(internal::OpenBlasCoreVectorBits("SomethingNew"), 128);
  // Zen 5 (AVX-512) detected as Haswell by OpenBLAS 0.3.21: bypass.
  EXPECT_TRUE(internal::PreferDnnlSgemm("Haswell", 512));
  // Emerald Rapids detected as Prescott: bypass.
  EXPECT_TRUE(internal::PreferDnnlSgemm("Prescott", 512));
  EXPECT_TRUE(internal::PreferDnnlSgemm("Prescott", 256));
  // The core matches the CPU: keep OpenBLAS.
  EXPECT_FALSE(internal::PreferDnnlSgemm("SkylakeX", 512));
  EXPECT_FALSE(internal::PreferDnnlSgemm("Haswell", 256));
  EXPECT_FALSE(internal::PreferDnnlSgemm("Prescott", 128));
  // Not OpenBLAS (another CBLAS): never second-guessed.
  EXPECT_FALSE(internal::PreferDnnlSgemm("", 512));
  const int bits = internal::CpuVectorBits();
  EXPECT_TRUE(bits == 128 || bits == 256 || bits == 512) << bits;
  EXPECT_FALSE(RetrievalGemmBackend().empty());
}

}  // namespace
}  // namespace megaloc
