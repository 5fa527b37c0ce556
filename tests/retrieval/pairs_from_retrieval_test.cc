#include "megaloc/retrieval/pairs_from_retrieval.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "megaloc/io/descriptor_store.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "tests/common/testing.h"

namespace megaloc {
namespace {

Eigen::VectorXf RandomUnit(int dim, std::mt19937* rng) {
  std::normal_distribution<float> normal;
  Eigen::VectorXf v(dim);
  for (int d = 0; d < dim; ++d) v(d) = normal(*rng);
  return v.normalized();
}

// Writes `names` with random unit descriptors; returns what a reader gets back (float16-rounded
// when stored as float16).
std::map<std::string, Eigen::VectorXf> WriteFile(const std::string& path,
                                                 const std::vector<std::string>& names,
                                                 int dim,
                                                 DescriptorDtype dtype,
                                                 uint32_t seed) {
  std::mt19937 rng(seed);
  {
    auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kCreate);
    for (const auto& name : names) {
      const Eigen::VectorXf v = RandomUnit(dim, &rng);
      file->Write(name, v.data(), dim, 640, 480, dtype);
    }
    file->Flush();
  }
  std::map<std::string, Eigen::VectorXf> back;
  auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kRead);
  for (const auto& name : names) back[name] = file->Read(name);
  return back;
}

// hloc's pairs_from_retrieval semantics, brute force in double, deterministic tie order by name.
std::vector<ScoredImagePair> Reference(const std::map<std::string, Eigen::VectorXf>& queries,
                                       const std::map<std::string, Eigen::VectorXf>& db,
                                       int k,
                                       float min_score) {
  std::vector<ScoredImagePair> out;
  for (const auto& [qname, q] : queries) {  // std::map: sorted names
    std::vector<std::pair<float, std::string>> all;
    for (const auto& [dname, d] : db) {
      if (dname == qname) continue;
      const float s = static_cast<float>(q.cast<double>().dot(d.cast<double>()));
      if (s < min_score) continue;
      all.emplace_back(s, dname);
    }
    std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    });
    for (int r = 0; r < std::min<int>(k, all.size()); ++r) {
      out.push_back({{qname, all[r].second}, all[r].first});
    }
  }
  return out;
}

void ExpectSamePairs(const std::vector<ScoredImagePair>& got,
                     const std::vector<ScoredImagePair>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].pair.name1, want[i].pair.name1) << i;
    EXPECT_EQ(got[i].pair.name2, want[i].pair.name2) << i;
    EXPECT_NEAR(got[i].score, want[i].score, 1e-5) << i;
  }
}

std::vector<std::string> Names(const std::string& prefix, int n) {
  std::vector<std::string> names;
  for (int i = 0; i < n; ++i) {
    char buffer[32];
    std::snprintf(buffer, sizeof(buffer), "%03d.jpg", i);
    names.push_back(prefix + buffer);
  }
  return names;
}

class PairsFromRetrievalTest : public ::testing::TestWithParam<DescriptorDtype> {};

