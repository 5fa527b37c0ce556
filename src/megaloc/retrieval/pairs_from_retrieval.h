#pragma once

// hloc's `pairs_from_retrieval` (docs/formats.md#pair-lists): for every query image, the
// `num_neighbors` database images with the highest global-descriptor inner product.
//
// Semantics (same as hloc unless noted):
//  * Queries come from `descriptors_path`; the database from `db_descriptors_paths` (several files
//    = shards) or, if none, from `descriptors_path`. A name present in several database files is
//    taken from the LAST file that has it (hloc's name -> file dict); PairsStats counts them.
//  * Selection: prefixes (str.startswith, several allowed, any may match; error if nothing matches)
//    take precedence over a list file (hloc's parse_names); otherwise every name of the file(s).
//    Names in a list file that are missing from the descriptors are an error (hloc: KeyError).
//    Duplicate list entries are dropped.
//  * Score: plain float32 inner product (float16 files are upcast per block, never the whole
//    database). Self mask by NAME equality (query_name == db_name). Scores < min_score dropped
//    (default 0: a score of exactly 0 is kept).
//  * k is clamped to the database size (hloc crashes when num_matched > |db|).
//  * Deterministic order (hloc's order is Python set order): queries in byte-sorted name order,
//    per query descending score, exact ties broken by ascending database name.
//  * `unique`: each unordered pair once, in its first orientation (UniquePairs), self pairs dropped.
//
// Memory: the database is streamed from the HDF5 files block by block through the exact engine, so
// peak memory is bounded by SearchOptions::memory_limit plus O(num_queries * k) results and the name
// lists, independent of the database size (the FAISS backends hold the whole database in RAM).

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "megaloc/io/descriptor_store.h"
#include "megaloc/retrieval/pair_graph.h"
#include "megaloc/retrieval/pairs_io.h"
#include "megaloc/retrieval/search.h"

namespace megaloc {

class PositionPriors;

struct PairsFromRetrievalOptions {
  // hloc global-descriptor HDF5 file with the queries (and the database when no db file is given).
  std::string descriptors_path;
  // Database HDF5 files (shards); empty = descriptors_path.
  std::vector<std::string> db_descriptors_paths;
  // Query selection: prefixes (any matching), else a list file (first token per line, '#' comments),
  // else every name of descriptors_path.
  std::vector<std::string> query_prefixes;
  std::string query_list_path;
  // Database selection, same rules over the database files.
  std::vector<std::string> db_prefixes;
  std::string db_list_path;
  // Write each unordered pair once (first orientation).
  bool unique = false;
  // Keep the database in RAM as float16 (2 bytes per value, read from the files once) when it
  // takes at most half of search.memory_limit and every value is a float16 (float16 files; float32
  // files are streamed, never rounded); the search then gets the rest of the budget.
  // Otherwise (or when false) the database is streamed from the HDF5 files block by block, which
  // re-reads it once per query block (self-retrieval: once per block row).
  bool cache_database = true;
  // k (num_neighbors = hloc's num_matched), min_score, memory_limit, threads, backend.
  // num_neighbors = 0: no retrieval pairs (only the pair-graph sources below).
  SearchOptions search;

  // Images whose name contains whitespace (pair lists cannot hold them): an error naming them
  // (default) or left out of the queries and the database (counted in PairsStats).
  bool skip_invalid_names = false;

  // SfM pair graph (pair_graph.h): sequential pairs and loop closure, position priors
  // (max_distance, spatial_k; the priors are an argument of PairsFromRetrieval), αQE/DBA and the
  // connectivity guarantee. Only in self-retrieval (the same images as queries and database, from
  // one file); InvalidArgument otherwise.
  SequenceOptions sequence;
  double max_distance = -1.0;
  int spatial_k = 0;
  QueryExpansionOptions expansion;
  bool connect = false;
  // PairGraphOptions::cover_bridges (implies connect).
  bool cover_bridges = false;

