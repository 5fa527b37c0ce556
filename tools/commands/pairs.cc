// `megaloc pairs`: hloc's pairs_from_retrieval as a command (docs/cli.md, docs/formats.md#pair-lists).

#include <cmath>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "megaloc/io/descriptor_store.h"
#include "megaloc/retrieval/pairs_from_retrieval.h"
#include "megaloc/retrieval/position_priors.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/timer.h"
#include "tools/commands/commands.h"
#include "megaloc/colmap/pose_priors.h"
#include "megaloc/cli/option_manager.h"

namespace megaloc {
namespace {

std::string FormatBytes(double bytes) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(2) << bytes / (1024.0 * 1024.0 * 1024.0) << " GiB";
  return out.str();
}

// Position priors from the CSV file, the COLMAP database and EXIF (merged; later sources win).
PositionPriors LoadPositionPriors(const std::string& csv_path,
                                  const std::string& csv_coordinates,
                                  const std::string& database_path,
                                  const std::string& exif_image_path,
                                  const std::vector<std::string>& exif_names) {
  PositionPriors priors;
  if (!csv_path.empty()) {
    priors.Merge(ReadPositionPriorsCsv(csv_path, CsvCoordinatesFromString(csv_coordinates)));
    std::cout << "Position priors:  " << priors.Size() << " from " << csv_path << "\n";
  }
  if (!database_path.empty()) {
    int64_t rows = 0;
    const PositionPriors from_db = ReadColmapPositionPriors(database_path, &rows);
    priors.Merge(from_db);
    std::cout << "Position priors:  " << from_db.Size() << " from the pose_priors table of "
              << database_path << "\n";
  }
  if (!exif_image_path.empty()) {
    ExifGpsStats exif;
    priors.Merge(ReadExifPositionPriors(exif_image_path, exif_names, &exif));
    std::cout << "Position priors:  " << exif.num_with_gps << " of " << exif.num_images
              << " images have EXIF GPS under " << exif_image_path;
    if (!exif.unreadable.empty()) std::cout << " (" << exif.unreadable.size() << " unreadable)";
    std::cout << "\n";
  }
  return priors;
}

}  // namespace