TEST_P(PairsFromRetrievalTest, SelfRetrievalMatchesReference) {
  const std::string dir = testing::TempDir();
  const std::string path = JoinPaths(dir, "global.h5");
  std::vector<std::string> names = Names("seqA/", 30);
  for (const auto& n : Names("seqB/", 25)) names.push_back(n);
  const auto desc = WriteFile(path, names, 40, GetParam(), 1);
  for (int64_t memory_limit : {int64_t{1} << 30, int64_t{20000}, int64_t{60000}}) {
   for (bool cache : {true, false}) {
    PairsFromRetrievalOptions options;
    options.descriptors_path = path;
    options.search.num_neighbors = 5;
    options.search.memory_limit = memory_limit;
    options.cache_database = cache;
    const RetrievalPairs result = PairsFromRetrieval(options);
    SCOPED_TRACE(::testing::Message() << "memory_limit " << memory_limit << " cache " << cache);
    // float16 database (55 x 40 x 2 bytes = 4400) cached when allowed and within half the budget.
    EXPECT_EQ(result.stats.database_cached, cache && GetParam() == DescriptorDtype::kFloat16);
    ExpectSamePairs(result.pairs, Reference(desc, desc, 5, 0.0f));
    EXPECT_EQ(result.stats.num_queries, 55);
    EXPECT_EQ(result.stats.num_db, 55);
    EXPECT_EQ(result.stats.dim, 40);
    EXPECT_LE(result.stats.search.working_bytes, memory_limit);
    for (const auto& p : result.pairs) EXPECT_NE(p.pair.name1, p.pair.name2);
   }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes,
                         PairsFromRetrievalTest,
                         ::testing::Values(DescriptorDtype::kFloat16, DescriptorDtype::kFloat32),
                         [](const auto& info) { return DescriptorDtypeName(info.param); });

TEST(PairsFromRetrieval, PrefixesListsAndDbFiles) {
  const std::string dir = testing::TempDir();
  const std::string queries_path = JoinPaths(dir, "queries.h5");
  const std::string db1_path = JoinPaths(dir, "db1.h5");
  const std::string db2_path = JoinPaths(dir, "db2.h5");
  std::vector<std::string> qnames = Names("query/day/", 6);
  for (const auto& n : Names("query/night/", 4)) qnames.push_back(n);
  const auto q = WriteFile(queries_path, qnames, 32, DescriptorDtype::kFloat16, 2);
  auto db1 = WriteFile(db1_path, Names("db/", 20), 32, DescriptorDtype::kFloat16, 3);
  // db2 re-defines db/005.jpg and db/006.jpg (the later file wins) and adds others, in float32.
  std::vector<std::string> db2_names = {"db/005.jpg", "db/006.jpg", "db/100.jpg", "other/1.jpg"};
  const auto db2 = WriteFile(db2_path, db2_names, 32, DescriptorDtype::kFloat32, 4);
  std::map<std::string, Eigen::VectorXf> db_all = db1;
  for (const auto& [n, v] : db2) db_all[n] = v;

  PairsFromRetrievalOptions options;
  options.descriptors_path = queries_path;
  options.db_descriptors_paths = {db1_path, db2_path};
  options.search.num_neighbors = 3;
  options.search.min_score = -1.0f;
  RetrievalPairs result = PairsFromRetrieval(options);
  ExpectSamePairs(result.pairs, Reference(q, db_all, 3, -1.0f));
  EXPECT_EQ(result.stats.num_duplicate_db_names, 2);
  // The float32 shard is not representable in float16: streamed, never rounded.
  EXPECT_FALSE(result.stats.database_cached);
  EXPECT_EQ(result.stats.num_db, 22);

  // Several prefixes; the query and db prefixes filter independently.
  options.query_prefixes = {"query/night/", "query/day/000"};
  options.db_prefixes = {"db/"};
  result = PairsFromRetrieval(options);
  std::map<std::string, Eigen::VectorXf> q_sel, db_sel;
  for (const auto& [n, v] : q) {
    if (n.rfind("query/night/", 0) == 0 || n.rfind("query/day/000", 0) == 0) q_sel[n] = v;
  }
  for (const auto& [n, v] : db_all) {
    if (n.rfind("db/", 0) == 0) db_sel[n] = v;
  }
  EXPECT_EQ(q_sel.size(), 5u);
  EXPECT_EQ(db_sel.size(), 21u);
  ExpectSamePairs(result.pairs, Reference(q_sel, db_sel, 3, -1.0f));

  // Lists (first token per line, comments); a prefix takes precedence over a list (hloc).
  const std::string qlist = JoinPaths(dir, "queries.txt");
  const std::string dblist = JoinPaths(dir, "db.txt");
  WriteFileAtomically(qlist, "# queries\nquery/day/003.jpg extra tokens\n\nquery/night/001.jpg\n");
  WriteFileAtomically(dblist, "db/001.jpg\nother/1.jpg\ndb/005.jpg\n");
  options.query_prefixes.clear();
  options.db_prefixes.clear();
  options.query_list_path = qlist;
  options.db_list_path = dblist;
  result = PairsFromRetrieval(options);
  ExpectSamePairs(result.pairs,
                  Reference({{"query/day/003.jpg", q.at("query/day/003.jpg")},
                             {"query/night/001.jpg", q.at("query/night/001.jpg")}},
                            {{"db/001.jpg", db_all.at("db/001.jpg")},
                             {"other/1.jpg", db_all.at("other/1.jpg")},
                             {"db/005.jpg", db_all.at("db/005.jpg")}},
                            3, -1.0f));

  // Errors: a prefix that matches nothing, a listed name without descriptor.
  options.query_prefixes = {"nope/"};
  try {
    PairsFromRetrieval(options);
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("nope/"), std::string::npos) << e.what();
  }
  options.query_prefixes.clear();
  WriteFileAtomically(dblist, "db/001.jpg\ndb/missing.jpg\n");
  try {
    PairsFromRetrieval(options);
    FAIL();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("db/missing.jpg"), std::string::npos) << e.what();
  }
}

