#pragma once

// MegaLoc retrieval matching on a COLMAP database: a drop-in for `colmap vocab_tree_matcher`.
//
//   1. read the image names of the database (read-only; any schema 3.8 - 4.x),
//   2. check them against the image directory (missing on disk / on disk but not in the database),
//   3. extract MegaLoc descriptors only for images not already in the descriptor cache (an hloc
//      global-descriptor HDF5 file, by default next to the database),
//   4. retrieve the top --num_matched images per image (self excluded), optionally add sequential
//      neighbours in sorted-name order, de-duplicate unordered pairs, write the pair list,
//   5. run the real `colmap matches_importer --match_type pairs` on it (flag names of the installed
//      COLMAP version), which matches and verifies the pairs and writes `matches` and
//      `two_view_geometries` itself, transactionally. megaloc never writes to the database.
//
// The result feeds `colmap mapper`, `colmap global_mapper` (>= 4.0) and standalone `glomap mapper`
// unchanged (docs/plugin.md).

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "megaloc/colmap/pose_priors.h"
#include "megaloc/model/megaloc.h"
#include "megaloc/retrieval/pair_graph.h"
#include "megaloc/retrieval/pairs_io.h"
#include "megaloc/retrieval/position_priors.h"
#include "megaloc/colmap/executable.h"

namespace megaloc {

struct ColmapMatcherOptions {
  // COLMAP database (read-only here). Required.
  std::string database_path;
  // COLMAP's --image_path: database image names are relative to it. Required.
  std::string image_path;
  // Retrieved images per image (COLMAP's VocabTreeMatching.num_images, hloc's num_matched), >= 1;
  // clamped to (number of images - 1).
  int num_matched = 20;
  // Retrieval pairs with a score below this are dropped. Default: keep all (like the vocabulary
  // tree matcher, every image gets num_matched candidates); hloc's pairs_from_retrieval uses 0.
  float min_score = -std::numeric_limits<float>::infinity();
  // Also pair every image with the next N images of its sequence (0 = off), for video. Sequences:
  // one per folder, or by `sequence_pattern` (pair_graph.h SequenceOptions).
  int sequential_overlap = 0;
  std::string sequence_pattern;
  // Retrieval skips images of the same sequence at most this many frames apart (0 = off).
  int loop_closure = 0;
  // Position priors from the database's own pose_priors table (COLMAP >= 3.10): drop retrieval
  // pairs farther apart than max_distance metres (< 0 = off), add the spatial_k nearest (0 = off).
  double max_distance = -1.0;
  int spatial_k = 0;
  // αQE / DBA before retrieval (pair_graph.h).
  QueryExpansionOptions expansion;
  // Add the fewest, most similar pairs that join all components (pair_graph.h ConnectPairGraph).
  bool connect = false;
  // Then cover every bridge of the graph (pair_graph.h CoverBridges); implies connect.
  bool cover_bridges = false;
  // Descriptor cache (hloc global-descriptor HDF5). "" = DefaultDescriptorsPath(database_path).
  // Images already in it are not extracted again; new descriptors are appended.
  std::string descriptors_path;
  // Pair list written for COLMAP. "" = DefaultPairsPath(database_path).
  std::string pairs_path;
  // Model used when images need extraction (required then). See ModelOptions.
  ModelOptions model;
  PreprocessingOptions preprocessing;
  // Images per forward pass during extraction (same-size images are batched).
  int batch_size = 1;
  // Image decoding threads during extraction.
  int num_workers = 2;
  // Cache dtype for new descriptors: float16 (hloc's default) or float32.
  bool as_half = true;
  // Images in the database that are neither on disk nor in the cache: error (default) or skip them
  // (they get no pairs; reported in the stats).
  bool skip_missing_images = false;
  // Only write the pair list; do not run COLMAP.
  bool dry_run = false;
  // COLMAP binary (PATH lookup if it has no '/').
  std::string colmap_path = "colmap";
  // SiftMatching/FeatureMatching.use_gpu: -1 = 1 if the COLMAP build has CUDA, else 0.
  int use_gpu = -1;
  // SiftMatching/FeatureMatching.num_threads (-1 = COLMAP's default: all cores). Also the
  // retrieval threads.
  int num_threads = -1;
  // Extra arguments appended to the matches_importer command line (e.g.
  // {"--SiftMatching.max_num_matches", "16384"} or "--TwoViewGeometry.min_num_inliers" on >= 3.9).
  std::vector<std::string> colmap_extra_args;
  // COLMAP's output. "" = pairs_path + ".matches_importer.log".
  std::string log_path;
  // Working memory of the retrieval search, bytes.
  int64_t retrieval_memory_limit = int64_t{1} << 30;

  // Reconstruction after matching: "none" (default: matching only), "incremental" (`colmap mapper`)
  // or "global" (`colmap global_mapper`, COLMAP >= 4.0, or `glomap mapper` when glomap_path is set).
  std::string mapper = "none";
  // Where the mapper writes its models (DIR/0, DIR/1, ... as COLMAP does). Required with a mapper;
  // created if missing; must not hold models already.
  std::string output_path;
  // A standalone GLOMAP executable for --mapper global ("" = COLMAP's own global_mapper).
  std::string glomap_path;

