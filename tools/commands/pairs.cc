// `megaloc pairs`: hloc's pairs_from_retrieval as a command (docs/cli/pairs.md).

#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "megaloc/retrieval/pairs_from_retrieval.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/timer.h"
#include "tools/commands/commands.h"
#include "tools/option_manager.h"

namespace megaloc {
namespace {

std::string FormatBytes(double bytes) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(2) << bytes / (1024.0 * 1024.0 * 1024.0) << " GiB";
  return out.str();
}

}  // namespace

int RunPairs(int argc, char** argv) {
  PairsFromRetrievalOptions options;
  std::string output_path;
  std::string scores_path;
  std::string memory_limit = "1GiB";
  std::string backend = "exact";
  int num_matched = 0;

  po::options_description desc("Options");
  desc.add_options()
      ("descriptors", po::value<std::string>(&options.descriptors_path)->required(),
       "hloc global-descriptor HDF5 file with the queries (and the database unless "
       "--db_descriptors is given).")
      ("output_path", po::value<std::string>(&output_path)->required(),
       "Pairs file to write: '<query> <db>' per line (hloc / COLMAP matches_importer format).")
      ("num_matched", po::value<int>(&num_matched)->required(),
       "Database images retrieved per query (k, >= 1; clamped to the database size).")
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
      ("scores_path", po::value<std::string>(&scores_path),
       "Also write '<query> <db> <score>' lines to this file (the pairs file stays two columns).")
      ("memory_limit", po::value<std::string>(&memory_limit)->default_value("1GiB"),
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

  po::variables_map vm;
  const ParseResult parsed = ParseCommandLine(
      "pairs",
      "Image pairs from global-descriptor retrieval (hloc's "
      "pairs_from_retrieval): for every query, the --num_matched database "
      "images with the highest descriptor inner product, never itself.",
      desc, argc, argv, &vm);
  if (parsed != ParseResult::kOk) return ParseExitCode(parsed);

  return RunCommandGuarded([&]() {
    if (num_matched < 1) {
      MEGALOC_THROW(InvalidArgument, "--num_matched must be >= 1, got " << num_matched);
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
    const PairsStats stats = RunPairsFromRetrieval(options, output_path, scores_path);

    std::cout << "Queries:          " << stats.num_queries << "\n"
              << "Database images:  " << stats.num_db << " (descriptor dim " << stats.dim << ")\n"
              << "Pairs written:    " << stats.num_pairs << " -> " << output_path << "\n";
    if (!scores_path.empty()) std::cout << "Scores written:   " << scores_path << "\n";
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
      std::cout << " (blocks " << stats.search.query_block << " x " << stats.search.db_block
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