TEST(PairsFromRetrieval, KClampMinScoreUniqueAndWriting) {
  const std::string dir = testing::TempDir();
  const std::string path = JoinPaths(dir, "global.h5");
  const auto desc = WriteFile(path, Names("", 8), 16, DescriptorDtype::kFloat32, 5);
  PairsFromRetrievalOptions options;
  options.descriptors_path = path;
  options.search.num_neighbors = 100;  // > |db|: clamped (hloc would crash)
  options.search.min_score = -2.0f;
  RetrievalPairs result = PairsFromRetrieval(options);
  EXPECT_EQ(result.pairs.size(), 8u * 7u);
  ExpectSamePairs(result.pairs, Reference(desc, desc, 100, -2.0f));

  options.search.min_score = 0.0f;
  result = PairsFromRetrieval(options);
  ExpectSamePairs(result.pairs, Reference(desc, desc, 100, 0.0f));
  for (const auto& p : result.pairs) EXPECT_GE(p.score, 0.0f);

  options.unique = true;
  options.search.min_score = -2.0f;
  const std::string out = JoinPaths(dir, "pairs.txt");
  const std::string scores = JoinPaths(dir, "scores.txt");
  const PairsStats stats = RunPairsFromRetrieval(options, out, scores);
  EXPECT_EQ(stats.num_pairs, 8 * 7 / 2);
  const auto written = ReadPairs(out);
  ASSERT_EQ(written.size(), 28u);
  std::set<std::pair<std::string, std::string>> unordered;
  for (const auto& p : written) {
    unordered.insert(std::minmax(p.name1, p.name2));
  }
  EXPECT_EQ(unordered.size(), 28u);
  const auto scored = ReadPairScores(scores);
  ASSERT_EQ(scored.size(), 28u);
  for (size_t i = 0; i < 28; ++i) {
    EXPECT_EQ(scored[i].pair, written[i]);
    const float ref = desc.at(written[i].name1).dot(desc.at(written[i].name2));
    EXPECT_NEAR(scored[i].score, ref, 1e-5);
  }
  // Exactly "<a> <b>\n" lines.
  const std::string text = ReadFileToString(out);
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(text.find("  "), std::string::npos);
  EXPECT_EQ(text.find('\t'), std::string::npos);
}

TEST(PairsFromRetrieval, DimensionMismatchAndBadFiles) {
  const std::string dir = testing::TempDir();
  const std::string a = JoinPaths(dir, "a.h5");
  const std::string b = JoinPaths(dir, "b.h5");
  WriteFile(a, Names("a", 3), 16, DescriptorDtype::kFloat16, 6);
  WriteFile(b, Names("b", 3), 24, DescriptorDtype::kFloat16, 7);
  PairsFromRetrievalOptions options;
  options.descriptors_path = a;
  options.db_descriptors_paths = {b};
  try {
    PairsFromRetrieval(options);
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("dimensions"), std::string::npos) << e.what();
  }
  options.db_descriptors_paths = {JoinPaths(dir, "missing.h5")};
  EXPECT_THROW(PairsFromRetrieval(options), IoError);
  const std::string junk = JoinPaths(dir, "junk.h5");
  WriteFileAtomically(junk, "not an hdf5 file");
  options.db_descriptors_paths = {junk};
  EXPECT_THROW(PairsFromRetrieval(options), IoError);
}

