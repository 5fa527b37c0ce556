#include "megaloc/retrieval/pairs_from_retrieval.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <map>
#include <numeric>
#include <set>
#include <utility>

#include "megaloc/io/descriptor_store.h"
#include "megaloc/io/image_list.h"
#include "megaloc/retrieval/search_internal.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/string_utils.h"
#include "megaloc/util/timer.h"

namespace megaloc {
namespace {

constexpr int64_t kHdfReadChunk = 256;  // rows per HDF5 ReadBlock call (bounds the temporary)

// Rows of `source` in the order given by `permutation` (row i = source row permutation[i]).
class PermutedSource : public DescriptorSource {
 public:
  PermutedSource(const DescriptorSource& source, const std::vector<int64_t>& permutation)
      : source_(source), permutation_(permutation) {}
  int64_t NumRows() const override { return static_cast<int64_t>(permutation_.size()); }
  int Dim() const override { return source_.Dim(); }
  void ReadRows(int64_t begin, int64_t count, float* out) const override {
    const int dim = source_.Dim();
    for (int64_t r = 0; r < count; ++r) {
      const int64_t row = permutation_[begin + r];
      const float* resident = source_.ResidentRows(row);
      if (resident != nullptr) {
        std::memcpy(out + r * dim, resident, sizeof(float) * dim);
      } else {
        source_.ReadRows(row, 1, out + r * dim);
      }
    }
  }

 private:
  const DescriptorSource& source_;
  const std::vector<int64_t>& permutation_;
};

std::vector<int64_t> SortedOrder(const std::vector<std::string>& names, const char* what) {
  std::vector<int64_t> order(names.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int64_t a, int64_t b) { return names[a] < names[b]; });
  for (size_t i = 1; i < order.size(); ++i) {
    MEGALOC_CHECK_MSG(names[order[i]] != names[order[i - 1]],
                      "Duplicate " << what << " image name '" << names[order[i]] << "'");
  }
  return order;
}

bool IsIdentity(const std::vector<int64_t>& order) {
  for (size_t i = 0; i < order.size(); ++i) {
    if (order[i] != static_cast<int64_t>(i)) return false;
  }
  return true;
}

// Names that a pair list cannot hold, quoted with tabs and newlines made visible.
std::string QuoteName(const std::string& name) {
  std::string out = "'";
  for (char c : name) {
    if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else {
      out += c;
    }
  }
  return out + "'";
}

// Removes names with whitespace (or empty) from `names` when `skip`, else throws naming them.
int64_t RemoveInvalidNames(std::vector<std::string>* names, bool skip, const std::string& source) {
  std::vector<std::string> bad;
  for (const std::string& name : *names) {
    if (name.empty() || HasWhitespace(name)) bad.push_back(name);
  }
  if (bad.empty()) return 0;
  if (!skip) {
    std::string listed;
    for (size_t i = 0; i < bad.size() && i < 10; ++i) listed += (i ? ", " : "") + QuoteName(bad[i]);
    if (bad.size() > 10) listed += ", ... (" + std::to_string(bad.size() - 10) + " more)";
    MEGALOC_THROW(InvalidArgument, source << ": " << bad.size() << " image name(s) contain whitespace, which "
                                          << "pair lists cannot represent (hloc and COLMAP split lines on "
                                             "spaces): "
                                          << listed
                                          << ". Rename the images, or skip them (skip_invalid_names / "
                                             "--skip_invalid_names).");
  }
  names->erase(std::remove_if(names->begin(), names->end(),
                              [](const std::string& n) { return n.empty() || HasWhitespace(n); }),
               names->end());
  return static_cast<int64_t>(bad.size());
}

std::string JoinForMessage(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + items[i];
  return out;
}

}  // namespace

bool PairsFromRetrievalOptions::UsesPairGraph() const {
  return sequence.overlap > 0 || !sequence.pattern.empty() || sequence.loop_closure > 0 ||
         max_distance >= 0.0 || spatial_k > 0 || expansion.Enabled() || connect || cover_bridges;
}