  bool Check() const;
};

struct ColmapMatcherStats {
  std::string schema;                 // ColmapSchemaInfo::Description()
  int64_t num_database_images = 0;
  int64_t num_images_on_disk = 0;     // image files under image_path (ListImages)
  std::vector<std::string> missing_on_disk;     // database images without a file (may be cached)
  std::vector<std::string> not_in_database;     // image files that the database does not list
  std::vector<std::string> skipped_images;      // neither on disk nor cached (skip_missing_images)
  int64_t num_cached = 0;             // descriptors found in the cache
  int64_t num_extracted = 0;          // descriptors computed in this run
  int64_t num_matched_images = 0;     // images that took part in retrieval
  int descriptor_dim = 0;
  int64_t num_retrieval_pairs = 0;    // before de-duplication (query -> db, both orientations)
  int64_t num_sequential_pairs = 0;  // sequential neighbours (also those retrieval had)
  int64_t num_spatial_pairs = 0;     // spatial pairs new to the list
  int64_t num_connect_pairs = 0;     // pairs added by `connect`
  int64_t num_bridge_pairs = 0;      // pairs added by `cover_bridges`
  int64_t num_with_prior = 0;        // images with a pose prior (max_distance / spatial_k)
  PairGraphStats graph_before_connect;
  PairGraphStats graph;              // the written list
  int64_t num_pairs = 0;              // unique unordered pairs written
  std::string descriptors_path;
  std::string pairs_path;
  // COLMAP (not run with dry_run).
  bool colmap_ran = false;
  std::string colmap_version;
  std::vector<std::string> colmap_command;
  std::string log_path;
  int64_t num_unknown_image_errors = 0;  // "Image X does not exist" lines in COLMAP's log
  int64_t matches_before = 0, matches_after = 0;                          // rows of `matches`
  int64_t two_view_geometries_before = 0, two_view_geometries_after = 0;  // rows
  int64_t verified_pairs_after = 0;   // two_view_geometries rows with inliers
  // Mapper (options.mapper != "none").
  bool mapper_ran = false;
  std::vector<std::string> mapper_command;
  std::string mapper_log_path;
  std::vector<int64_t> registered_images_per_model;  // models DIR/0, DIR/1, ... in order
  double mapper_seconds = 0.0;
  double extraction_seconds = 0.0;
  double retrieval_seconds = 0.0;
  double colmap_seconds = 0.0;
  double total_seconds = 0.0;
};

// Computes descriptors of `names` (relative to `image_path`) and appends them to the hloc HDF5
// file `descriptors_path` (created if missing). Returns how many were written.
using ColmapDescriptorExtractor =
    std::function<int64_t(const ColmapMatcherOptions& options, const std::vector<std::string>& names,
                          const std::string& descriptors_path)>;

// <database without extension>.megaloc.h5, e.g. /data/database.db -> /data/database.megaloc.h5.
std::string DefaultDescriptorsPath(const std::string& database_path);
// <database without extension>.megaloc_pairs.txt.
std::string DefaultPairsPath(const std::string& database_path);

// Retrieval pairs of `names` with the descriptors of `descriptors_path`: top num_matched per image
// (self excluded, score >= min_score; loop closure, αQE/DBA, max_distance as set), then sequential
// neighbours, spatial neighbours and connecting pairs (BuildPairGraph, the same code as `megaloc
// pairs`), de-duplicated as COLMAP does (first orientation of every unordered pair). Position
// priors are read from options.database_path when max_distance or spatial_k is set. Counts go to
// stats (may be null).
std::vector<ImagePair> ColmapRetrievalPairs(const std::vector<std::string>& names,
                                            const std::string& descriptors_path,
                                            const ColmapMatcherOptions& options,
                                            ColmapMatcherStats* stats = nullptr);


// The matches_importer command line for a COLMAP version (argv, without running it).
std::vector<std::string> MatchesImporterCommand(const ColmapMatcherOptions& options,
                                                const std::string& pairs_path,
                                                bool use_gpu, bool feature_matching_prefix);

// The mapper command line (argv) for `options.mapper` and the COLMAP version. Throws
// InvalidArgument for "global" on COLMAP < 4.0 without a glomap_path.
std::vector<std::string> MapperCommand(const ColmapMatcherOptions& options, const ColmapVersion& version);

// Registered images of each model DIR/0, DIR/1, ... (consecutive numbered sub-folders with an
// images.bin), read from the binary models' headers. Throws FormatError on a truncated images.bin.
std::vector<int64_t> RegisteredImagesPerModel(const std::string& output_path);

// The whole pipeline (steps above), then the mapper when options.mapper is not "none". `extractor` defaults to the MegaLoc extraction library.
// Throws IoError/FormatError (database, images, cache, pair list), InvalidArgument (options,
// image names with whitespace, missing images without skip_missing_images, extraction needed but
// no weights), or Error when COLMAP fails (exit status + the tail of its log + the log path).
ColmapMatcherStats MatchColmapDatabase(const ColmapMatcherOptions& options,
                                       const ColmapDescriptorExtractor& extractor = {});

}  // namespace megaloc