  // True if any pair-graph option above is set.
  bool UsesPairGraph() const;
  bool Check() const;
};

struct PairsStats {
  int64_t num_queries = 0;
  int64_t num_db = 0;
  int64_t num_pairs = 0;                  // pairs returned / written (after `unique`)
  int64_t num_queries_without_pairs = 0;  // queries that appear in no output pair
  int64_t num_duplicate_db_names = 0;     // names in several db files (the last file wins)
  int dim = 0;
  int64_t num_invalid_names = 0;          // names with whitespace left out (skip_invalid_names)
  bool database_cached = false;           // the database was held in RAM as float16
  double list_seconds = 0.0;              // opening files, listing and selecting names
  double cache_seconds = 0.0;             // reading the database into the float16 cache
  double total_seconds = 0.0;
  SearchStats search;
  // Pair-graph counts and statistics (self-retrieval; otherwise only before_connect/after and
  // num_retrieval are filled). graph.pairs and graph.sources are left empty (see RetrievalPairs).
  PairGraphResult graph;
};

struct RetrievalPairs {
  std::vector<ScoredImagePair> pairs;  // in output order
  PairsStats stats;
};

// hloc's name selection: prefixes, else a list file, else `all_names`. `what` ("query" / "database")
// and `source` (file names) appear in error messages. Returns sorted unique names.
// Throws InvalidArgument when a prefix matches nothing, IoError/FormatError for a bad list file or a
// listed name that is not in `all_names`.
std::vector<std::string> SelectNames(const std::vector<std::string>& all_names,
                                     const std::vector<std::string>& prefixes,
                                     const std::string& list_path,
                                     const std::string& what,
                                     const std::string& source);

// Core on named in-memory (or streamed) descriptors: used by the CLI, the COLMAP plugin and
// lamar_eval. Rows of `queries` / `db` correspond to `query_names` / `db_names` (any order; names
// unique within each list). Output order and semantics as above. Throws InvalidArgument on
// mismatched sizes, duplicate names, or names with whitespace.
std::vector<ScoredImagePair> RetrievePairs(const std::vector<std::string>& query_names,
                                           const DescriptorSource& queries,
                                           const std::vector<std::string>& db_names,
                                           const DescriptorSource& db,
                                           const SearchOptions& options,
                                           bool unique = false,
                                           SearchStats* stats = nullptr);
std::vector<ScoredImagePair> RetrievePairs(const std::vector<std::string>& query_names,
                                           const DescriptorMatrix& queries,
                                           const std::vector<std::string>& db_names,
                                           const DescriptorMatrix& db,
                                           const SearchOptions& options,
                                           bool unique = false,
                                           SearchStats* stats = nullptr);

// Reads rows of hloc HDF5 descriptor files lazily, `names[i]` from `files[file_index[i]]`, in
// blocks (float16 upcast per block). For streaming databases larger than RAM.
class HdfDescriptorSource : public DescriptorSource {
 public:
  // `files` must outlive the source. All descriptors must have the dimension of names[0]
  // (FormatError naming the file and image otherwise, raised when the row is read).
  HdfDescriptorSource(std::vector<const DescriptorFile*> files,
                      std::vector<std::string> names,
                      std::vector<int> file_index);
  int64_t NumRows() const override { return static_cast<int64_t>(names_.size()); }
  int Dim() const override { return dim_; }
  void ReadRows(int64_t begin, int64_t count, float* out) const override;

 private:
  std::vector<const DescriptorFile*> files_;
  std::vector<std::string> names_;
  std::vector<int> file_index_;
  int dim_ = 0;
  // Where each row's values lie (DescriptorFile::ReadBlockLocated): the first pass over the
  // database reads through HDF5, later passes read the bytes directly.
  mutable std::vector<DescriptorFile::Location> locations_;
};

// Descriptors held in RAM as IEEE binary16 bit patterns (row-major), converted to float32 per block.
class HalfMatrixSource : public DescriptorSource {
 public:
  HalfMatrixSource(std::vector<uint16_t> data, int64_t num_rows, int dim);
  int64_t NumRows() const override { return num_rows_; }
  int Dim() const override { return dim_; }
  void ReadRows(int64_t begin, int64_t count, float* out) const override;

  // Reads every row of `source`; nullptr if some value is not exactly representable in float16
  // (e.g. a float32 descriptor), so that caching never changes a score.
  static std::unique_ptr<HalfMatrixSource> FromHdf(const HdfDescriptorSource& source);

 private:
  std::vector<uint16_t> data_;
  int64_t num_rows_;
  int dim_;
};

// The whole pipeline on HDF5 files; returns the pairs (not written). `priors` (may be null) are the
// position priors for max_distance / spatial_k.
RetrievalPairs PairsFromRetrieval(const PairsFromRetrievalOptions& options,
                                  const PositionPriors* priors = nullptr);

// PairsFromRetrieval + WritePairs(output_path) (+ WritePairScores(scores_path) if non-empty).
PairsStats RunPairsFromRetrieval(const PairsFromRetrievalOptions& options,
                                 const std::string& output_path,
                                 const std::string& scores_path = "",
                                 const PositionPriors* priors = nullptr);

}  // namespace megaloc