int RunPairs(int argc, char** argv) {
  PairsFromRetrievalOptions options;
  std::string output_path;
  std::string scores_path;
  std::string memory_limit = "96MiB";
  std::string backend = "exact";
  int num_matched = 0;
  std::string priors_csv;
  std::string prior_coordinates = "auto";
  std::string priors_database;
  std::string exif_image_path;

  po::options_description desc("Options");
  desc.add_options()
      ("descriptors", po::value<std::string>(&options.descriptors_path)->required(),
       "hloc global-descriptor HDF5 file with the queries (and the database unless "
       "--db_descriptors is given).")
      ("output_path", po::value<std::string>(&output_path)->required(),
       "Pairs file to write: '<query> <db>' per line (hloc / COLMAP matches_importer format).")
      ("num_matched", po::value<int>(&num_matched)->required(),
       "Database images retrieved per query (k; clamped to the database size). 0 = no retrieval "
       "pairs (SfM mode only, with the sequential/spatial/connect options below).")
      ("query_prefix", po::value<std::vector<std::string>>(&options.query_prefixes)->multitoken(),
       "Only queries whose name starts with one of these prefixes (error if none matches).")
      ("query_list", po::value<std::string>(&options.query_list_path),
       "File listing the query names (first token per line, '#' comments). Ignored when "
       "--query_prefix is given (as in hloc).")
      ("db_prefix", po::value<std::vector<std::string>>(&options.db_prefixes)->multitoken(),
       "Only database images whose name starts with one of these prefixes.")
      ("db_list", po::value<std::string>(&options.db_list_path),
       "File listing the database names. Ignored when --db_prefix is given.")
      ("db_descriptors",
       po::value<std::vector<std::string>>(&options.db_descriptors_paths)->multitoken(),
       "Database HDF5 file(s) (shards). A name in several files is taken from the last one. "
       "Default: --descriptors.")
      ("min_score", po::value<float>(&options.search.min_score)->default_value(0.0f),
       "Drop retrieved images with a score below this (a score equal to it is kept).")
      ("unique", po::bool_switch(&options.unique),
       "Write each unordered pair once (first orientation), as COLMAP de-duplicates.")
      ("skip_invalid_names", po::bool_switch(&options.skip_invalid_names),
       "Leave out images whose name contains whitespace (pair lists cannot hold them) instead of "
       "failing with an error that lists them.")
      ("connect", po::bool_switch(&options.connect),
       "SfM: add the fewest, most similar pairs that join all components of the pair graph "
       "(maximum spanning forest over descriptor similarities): every image ends up in one "
       "component.")
      ("cover_bridges", po::bool_switch(&options.cover_bridges),
       "SfM: then add the most similar pairs that close a cycle over every bridge (a pair whose "
       "failure in geometric verification would split the graph, e.g. an image's only pair), so "
       "that any one pair may fail and the graph stays connected; implies --connect.")
      ("sequential_overlap", po::value<int>(&options.sequence.overlap)->default_value(0),
       "SfM: also pair every frame with the next N frames of its sequence (video), 0 = off.")
      ("sequence_pattern", po::value<std::string>(&options.sequence.pattern),
       "Regular expression (ECMAScript) defining the sequences: images with the same text for its "
       "first capture group (or whole match) form one sequence. Default: one sequence per folder.")
      ("loop_closure", po::value<int>(&options.sequence.loop_closure)->default_value(0),
       "SfM: retrieval skips images of the same sequence at most M frames apart (left to "
       "--sequential_overlap) and still retrieves across sequences and further frames; 0 = off.")
      ("position_priors", po::value<std::string>(&priors_csv),
       "CSV of position priors: 'name,x,y,z' (metres) or 'name,lat,lon,alt' (WGS84 degrees, metres), "
       "optional header line 'name,x,y,z' / 'name,lat,lon,alt'.")
      ("prior_coordinates", po::value<std::string>(&prior_coordinates)->default_value("auto"),
       "auto (from the CSV header, cartesian without one) | cartesian | wgs84.")
      ("pose_priors_database", po::value<std::string>(&priors_database),
       "COLMAP database whose pose_priors table (COLMAP >= 3.10) gives position priors (read-only).")
      ("exif_image_path", po::value<std::string>(&exif_image_path),
       "Image root: read GPS position priors from the EXIF of <root>/<name> (needs an Exiv2 build).")
      ("max_distance", po::value<double>(&options.max_distance)->default_value(-1.0),
       "SfM: drop retrieved pairs whose position priors are more than D metres apart (pairs with an "
       "image without a prior are kept); < 0 = off.")
      ("spatial_k", po::value<int>(&options.spatial_k)->default_value(0),
       "SfM: also pair every image with a prior with its K nearest images by position (within "
       "--max_distance if set), like COLMAP's spatial matcher; 0 = off.")
      ("scores_path", po::value<std::string>(&scores_path),
       "Also write '<query> <db> <score>' lines to this file (the pairs file stays two columns).")
      ("memory_limit", po::value<std::string>(&memory_limit)->default_value("96MiB"),
       "Budget of the search's working buffers, e.g. 512MiB, 2GB (the database is streamed from "
       "the HDF5 files in blocks that fit).")
      ("num_threads", po::value<int>(&options.search.num_threads)->default_value(-1),
       "Threads for the search (-1 = all cores).")
      ("backend", po::value<std::string>(&backend)->default_value("exact"),
       "exact | faiss_ivf | faiss_hnsw (approximate; need a FAISS build; the database is held "
       "in RAM).")
      ("ivf_num_lists", po::value<int>(&options.search.ivf_num_lists)->default_value(-1),
       "faiss_ivf: inverted lists (-1 = 4*sqrt(db size)).")
      ("ivf_num_probes", po::value<int>(&options.search.ivf_num_probes)->default_value(32),
       "faiss_ivf: lists visited per query.")
      ("hnsw_m", po::value<int>(&options.search.hnsw_m)->default_value(32),
       "faiss_hnsw: graph degree M.")
      ("hnsw_ef_search", po::value<int>(&options.search.hnsw_ef_search)->default_value(256),
       "faiss_hnsw: efSearch (raised to at least num_matched + 1).");
  AddQueryExpansionOptions(desc, &options.expansion, "SfM mode");

  po::variables_map vm;
  const ParseResult parsed = ParseCommandLine(
      "pairs",
      "Image pairs from global-descriptor retrieval (hloc's "
      "pairs_from_retrieval): for every query, the --num_matched database "
      "images with the highest descriptor inner product, never itself.",
      desc, argc, argv, &vm);
  if (parsed != ParseResult::kOk) return ParseExitCode(parsed);

  return RunCommandGuarded([&]() {
    if (num_matched < 0) {
      MEGALOC_THROW(InvalidArgument, "--num_matched must be >= 0, got " << num_matched);
    }
    if (options.sequence.overlap < 0) MEGALOC_THROW(InvalidArgument, "--sequential_overlap must be >= 0");
    if (options.sequence.loop_closure < 0) MEGALOC_THROW(InvalidArgument, "--loop_closure must be >= 0");
    if (options.spatial_k < 0) MEGALOC_THROW(InvalidArgument, "--spatial_k must be >= 0");
    ThrowIfInvalid(options.expansion);
    const bool have_priors = !priors_csv.empty() || !priors_database.empty() || !exif_image_path.empty();
    if ((options.max_distance >= 0.0 || options.spatial_k > 0) && !have_priors) {
      MEGALOC_THROW(InvalidArgument, "--max_distance and --spatial_k need position priors "
                                     "(--position_priors, --pose_priors_database or --exif_image_path)");
    }
    // Outputs: regular files (or new), never one of the inputs; checked before the search.
    std::vector<std::string> inputs = options.db_descriptors_paths;
    inputs.insert(inputs.end(), {options.descriptors_path, options.query_list_path, options.db_list_path});
    CheckOutputFiles({output_path, scores_path}, inputs);
    options.search.num_neighbors = num_matched;
    options.search.memory_limit = ParseByteSize(memory_limit);
    options.search.backend = SearchBackendFromString(backend);
    if (options.search.num_threads == 0 || options.search.num_threads < -1) {
      MEGALOC_THROW(InvalidArgument, "--num_threads must be -1 or >= 1");
    }
    if (options.search.backend != SearchBackend::kExact && !IsFaissAvailable()) {
      MEGALOC_THROW(InvalidArgument, "--backend " << backend
                                                  << " requires FAISS, but this megaloc was built "
                                                     "without it (use --backend exact)");
    }
    PositionPriors priors;
    if (have_priors) {
      std::vector<std::string> exif_names;
      if (!exif_image_path.empty()) {
        exif_names = DescriptorFile::Open(options.descriptors_path, DescriptorFile::Mode::kRead)->ListNames();
      }
      priors = LoadPositionPriors(priors_csv, prior_coordinates, priors_database, exif_image_path,
                                  exif_names);
    }
    const PairsStats stats =
        RunPairsFromRetrieval(options, output_path, scores_path, have_priors ? &priors : nullptr);

    std::cout << "Queries:          " << stats.num_queries << "\n"
              << "Database images:  " << stats.num_db << " (descriptor dim " << stats.dim << ")\n"
              << "Pairs written:    " << stats.num_pairs << " -> " << output_path << "\n";
    if (!scores_path.empty()) std::cout << "Scores written:   " << scores_path << "\n";
    const PairGraphResult& graph = stats.graph;
    std::cout << "Pair graph:       " << graph.after.num_pairs << " unique pairs ("
              << graph.num_retrieval << " retrieval, " << graph.num_sequential << " sequential, "
              << graph.num_spatial << " spatial, " << graph.num_connect << " connect"
              << (options.cover_bridges ? ", " + std::to_string(graph.num_bridge) + " bridge" : "")
              << "), components "
              << graph.before_connect.num_components << " -> " << graph.after.num_components
              << std::fixed << std::setprecision(2) << ", mean degree " << graph.after.mean_degree
              << ", " << graph.after.num_isolated << " isolated\n";
    std::cout.unsetf(std::ios::floatfield);
    if (options.connect || options.cover_bridges) {
      std::cout << "Connect:          " << graph.connect.num_added << " pair(s) added in "
                << graph.connect.num_rounds << " round(s), " << graph.connect.num_searches
                << " search(es) over " << graph.connect.num_searched_rows << " query rows, " << std::fixed
                << std::setprecision(2) << graph.connect.seconds << " s\n";
      std::cout.unsetf(std::ios::floatfield);
    }
    if (options.cover_bridges) {
      std::cout << "Bridges:          " << graph.bridges.bridges_before << " -> " << graph.bridges.bridges_after
                << ", " << graph.bridges.num_added << " pair(s) added in " << graph.bridges.num_rounds
                << " round(s) over " << graph.bridges.num_searched_rows << " query rows, " << std::fixed
                << std::setprecision(2) << graph.bridges.seconds << " s\n";
      std::cout.unsetf(std::ios::floatfield);
    }
    if (graph.num_dropped_by_loop_closure > 0 || graph.num_dropped_by_distance > 0) {
      std::cout << "Filtered:         " << graph.num_dropped_by_loop_closure
                << " retrieval results within --loop_closure frames skipped, "
                << graph.num_dropped_by_distance << " retrieved pairs beyond --max_distance dropped\n";
    }
    if (options.sequence.overlap > 0 || options.sequence.loop_closure > 0) {
      std::cout << "Sequences:        " << graph.sequences.num_sequences;
      if (graph.sequences.num_unassigned > 0) {
        std::cout << " (" << graph.sequences.num_unassigned << " image(s) match no --sequence_pattern)";
      }
      std::cout << "\n";
    }
    if (have_priors) {
      std::cout << "Images w/ prior:  " << graph.num_with_prior << " of " << stats.num_db << "\n";
    }
    if (stats.num_invalid_names > 0) {
      std::cout << "Skipped:          " << stats.num_invalid_names
                << " image(s) with whitespace in the name (--skip_invalid_names)\n";
    }
    if (stats.num_duplicate_db_names > 0) {
      std::cout << "Note: " << stats.num_duplicate_db_names
                << " database name(s) occur in several --db_descriptors files; the last file "
                   "was used\n";
    }
    if (stats.num_queries_without_pairs > 0) {
      std::cout << "Note: " << stats.num_queries_without_pairs
                << " quer(y/ies) got no pair (no database image with score >= --min_score)\n";
    }
    std::cout << std::fixed << std::setprecision(2) << "Time:             " << stats.total_seconds
              << " s (listing " << stats.list_seconds << " s, reading " << stats.search.read_seconds
              << " s, sgemm " << stats.search.gemm_seconds << " s, top-k "
              << stats.search.topk_seconds << " s";
    if (stats.search.build_seconds > 0) std::cout << ", index build " << stats.search.build_seconds << " s";
    std::cout << ")\n"
              << "Backend:          " << SearchBackendToString(options.search.backend);
    if (options.search.backend == SearchBackend::kExact) {
      std::cout << " (" << RetrievalGemmBackend() << ", "
                << (stats.search.gemm_seconds > 0 ? stats.search.gemm_flops / stats.search.gemm_seconds * 1e-9 : 0.0)
                << " GFLOP/s; blocks " << stats.search.query_block << " x " << stats.search.db_block
                << ", " << stats.search.num_db_passes << " database pass(es), buffers "
                << FormatBytes(static_cast<double>(stats.search.working_bytes)) << ")";
    }
    if (options.search.backend == SearchBackend::kExact) {
      std::cout << "\nDatabase:         "
                << (stats.database_cached
                        ? "cached in RAM as float16 (read in " + std::to_string(stats.cache_seconds) + " s)"
                        : std::string("streamed from the HDF5 file(s) in blocks"));
    }
    std::cout << "\nPeak memory:      " << FormatBytes(static_cast<double>(PeakResidentMemoryBytes()))
              << std::endl;
    return EXIT_SUCCESS;
  });
}

}  // namespace megaloc
