// `megaloc colmap_matcher`: MegaLoc retrieval matching on a COLMAP database, a drop-in for
// `colmap vocab_tree_matcher` (docs/cli.md, docs/plugin.md).

#include "plugin/colmap_matcher_command.h"

#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <string>
#include <vector>

#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/string_utils.h"
#include "megaloc/colmap/matcher.h"
#include "megaloc/cli/option_manager.h"

namespace megaloc {
namespace {

void PrintNames(const std::string& title, const std::vector<std::string>& names, size_t max_names = 10) {
  if (names.empty()) return;
  std::cout << title << " (" << names.size() << "):";
  for (size_t i = 0; i < names.size() && i < max_names; ++i) std::cout << " " << names[i];
  if (names.size() > max_names) std::cout << " ... (" << names.size() - max_names << " more)";
  std::cout << "\n";
}

// The pair-graph options shared with `megaloc pairs` (pair_graph.h; docs/cli.md).
void AddPairGraphOptions(po::options_description& desc, ColmapMatcherOptions* options) {
  desc.add_options()
      ("sequence_pattern", po::value<std::string>(&options->sequence_pattern),
       "Regular expression defining the sequences for --sequential_overlap / --loop_closure (images "
       "with the same first capture group form one sequence). Default: one sequence per folder.")
      ("loop_closure", po::value<int>(&options->loop_closure)->default_value(0),
       "Retrieval skips images of the same sequence at most M frames apart (0 = off).")
      ("max_distance", po::value<double>(&options->max_distance)->default_value(-1.0),
       "Drop retrieved pairs whose pose priors (the database's pose_priors table, COLMAP >= 3.10) are "
       "more than D metres apart; < 0 = off.")
      ("spatial_k", po::value<int>(&options->spatial_k)->default_value(0),
       "Also pair every image with its K nearest images by pose prior (like spatial_matcher); 0 = off.")
      ("connect", po::bool_switch(&options->connect),
       "Add the fewest, most similar pairs that join all components of the pair graph.")
      ("cover_bridges", po::bool_switch(&options->cover_bridges),
       "Then add the most similar pairs that close a cycle over every bridge (a pair whose failure "
       "in geometric verification would split the graph), so that any one pair may fail; implies "
       "--connect.");
  AddQueryExpansionOptions(desc, &options->expansion, "as in megaloc pairs");
}

void PrintPairGraph(const ColmapMatcherStats& stats) {
  std::cout << "Pair graph:        " << stats.graph.num_pairs << " unique pairs (" << stats.num_spatial_pairs
            << " spatial, " << stats.num_connect_pairs << " connect, " << stats.num_bridge_pairs
            << " bridge), components "
            << stats.graph_before_connect.num_components << " -> " << stats.graph.num_components
            << std::fixed << std::setprecision(2) << ", mean degree " << stats.graph.mean_degree << "\n";
  std::cout.unsetf(std::ios::floatfield);
}

}  // namespace

int RunColmapMatcher(int argc, char** argv) {
  ColmapMatcherOptions options;
  ModelCommandOptions model;
  std::string extra_args;
  std::vector<int> resize;
  int resize_max = 1024;
  bool native = false;
  int as_half = 1;
  int use_gpu = -1;
  int skip_missing = 0;

  po::options_description desc("Options");
  desc.add_options()
      ("database_path", po::value<std::string>(&options.database_path)->required(),
       "COLMAP database with images and SIFT features (from `colmap feature_extractor`). Read "
       "here; COLMAP's matches_importer writes the matches.")
      ("image_path", po::value<std::string>(&options.image_path)->required(),
       "The --image_path given to `colmap feature_extractor` (database names are relative to it).")
      ("num_matched", po::value<int>(&options.num_matched)->required(),
       "Images retrieved per image (like VocabTreeMatching.num_images; clamped to #images - 1).")
      ("descriptors", po::value<std::string>(&options.descriptors_path),
       "Descriptor cache, an hloc global-descriptor HDF5 file: images already in it are not "
       "extracted again, new ones are appended. Default: <database>.megaloc.h5 next to the "
       "database.")
      ("sequential_overlap", po::value<int>(&options.sequential_overlap)->default_value(0),
       "Also pair each image with the next N images in sorted-name order (video), 0 = off.")
      ("min_score", po::value<float>(&options.min_score),
       "Drop retrieved images scoring below this (default: keep all; hloc uses 0).")
      ("pairs_path", po::value<std::string>(&options.pairs_path),
       "Pair list to write (one 'name1 name2' per line). Default: <database>.megaloc_pairs.txt.")
      ("dry_run", po::bool_switch(&options.dry_run),
       "Write the pair list only; do not run COLMAP.")
      ("colmap", po::value<std::string>(&options.colmap_path)->default_value("colmap"),
       "COLMAP executable.")
      ("use_gpu", po::value<int>(&use_gpu)->default_value(-1),
       "GPU matching in COLMAP: 0, 1, or -1 = 1 if the COLMAP build has CUDA, else 0.")
      ("colmap_args", po::value<std::string>(&extra_args),
       "Extra options appended to the matches_importer command line, whitespace-separated, e.g. "
       "\"--SiftMatching.max_num_matches 16384\".")
      ("log_path", po::value<std::string>(&options.log_path),
       "COLMAP's output. Default: <pairs_path>.matches_importer.log.")
      ("skip_missing_images", po::value<int>(&skip_missing)->default_value(0),
       "1 = images that are neither on disk nor in the cache get no pairs instead of an error.")
      ("as_half", po::value<int>(&as_half)->default_value(1),
       "Cache dtype: 1 = float16 (hloc's default), 0 = float32.")
      ("mapper", po::value<std::string>(&options.mapper)->default_value("none"),
       "After matching: none (matching only), incremental (`colmap mapper`) or global (`colmap "
       "global_mapper`, COLMAP >= 4.0 / GLOMAP). Models go to --output_path/0, /1, ...")
      ("output_path", po::value<std::string>(&options.output_path),
       "Sparse model folder for --mapper (created; must not hold a model yet).")
      ("glomap", po::value<std::string>(&options.glomap_path),
       "Standalone GLOMAP executable for --mapper global (any COLMAP version).");
  ModelCommandHelp model_help;
  model_help.weights_path =
      "MegaLoc checkpoint (model.safetensors or megaloc.torch), needed only when some image has no "
      "descriptor in the cache yet. Default: $MEGALOC_WEIGHTS, then ~/.cache/megaloc/model.safetensors.";
  model_help.num_threads = "Threads for retrieval, extraction and COLMAP matching (-1 = all cores).";
  AddModelCommandOptions(desc, &model, model_help);
  AddPreprocessingOptions(desc, &resize_max, &resize, &native);
  AddPairGraphOptions(desc, &options);

  po::variables_map vm;
  const ParseResult parsed = ParseCommandLine(
      "colmap_matcher",
      "MegaLoc retrieval matching on a COLMAP database (drop-in for "
      "`colmap vocab_tree_matcher`): extract global descriptors for the "
      "database images (cached), retrieve --num_matched images per image, "
      "write the pair list and run `colmap matches_importer --match_type "
      "pairs` on it.",
      desc, argc, argv, &vm);
  if (parsed != ParseResult::kOk) return ParseExitCode(parsed);

  return RunCommandGuarded([&]() {
    options.preprocessing = ResolvePreprocessingOptions(vm, resize_max, resize, native);
    if (as_half != 0 && as_half != 1) MEGALOC_THROW(InvalidArgument, "--as_half expects 1 or 0");
    options.as_half = as_half == 1;
    ApplyModelCommandOptions(model, &options.model, &options.batch_size, &options.num_workers);
    options.num_threads = options.model.num_threads;
    if (use_gpu < -1 || use_gpu > 1) MEGALOC_THROW(InvalidArgument, "--use_gpu must be -1, 0 or 1");
    if (skip_missing != 0 && skip_missing != 1) MEGALOC_THROW(InvalidArgument, "--skip_missing_images must be 0 or 1");
    if (options.num_matched < 1) MEGALOC_THROW(InvalidArgument, "--num_matched must be >= 1");
    if (options.sequential_overlap < 0) MEGALOC_THROW(InvalidArgument, "--sequential_overlap must be >= 0");
    ThrowIfInvalid(options.expansion);
    if (options.mapper != "none" && options.mapper != "incremental" && options.mapper != "global") {
      MEGALOC_THROW(InvalidArgument, "--mapper must be none, incremental or global (got '" << options.mapper << "')");
    }
    if (options.mapper != "none" && options.output_path.empty()) {
      MEGALOC_THROW(InvalidArgument, "--mapper " << options.mapper << " needs --output_path (the sparse model folder)");
    }
    if (options.mapper != "none" && options.dry_run) {
      MEGALOC_THROW(InvalidArgument, "--mapper runs after COLMAP's matching: it cannot be combined with --dry_run");
    }
    options.use_gpu = use_gpu;
    options.skip_missing_images = skip_missing == 1;
    options.model.num_threads = options.num_threads;
    options.colmap_extra_args = SplitWhitespace(extra_args);
    if (!options.Check()) MEGALOC_THROW(InvalidArgument, "invalid options (see the message above)");

    // Outputs: regular files (or new), never an input: megaloc never writes the database.
    const std::string pairs_path =
        options.pairs_path.empty() ? DefaultPairsPath(options.database_path) : options.pairs_path;
    CheckOutputFiles({pairs_path,
                      options.log_path.empty() ? pairs_path + ".matches_importer.log" : options.log_path,
                      options.descriptors_path.empty() ? DefaultDescriptorsPath(options.database_path)
                                                       : options.descriptors_path},
                     {options.database_path, options.model.weights_path});
    const ColmapMatcherStats stats = MatchColmapDatabase(options);

    std::cout << "Database:          " << options.database_path << " (" << stats.schema << ")\n"
              << "Images:            " << stats.num_database_images << " in the database, "
              << stats.num_images_on_disk << " image files under " << options.image_path << "\n";
    PrintNames("Database images missing on disk", stats.missing_on_disk);
    PrintNames("Image files not in the database (ignored)", stats.not_in_database);
    PrintNames("Skipped (no file, no cached descriptor)", stats.skipped_images);
    std::cout << "Descriptors:       " << stats.num_cached << " cached, " << stats.num_extracted << " extracted -> "
              << stats.descriptors_path << " (dim " << stats.descriptor_dim << ")\n"
              << "Pairs:             " << stats.num_pairs << " unique (" << stats.num_retrieval_pairs
              << " retrieved, " << stats.num_sequential_pairs << " sequential) for " << stats.num_matched_images
              << " images -> " << stats.pairs_path << "\n";
    PrintPairGraph(stats);
    if (stats.num_pairs == 0) {
      std::cout << "WARNING: no pairs (every retrieval score is below --min_score); COLMAP has nothing to match\n";
    }
    if (stats.colmap_ran) {
      std::cout << "COLMAP:            " << stats.colmap_version << "\n"
                << "Command:          ";
      for (const std::string& arg : stats.colmap_command) std::cout << " " << arg;
      std::cout << "\n"
                << "Matches:           " << stats.matches_before << " -> " << stats.matches_after
                << " rows; two_view_geometries " << stats.two_view_geometries_before << " -> "
                << stats.two_view_geometries_after << " rows (" << stats.verified_pairs_after
                << " with inliers)\n"
                << "COLMAP log:        " << stats.log_path << "\n";
      if (stats.num_unknown_image_errors > 0) {
        std::cout << "WARNING: COLMAP reported " << stats.num_unknown_image_errors
                  << " unknown image name(s) (see the log)\n";
      }
      if (stats.mapper_ran) {
        std::cout << "Mapper:           ";
        for (const std::string& arg : stats.mapper_command) std::cout << " " << arg;
        std::cout << "\n"
                  << "Models:            " << stats.registered_images_per_model.size() << " under "
                  << options.output_path << "\n";
        for (size_t i = 0; i < stats.registered_images_per_model.size(); ++i) {
          std::cout << "  model " << i << ": " << stats.registered_images_per_model[i] << " of "
                    << stats.num_matched_images << " images registered\n";
        }
        if (stats.registered_images_per_model.empty()) {
          std::cout << "WARNING: the mapper wrote no model (see " << stats.mapper_log_path << ")\n";
        }
        std::cout << "Mapper log:        " << stats.mapper_log_path << "\n";
      }
    } else {
      std::cout << "COLMAP:            not run (--dry_run). Run:\n  " << options.colmap_path
                << " matches_importer --database_path " << options.database_path << " --match_list_path "
                << stats.pairs_path << " --match_type pairs\n";
    }
    std::cout << std::fixed << std::setprecision(2) << "Time:              " << stats.total_seconds
              << " s (extraction " << stats.extraction_seconds << " s, retrieval " << stats.retrieval_seconds
              << " s, COLMAP " << stats.colmap_seconds << " s";
    if (stats.mapper_ran) std::cout << ", mapper " << stats.mapper_seconds << " s";
    std::cout << ")" << std::endl;
    return EXIT_SUCCESS;
  });
}

}  // namespace megaloc