bool PairsFromRetrievalOptions::Check() const {
  CHECK_OPTION(!descriptors_path.empty());
  for (const auto& p : query_prefixes) CHECK_OPTION(!p.empty());
  for (const auto& p : db_prefixes) CHECK_OPTION(!p.empty());
  CHECK_OPTION_GE(search.num_neighbors, 0);
  SearchOptions s = search;
  s.num_neighbors = std::max(1, search.num_neighbors);
  CHECK_OPTION(s.Check());
  CHECK_OPTION(sequence.Check());
  CHECK_OPTION(std::isfinite(max_distance));
  CHECK_OPTION_GE(spatial_k, 0);
  CHECK_OPTION(expansion.Check());
  return true;
}

std::vector<std::string> SelectNames(const std::vector<std::string>& all_names,
                                     const std::vector<std::string>& prefixes,
                                     const std::string& list_path,
                                     const std::string& what,
                                     const std::string& source) {
  std::vector<std::string> sorted_all = all_names;
  std::sort(sorted_all.begin(), sorted_all.end());
  sorted_all.erase(std::unique(sorted_all.begin(), sorted_all.end()), sorted_all.end());
  if (!prefixes.empty()) {
    std::vector<std::string> names;
    for (const std::string& name : sorted_all) {
      for (const std::string& prefix : prefixes) {
        if (StartsWith(name, prefix)) {
          names.push_back(name);
          break;
        }
      }
    }
    if (names.empty()) {
      MEGALOC_THROW(InvalidArgument, "Could not find any " << what << " image with the prefix"
                                                           << (prefixes.size() > 1 ? "es " : " ")
                                                           << JoinForMessage(prefixes) << " in "
                                                           << source);
    }
    return names;
  }
  if (!list_path.empty()) {
    std::vector<std::string> listed = ReadImageList(list_path, "");
    std::sort(listed.begin(), listed.end());
    listed.erase(std::unique(listed.begin(), listed.end()), listed.end());
    for (const std::string& name : listed) {
      if (!std::binary_search(sorted_all.begin(), sorted_all.end(), name)) {
        MEGALOC_THROW(IoError, list_path << ": " << what << " image '" << name
                                         << "' has no global descriptor in " << source);
      }
    }
    return listed;
  }
  return sorted_all;
}