// --min_score nan and other non-finite floating-point options: one plain InvalidArgument naming the
// option, nothing logged before it (the CLI prints exactly one line). -inf min_score stays valid.
TEST(PairsFromRetrieval, NonFiniteOptionsAreOnePlainError) {
  const std::string dir = testing::TempDir();
  const std::string path = JoinPaths(dir, "global.h5");
  WriteFile(path, Names("", 4), 8, DescriptorDtype::kFloat16, 9);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  struct Case {
    std::string option;
    std::function<void(PairsFromRetrievalOptions*)> set;
  };
  const std::vector<Case> cases = {
      {"min_score", [&](PairsFromRetrievalOptions* o) { o->search.min_score = nan; }},
      {"min_score", [&](PairsFromRetrievalOptions* o) { o->search.min_score = inf; }},
      {"max_distance", [&](PairsFromRetrievalOptions* o) { o->max_distance = nan; }},
      {"max_distance", [&](PairsFromRetrievalOptions* o) { o->max_distance = inf; }},
      {"max_distance", [&](PairsFromRetrievalOptions* o) { o->max_distance = -inf; }},
      {"qe_alpha", [&](PairsFromRetrievalOptions* o) { o->expansion.qe_alpha = nan; }},
      {"dba_alpha", [&](PairsFromRetrievalOptions* o) { o->expansion.dba_alpha = inf; }},
  };
  for (const Case& c : cases) {
    PairsFromRetrievalOptions options;
    options.descriptors_path = path;
    options.search.num_neighbors = 2;
    c.set(&options);
    EXPECT_FALSE(options.Check()) << c.option;
    ::testing::internal::CaptureStderr();
    try {
      PairsFromRetrieval(options);
      ADD_FAILURE() << c.option << ": no error";
    } catch (const InvalidArgument& e) {
      const std::string message = e.what();
      EXPECT_EQ(message.rfind("Invalid option " + c.option + ": ", 0), 0u) << message;
      EXPECT_NE(message.find("finite"), std::string::npos) << message;
      EXPECT_EQ(message.find("Check failed"), std::string::npos) << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    }
    EXPECT_EQ(::testing::internal::GetCapturedStderr(), "") << c.option;
  }
  // Search() directly, too.
  DescriptorMatrix x = DescriptorMatrix::Identity(3, 3);
  SearchOptions search;
  search.min_score = nan;
  EXPECT_THROW(Search(x, x, search), InvalidArgument);
  // -infinity keeps every finite score (documented), still accepted.
  PairsFromRetrievalOptions options;
  options.descriptors_path = path;
  options.search.num_neighbors = 3;
  options.search.min_score = -inf;
  EXPECT_EQ(PairsFromRetrieval(options).pairs.size(), 4u * 3u);
}

TEST(RetrievePairs, InMemoryTiesBrokenByNameAndSelfByName) {
  // Database names in reverse order with identical descriptors: ties must resolve by name, not row.
  DescriptorMatrix db(4, 2);
  db << 1, 0, 1, 0, 1, 0, 0, 1;
  const std::vector<std::string> db_names = {"d.jpg", "c.jpg", "b.jpg", "a.jpg"};
  DescriptorMatrix q(2, 2);
  q << 1, 0, 0, 1;
  const std::vector<std::string> q_names = {"z.jpg", "c.jpg"};  // c.jpg is also in the db
  SearchOptions options;
  options.num_neighbors = 2;
  const auto pairs = RetrievePairs(q_names, q, db_names, db, options);
  // Queries sorted: c.jpg first. c.jpg = (0,1): best a.jpg (1.0), then ties at 0: b.jpg, c.jpg
  // (self, excluded), d.jpg -> b.jpg.
  ASSERT_EQ(pairs.size(), 4u);
  EXPECT_EQ(pairs[0].pair, (ImagePair{"c.jpg", "a.jpg"}));
  EXPECT_EQ(pairs[1].pair, (ImagePair{"c.jpg", "b.jpg"}));
  EXPECT_EQ(pairs[1].score, 0.0f);
  // z.jpg = (1,0): ties at 1.0 between b, c, d -> b, c.
  EXPECT_EQ(pairs[2].pair, (ImagePair{"z.jpg", "b.jpg"}));
  EXPECT_EQ(pairs[3].pair, (ImagePair{"z.jpg", "c.jpg"}));

  EXPECT_THROW(RetrievePairs({"a b.jpg", "c.jpg"}, q, db_names, db, options), InvalidArgument);
  EXPECT_THROW(RetrievePairs({"x.jpg", "x.jpg"}, q, db_names, db, options), InvalidArgument);
  EXPECT_THROW(RetrievePairs({"x.jpg"}, q, db_names, db, options), InvalidArgument);
}

}  // namespace
}  // namespace megaloc