std::vector<ScoredImagePair> RetrievePairs(const std::vector<std::string>& query_names,
                                           const DescriptorSource& queries,
                                           const std::vector<std::string>& db_names,
                                           const DescriptorSource& db,
                                           const SearchOptions& options,
                                           bool unique,
                                           SearchStats* stats) {
  MEGALOC_CHECK_MSG(static_cast<int64_t>(query_names.size()) == queries.NumRows(),
                    query_names.size() << " query names for " << queries.NumRows()
                                       << " query descriptors");
  MEGALOC_CHECK_MSG(static_cast<int64_t>(db_names.size()) == db.NumRows(),
                    db_names.size() << " database names for " << db.NumRows()
                                    << " database descriptors");
  for (const auto& name : query_names) CheckPairName(name, "query");
  for (const auto& name : db_names) CheckPairName(name, "database");
  const std::vector<int64_t> q_order = SortedOrder(query_names, "query");
  const std::vector<int64_t> db_order = SortedOrder(db_names, "database");

  std::vector<std::string> sorted_db(db_names.size());
  for (size_t j = 0; j < db_order.size(); ++j) sorted_db[j] = db_names[db_order[j]];
  // Self mask by name: database ids are sorted positions, a query gets the id of its name in the
  // database, or a unique negative id if the database does not have it.
  std::vector<int64_t> db_ids(sorted_db.size());
  std::iota(db_ids.begin(), db_ids.end(), 0);
  std::vector<int64_t> query_ids(query_names.size());
  for (size_t i = 0; i < q_order.size(); ++i) {
    const std::string& name = query_names[q_order[i]];
    auto it = std::lower_bound(sorted_db.begin(), sorted_db.end(), name);
    query_ids[i] = (it != sorted_db.end() && *it == name) ? (it - sorted_db.begin())
                                                          : -1 - static_cast<int64_t>(i);
  }

  std::unique_ptr<PermutedSource> q_perm, db_perm;
  const DescriptorSource* q_source = &queries;
  const DescriptorSource* db_source = &db;
  if (!IsIdentity(q_order)) {
    q_perm = std::make_unique<PermutedSource>(queries, q_order);
    q_source = q_perm.get();
  }
  if (&queries == &db && query_names == db_names) {
    db_source = q_source;  // self-retrieval: lets Search use the symmetric engine
  } else if (!IsIdentity(db_order)) {
    db_perm = std::make_unique<PermutedSource>(db, db_order);
    db_source = db_perm.get();
  }
  const SearchResult result = Search(*q_source, *db_source, options, &query_ids, &db_ids, stats);

  std::vector<ScoredImagePair> pairs;
  std::set<std::pair<std::string, std::string>> seen;
  for (int64_t i = 0; i < result.num_queries; ++i) {
    const std::string& qname = query_names[q_order[i]];
    for (int64_t r = 0; r < result.NumValid(i); ++r) {
      const std::string& dname = sorted_db[result.Label(i, r)];
      if (unique) {
        auto key = qname < dname ? std::make_pair(qname, dname) : std::make_pair(dname, qname);
        if (!seen.insert(std::move(key)).second) continue;
      }
      pairs.push_back({{qname, dname}, result.Score(i, r)});
    }
  }
  return pairs;
}

std::vector<ScoredImagePair> RetrievePairs(const std::vector<std::string>& query_names,
                                           const DescriptorMatrix& queries,
                                           const std::vector<std::string>& db_names,
                                           const DescriptorMatrix& db,
                                           const SearchOptions& options,
                                           bool unique,
                                           SearchStats* stats) {
  MEGALOC_CHECK_MSG(queries.cols() == db.cols() || queries.rows() == 0 || db.rows() == 0,
                    "Query descriptors have dimension " << queries.cols()
                                                        << " but database descriptors "
                                                        << db.cols());
  const int dim = static_cast<int>(std::max<int64_t>(1, std::max(queries.cols(), db.cols())));
  MatrixDescriptorSource q(queries.data(), queries.rows(), dim);
  if (queries.data() == db.data() && queries.rows() == db.rows()) {
    return RetrievePairs(query_names, q, db_names, q, options, unique, stats);
  }
  MatrixDescriptorSource d(db.data(), db.rows(), dim);
  return RetrievePairs(query_names, q, db_names, d, options, unique, stats);
}

HdfDescriptorSource::HdfDescriptorSource(std::vector<const DescriptorFile*> files,
                                         std::vector<std::string> names,
                                         std::vector<int> file_index)
    : files_(std::move(files)), names_(std::move(names)), file_index_(std::move(file_index)) {
  MEGALOC_CHECK_EQ(names_.size(), file_index_.size());
  for (int f : file_index_) MEGALOC_CHECK(f >= 0 && f < static_cast<int>(files_.size()));
  if (!names_.empty()) dim_ = files_[file_index_[0]]->Dim(names_[0]);
}

void HdfDescriptorSource::ReadRows(int64_t begin, int64_t count, float* out) const {
  MEGALOC_CHECK(begin >= 0 && count >= 0 && begin + count <= NumRows());
  if (locations_.size() != names_.size()) locations_.assign(names_.size(), DescriptorFile::Location());
  int64_t row = begin;
  const int64_t end = begin + count;
  while (row < end) {
    const int f = file_index_[row];
    int64_t stop = row + 1;
    while (stop < end && file_index_[stop] == f) ++stop;
    files_[f]->ReadBlockLocated(names_, static_cast<size_t>(row), static_cast<size_t>(stop), dim_,
                                names_[0], &locations_, out + (row - begin) * dim_);
    row = stop;
  }
}

namespace {

// float16 -> float32 for every bit pattern (exact, via the io converter).
const std::vector<float>& HalfTable() {
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    for (uint32_t h = 0; h < 65536; ++h) t[h] = HalfToFloat(static_cast<uint16_t>(h));
    return t;
  }();
  return table;
}

}  // namespace

HalfMatrixSource::HalfMatrixSource(std::vector<uint16_t> data, int64_t num_rows, int dim)
    : data_(std::move(data)), num_rows_(num_rows), dim_(dim) {
  MEGALOC_CHECK_EQ(static_cast<int64_t>(data_.size()), num_rows * dim);
}

void HalfMatrixSource::ReadRows(int64_t begin, int64_t count, float* out) const {
  MEGALOC_CHECK(begin >= 0 && count >= 0 && begin + count <= num_rows_);
  HalfToFloatRow(data_.data() + begin * dim_, out, static_cast<size_t>(count * dim_));
}

std::unique_ptr<HalfMatrixSource> HalfMatrixSource::FromHdf(const HdfDescriptorSource& source) {
  const int64_t n = source.NumRows();
  const int dim = source.Dim();
  std::vector<uint16_t> data(static_cast<size_t>(n) * dim);
  std::vector<float> block(static_cast<size_t>(kHdfReadChunk) * dim);
  const float* table = HalfTable().data();
  for (int64_t row = 0; row < n; row += kHdfReadChunk) {
    const int64_t count = std::min(kHdfReadChunk, n - row);
    source.ReadRows(row, count, block.data());
    uint16_t* out = data.data() + row * dim;
    for (int64_t i = 0; i < count * dim; ++i) {
      out[i] = FloatToHalf(block[i]);
      // A float32 descriptor is not representable: caching it would change scores.
      if (table[out[i]] != block[i]) return nullptr;
    }
  }
  return std::make_unique<HalfMatrixSource>(std::move(data), n, dim);
}

RetrievalPairs PairsFromRetrieval(const PairsFromRetrievalOptions& options,
                                  const PositionPriors* priors) {
  internal::ThrowIfNotFinite("min_score", options.search.min_score, /*allow_negative_infinity=*/true);
  internal::ThrowIfNotFinite("max_distance", options.max_distance);
  internal::ThrowIfNotFinite("qe_alpha", options.expansion.qe_alpha);
  internal::ThrowIfNotFinite("dba_alpha", options.expansion.dba_alpha);
  MEGALOC_CHECK_MSG(options.Check(), "Invalid pairs-from-retrieval options (see the log)");
  Timer total_timer;
  RetrievalPairs out;
  PairsStats& stats = out.stats;

  // Open every distinct file once.
  std::vector<std::unique_ptr<DescriptorFile>> owned;
  std::map<std::string, int> file_of_path;
  auto open = [&](const std::string& path) {
    auto it = file_of_path.find(path);
    if (it != file_of_path.end()) return it->second;
    owned.push_back(DescriptorFile::Open(path, DescriptorFile::Mode::kRead));
    file_of_path[path] = static_cast<int>(owned.size()) - 1;
    return static_cast<int>(owned.size()) - 1;
  };
  const int query_file = open(options.descriptors_path);
  std::vector<std::string> db_paths = options.db_descriptors_paths;
  if (db_paths.empty()) db_paths.push_back(options.descriptors_path);
  std::vector<int> db_files;
  for (const auto& path : db_paths) db_files.push_back(open(path));

  // Each file is listed once (a walk over its structure unless the probe already did it).
  std::vector<std::vector<std::string>> listed(owned.size());
  std::vector<bool> is_listed(owned.size(), false);
  auto names_of = [&](int f) -> const std::vector<std::string>& {
    if (!is_listed[f]) {
      listed[f] = owned[f]->ListNames();
      is_listed[f] = true;
    }
    return listed[f];
  };
  // Name -> file over the database files; the last file having a name wins (hloc).
  std::map<std::string, int> db_file_of_name;
  for (int f : db_files) {
    for (const std::string& name : names_of(f)) {
      auto [it, inserted] = db_file_of_name.emplace(name, f);
      if (!inserted && it->second != f) {
        ++stats.num_duplicate_db_names;
        it->second = f;
      }
    }
  }
  std::vector<std::string> db_all;
  db_all.reserve(db_file_of_name.size());
  for (const auto& entry : db_file_of_name) db_all.push_back(entry.first);
  std::string db_source_text;
  for (size_t i = 0; i < db_paths.size(); ++i) db_source_text += (i ? ", " : "") + db_paths[i];

  std::vector<std::string> query_names =
      SelectNames(names_of(query_file), options.query_prefixes, options.query_list_path,
                  "query", options.descriptors_path);
  std::vector<std::string> db_names =
      SelectNames(db_all, options.db_prefixes, options.db_list_path, "database", db_source_text);
  {
    // Invalid names over the union of both selections, reported (or skipped) once.
    std::vector<std::string> all_names;
    std::set_union(query_names.begin(), query_names.end(), db_names.begin(), db_names.end(),
                   std::back_inserter(all_names));
    const std::string source = options.db_descriptors_paths.empty()
                                   ? options.descriptors_path
                                   : options.descriptors_path + ", " + db_source_text;
    stats.num_invalid_names = RemoveInvalidNames(&all_names, options.skip_invalid_names, source);
    RemoveInvalidNames(&query_names, true, source);
    RemoveInvalidNames(&db_names, true, source);
  }

  std::vector<const DescriptorFile*> files;
  for (const auto& f : owned) files.push_back(f.get());
  HdfDescriptorSource queries(files, query_names, std::vector<int>(query_names.size(), query_file));
  std::vector<int> db_index(db_names.size());
  for (size_t j = 0; j < db_names.size(); ++j) db_index[j] = db_file_of_name.at(db_names[j]);
  HdfDescriptorSource db(files, db_names, db_index);
  if (!query_names.empty() && !db_names.empty() && queries.Dim() != db.Dim()) {
    MEGALOC_THROW(FormatError, "Query descriptors in " << options.descriptors_path << " have "
                                                       << queries.Dim() << " dimensions but database "
                                                       << "descriptors in " << db_source_text
                                                       << " have " << db.Dim());
  }
  stats.num_queries = static_cast<int64_t>(query_names.size());
  stats.num_db = static_cast<int64_t>(db_names.size());
  stats.dim = query_names.empty() ? db.Dim() : queries.Dim();
  stats.list_seconds = total_timer.ElapsedSeconds();

  // SfM self-retrieval (same names from the same file): one source for both sides.
  const bool self_retrieval =
      query_names == db_names &&
      std::all_of(db_index.begin(), db_index.end(), [&](int f) { return f == query_file; });
  // float16 cache of the database when it fits in half the budget. Exact: every value is checked
  // to round-trip through float16 (true for float16 files); otherwise the database is streamed.
  SearchOptions search = options.search;
  std::unique_ptr<HalfMatrixSource> cache;
  const int64_t cache_bytes = stats.num_db * static_cast<int64_t>(std::max(stats.dim, 1)) * 2;
  if (options.cache_database && stats.num_db > 0 &&
      files[db_index[0]]->Dtype(db_names[0]) == DescriptorDtype::kFloat16 &&
      cache_bytes <= options.search.memory_limit / 2) {
    Timer cache_timer;
    cache = HalfMatrixSource::FromHdf(db);
    if (cache) {
      search.memory_limit = options.search.memory_limit - cache_bytes;
      stats.database_cached = true;
    }
    stats.cache_seconds = cache_timer.ElapsedSeconds();
  }
  const DescriptorSource& db_source = cache ? static_cast<const DescriptorSource&>(*cache) : db;
  const DescriptorSource& query_source =
      self_retrieval ? db_source : static_cast<const DescriptorSource&>(queries);
  if (self_retrieval) {
    PairGraphOptions graph;
    graph.search = search;
    graph.unique = options.unique;
    graph.sequence = options.sequence;
    graph.max_distance = options.max_distance;
    graph.spatial_k = options.spatial_k;
    graph.expansion = options.expansion;
    graph.connect = options.connect;
    graph.cover_bridges = options.cover_bridges;
    if ((graph.max_distance >= 0.0 || graph.spatial_k > 0) && priors == nullptr) {
      MEGALOC_THROW(InvalidArgument, "max_distance / spatial_k need position priors (a CSV file, a "
                                     "COLMAP database with pose_priors or EXIF GPS)");
    }
    stats.graph = BuildPairGraph(db_names, db_source, priors, graph);
    out.pairs = std::move(stats.graph.pairs);
    stats.graph.pairs.clear();
    stats.graph.sources.clear();
    stats.search = stats.graph.search;
  } else {
    if (options.UsesPairGraph()) {
      MEGALOC_THROW(InvalidArgument,
                    "sequential/loop-closure pairs, position priors, query expansion and connect "
                    "need the SfM mode (the same images as queries and database, from one file); "
                    "here the query and database selections differ");
    }
    if (options.search.num_neighbors < 1) {
      MEGALOC_THROW(InvalidArgument, "num_matched must be >= 1 when queries and database differ");
    }
    out.pairs = RetrievePairs(query_names, query_source, db_names, db_source, search, options.unique,
                              &stats.search);
    std::vector<std::string> all_names = query_names;
    all_names.insert(all_names.end(), db_names.begin(), db_names.end());
    std::sort(all_names.begin(), all_names.end());
    all_names.erase(std::unique(all_names.begin(), all_names.end()), all_names.end());
    std::vector<ImagePair> plain;
    plain.reserve(out.pairs.size());
    for (const auto& p : out.pairs) plain.push_back(p.pair);
    stats.graph.before_connect = DescribePairGraph(all_names, plain);
    stats.graph.after = stats.graph.before_connect;
    stats.graph.num_retrieval = static_cast<int64_t>(out.pairs.size());
  }
  stats.num_pairs = static_cast<int64_t>(out.pairs.size());
  if (self_retrieval) {
    // The queries are every image of the graph: those in no pair are its isolated images.
    stats.num_queries_without_pairs = stats.graph.after.num_isolated;
    stats.total_seconds = total_timer.ElapsedSeconds();
    return out;
  }
  std::set<std::string> with_pairs;
  for (const auto& p : out.pairs) with_pairs.insert(p.pair.name1);
  // With `unique`, a query whose pairs were all kept in the other orientation has none of its own;
  // count queries that appear nowhere.
  for (const auto& p : out.pairs) with_pairs.insert(p.pair.name2);
  for (const auto& name : query_names) stats.num_queries_without_pairs += with_pairs.count(name) ? 0 : 1;
  stats.total_seconds = total_timer.ElapsedSeconds();
  return out;
}

PairsStats RunPairsFromRetrieval(const PairsFromRetrievalOptions& options,
                                 const std::string& output_path,
                                 const std::string& scores_path,
                                 const PositionPriors* priors) {
  MEGALOC_CHECK_MSG(!output_path.empty(), "An output path for the pairs is required");
  RetrievalPairs result = PairsFromRetrieval(options, priors);
  WriteScoredPairs(output_path, result.pairs);
  if (!scores_path.empty()) WritePairScores(scores_path, result.pairs);
  return result.stats;
}

}  // namespace megaloc
