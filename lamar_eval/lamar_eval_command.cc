// `megaloc lamar_eval <step>`: LaMAR with MegaLoc retrieval. Steps: extract, pairs, localize,
// evaluate. Each step parses its options here and calls a typed library function.
#include "lamar_eval/lamar_eval_command.h"

#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "megaloc/eval/lamar/evaluation.h"
#include "megaloc/eval/lamar/extract.h"
#include "megaloc/eval/lamar/localize.h"
#include "megaloc/eval/lamar/pairs.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/cli/option_manager.h"

namespace megaloc {
namespace {

const char kUsage[] =
    "Usage: megaloc lamar_eval <step> [options]\n\n"
    "LaMAR visual localization with MegaLoc retrieval (docs/evaluation.md). Steps:\n"
    "  extract    MegaLoc descriptors of sessions -> <outputs>/<SCENE>/extraction/<session>/megaloc/\n"
    "             (features.h5 + configuration.json, read as-is by the official pipeline)\n"
    "  pairs      query->map and map->map pairs in LaMAR's pair_selection layout\n"
    "  localize   native C++ localization with COLMAP 3.8 (a different protocol from the paper's)\n"
    "  evaluate   recall at (1 deg, 10 cm) and (5 deg, 1 m), exactly as the official evaluation\n\n"
    "Run `megaloc lamar_eval <step> --help` for the options of a step.\n";

int RunEvaluateStep(int argc, char** argv) {
  lamar::EvaluationOptions options;
  std::string output_path;
  std::string mode = "auto";
  po::options_description description("Options");
  description.add_options()
      ("session_path", po::value<std::string>(&options.session_path)->required(),
       "Query session directory (<SCENE>/sessions/<query_id>) with sensors.txt, queries.txt, "
       "rigs.txt (HoloLens) and proc/alignment_trajectories.txt (ground truth).")
      ("poses_path", po::value<std::string>(&options.poses_path)->required(),
       "Estimated poses (LaMAR poses.txt: phone = camera -> world per (ts, camera); HoloLens = "
       "rig -> world per (ts, rig)).")
      ("output_path", po::value<std::string>(&output_path)->default_value(""),
       "Write the JSON report here (default: none; the recalls are printed either way).")
      ("ground_truth_path", po::value<std::string>(&options.ground_truth_path)->default_value(""),
       "Ground-truth trajectories (default: <session_path>/proc/alignment_trajectories.txt).")
      ("queries_path", po::value<std::string>(&options.queries_path)->default_value(""),
       "Query list (default: <session_path>/queries.txt).")
      ("mode", po::value<std::string>(&mode)->default_value("auto"),
       "auto | single_image | rig. auto: rig if the query ids are rigs of rigs.txt.");
  po::variables_map vm;
  const ParseResult parsed = ParseCommandLine(
      "lamar_eval evaluate",
      "Localization recall of an estimated poses.txt against the session's ground truth, computed "
      "as lamar.tasks.pose_estimation evaluate (HoloLens rigs scored per camera). Recalls in "
      "percent.",
      description, argc, argv, &vm);
  if (parsed != ParseResult::kOk) return ParseExitCode(parsed);
  return RunCommandGuarded([&]() {
    options.mode = lamar::ParseEvaluationMode(mode);
    if (!options.Check()) {
      MEGALOC_THROW(InvalidArgument, "invalid options for lamar_eval evaluate");
    }
    // The report: a regular file (or new), never one of the inputs.
    const std::string gt = options.ground_truth_path.empty()
                               ? JoinPaths(JoinPaths(options.session_path, "proc"), "alignment_trajectories.txt")
                               : options.ground_truth_path;
    const std::string queries =
        options.queries_path.empty() ? JoinPaths(options.session_path, "queries.txt") : options.queries_path;
    CheckOutputFiles({output_path}, {options.poses_path, gt, queries, JoinPaths(options.session_path, "sensors.txt"),
                                     JoinPaths(options.session_path, "rigs.txt")});
    const lamar::EvaluationResult result = lamar::EvaluatePoses(options);
    const nlohmann::json json = lamar::EvaluationResultToJson(result);
    if (!output_path.empty()) {
      WriteFileAtomically(output_path, json.dump(1) + "\n");
    }
    std::cout << "LaMAR evaluation (" << lamar::EvaluationModeName(result.mode)
              << "): " << result.num_eval_keys << " evaluated keys (" << result.num_query_keys
              << " queries), " << result.num_missing << " without estimate\n";
    for (size_t i = 0; i < result.thresholds.size(); ++i) {
      std::cout << "  recall (" << result.thresholds[i].first << " deg, "
                << result.thresholds[i].second << " m): " << std::fixed << std::setprecision(2)
                << result.recall[i] * 100.0 << " %\n"
                << std::defaultfloat;
    }
    if (!output_path.empty()) std::cout << "Wrote " << output_path << "\n";
    std::cout << std::flush;
    return EXIT_SUCCESS;
  });
}


std::vector<std::string> SplitCommaList(const std::string& text) {
  std::vector<std::string> items;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    if (!item.empty()) items.push_back(item);
  }
  return items;
}

int RunExtractStep(int argc, char** argv) {
  lamar::LamarExtractOptions options;
  ModelCommandOptions model;
  std::string sessions;
  po::options_description description("Options");
  description.add_options()
      ("capture_path", po::value<std::string>(&options.capture_path)->required(),
       "Root holding <SCENE>/sessions/<session_id>/.")
      ("scene", po::value<std::string>(&options.scene)->required(), "Scene (CAB, HGE, LIN, ...).")
      ("sessions", po::value<std::string>(&sessions)->required(),
       "Comma-separated session ids, e.g. map,query_val_phone,query_val_hololens.")
      ("outputs", po::value<std::string>(&options.outputs)->required(),
       "Output root: writes <outputs>/<SCENE>/extraction/<session>/<method_name>/.")
      ("method_name", po::value<std::string>(&options.method.name)->default_value("megaloc"),
       "Retrieval method name (directory name and \"name\" of configuration.json).")
      ("resize_max", po::value<int>(&options.method.resize_max)->default_value(1024),
       "Longest image side before the network (hloc preprocessing resize_max; recorded in "
       "configuration.json).")
      ("all_images", po::bool_switch(&options.all_images),
       "For sessions with queries.txt, extract every images.txt image, not only the queries.")
      ("overwrite", po::bool_switch(&options.overwrite), "Re-extract images already present.");
  AddModelCommandOptions(description, &model);
  po::variables_map vm;
  const ParseResult parsed = ParseCommandLine(
      "lamar_eval extract",
      "MegaLoc global descriptors of LaMAR sessions in the layout the official pipeline reads "
      "(features.h5: names <session>/raw_data/<path>, float16 unit descriptors; configuration.json "
      "= the method dict). Map sessions: every image; query sessions: the queries.txt images, rigs "
      "expanded to every camera.",
      description, argc, argv, &vm);
  if (parsed != ParseResult::kOk) return ParseExitCode(parsed);
  return RunCommandGuarded([&]() {
    options.sessions = SplitCommaList(sessions);
    ApplyModelCommandOptions(model, &options.model, &options.batch_size, &options.num_workers);
    const std::vector<lamar::LamarSessionExtractStats> all = lamar::RunLamarExtraction(options);
    size_t num_failed = 0;
    for (const auto& stats : all) {
      std::cout << stats.session_id << ": " << stats.num_images << " images, "
                << stats.num_extracted << " extracted, " << stats.num_skipped_existing
                << " already present, " << stats.num_failed << " failed -> "
                << stats.features_path << "\n";
      for (const std::string& failure : stats.failures) std::cerr << "ERROR: " << failure << "\n";
      num_failed += stats.num_failed;
    }
    std::cout << std::flush;
    if (num_failed > 0) {
      std::cerr << "ERROR: " << num_failed
                << " images failed; their sessions have no configuration.json (rerun after "
                   "fixing them: finished images are kept)"
                << std::endl;
      return EXIT_FAILURE;
    }
    return EXIT_SUCCESS;
  });
}

int RunPairsStep(int argc, char** argv) {
  lamar::LamarPairsOptions options;
  bool skip_mapping = false;
  po::options_description description("Options");
  description.add_options()
      ("capture_path", po::value<std::string>(&options.capture_path)->required(),
       "Root holding <SCENE>/sessions/<session_id>/.")
      ("scene", po::value<std::string>(&options.scene)->required(), "Scene (CAB, HGE, LIN, ...).")
      ("outputs", po::value<std::string>(&options.outputs)->required(),
       "Output root: reads <outputs>/<SCENE>/extraction/, writes <outputs>/<SCENE>/pair_selection/.")
      ("ref_id", po::value<std::string>(&options.ref_id)->default_value("map"), "Map session.")
      ("query_id", po::value<std::string>(&options.query_id)->default_value(""),
       "Query session (e.g. query_val_hololens); empty = mapping pairs only.")
      ("method_name", po::value<std::string>(&options.method.name)->default_value("megaloc"),
       "Retrieval method name (extraction/<session>/<name>/, pair config names).")
      ("resize_max", po::value<int>(&options.method.resize_max)->default_value(1024),
       "resize_max recorded in the method dict (must match the extraction).")
      ("num_pairs_loc", po::value<int>(&options.num_pairs_loc)->default_value(10),
       "Query->map pairs per query image.")
      ("num_pairs_map", po::value<int>(&options.num_pairs_map)->default_value(10),
       "Map->map pairs per map image (after the frustum and pose filters).")
      ("skip_mapping_pairs", po::bool_switch(&skip_mapping),
       "Do not compute the map->map pairs.")
      ("proxy_top_k", po::value<int>(&options.proxy_top_k)->default_value(10),
       "Retrieval proxy: top-k considered.")
      ("proxy_max_rotation", po::value<double>(&options.proxy_max_rotation_deg)->default_value(45.0),
       "Retrieval proxy: rotation threshold (degrees).")
      ("proxy_max_translation",
       po::value<double>(&options.proxy_max_translation_m)->default_value(5.0),
       "Retrieval proxy: camera-centre distance threshold (metres).");
  po::variables_map vm;
  const ParseResult parsed = ParseCommandLine(
      "lamar_eval pairs",
      "Map->map pairs (frustum + pose filters, 250 nearest, top-k) and query->map pairs (top-k per "
      "query image, rigs expanded) from MegaLoc descriptors, in LaMAR's pair_selection layout.",
      description, argc, argv, &vm);
  if (parsed != ParseResult::kOk) return ParseExitCode(parsed);
  return RunCommandGuarded([&]() {
    options.mapping_pairs = !skip_mapping;
    const lamar::LamarPairsStats stats = lamar::RunLamarPairs(options);
    if (!stats.mapping_dir.empty()) {
      std::cout << "Mapping pairs: " << stats.mapping.num_pairs << " pairs for "
                << stats.mapping.num_query_images << " images (" << stats.mapping.num_candidates
                << " candidates after filters) -> " << stats.mapping_dir << "\n";
    }
    if (!stats.localization_dir.empty()) {
      std::cout << "Localization pairs: " << stats.localization.num_pairs << " pairs for "
                << stats.localization.num_query_images << " query images -> "
                << stats.localization_dir << "\n";
    }
    if (stats.has_proxy) {
      std::cout << "Retrieval proxy (not a benchmark metric): " << std::fixed
                << std::setprecision(2) << stats.proxy.Percent() << std::defaultfloat << " % of "
                << stats.proxy.num_query_images << " query images have a map image within "
                << stats.proxy.max_rotation_deg << " deg / " << stats.proxy.max_translation_m
                << " m in their top " << stats.proxy.top_k << "\n";
    }
    std::cout << std::flush;
    return EXIT_SUCCESS;
  });
}

int RunLocalizeStep(int argc, char** argv) {
  lamar::LocalizeOptions options;
  po::options_description description("Options");
  description.add_options()
      ("capture_path", po::value<std::string>(&options.capture_path)->required(),
       "Root holding <SCENE>/sessions/<session_id>/.")
      ("scene", po::value<std::string>(&options.scene)->required(), "Scene (CAB, HGE, LIN, ...).")
      ("outputs", po::value<std::string>(&options.outputs)->required(),
       "Output root (reads pair_selection/, writes native_localization/).")
      ("ref_id", po::value<std::string>(&options.ref_id)->default_value("map"), "Map session.")
      ("query_id", po::value<std::string>(&options.query_id)->required(), "Query session.")
      ("method_name", po::value<std::string>(&options.method.name)->default_value("megaloc"),
       "Retrieval method name of the pairs.")
      ("num_pairs_loc", po::value<int>(&options.num_pairs_loc)->default_value(10),
       "Names the query->map pair directory (<method>-<k>).")
      ("num_pairs_map", po::value<int>(&options.num_pairs_map)->default_value(10),
       "Names the map->map pair directory (<method>-<k>_frustum_pose-120-20-250).")
      ("colmap_path", po::value<std::string>(&options.colmap_path)->default_value(""),
       "COLMAP executable (default: the one found at build time).")
      ("num_threads", po::value<int>(&options.num_threads)->default_value(-1),
       "COLMAP SIFT threads (-1 = all cores).")
      ("max_image_size", po::value<int>(&options.max_image_size)->default_value(3200),
       "SiftExtraction.max_image_size.")
      ("max_num_features", po::value<int>(&options.max_num_features)->default_value(8192),
       "SiftExtraction.max_num_features.")
      ("min_num_inliers", po::value<int>(&options.min_num_inliers)->default_value(30),
       "Mapper.abs_pose_min_num_inliers for the query registration.")
      ("overwrite", po::bool_switch(&options.overwrite),
       "Delete the work directory (shared by all query sessions, including the map stages) and "
       "recompute everything.");
  po::variables_map vm;
  const ParseResult parsed = ParseCommandLine(
      "lamar_eval localize",
      "Native localization with COLMAP 3.8 (SIFT, map triangulated with its known poses, queries "
      "registered with image_registrator) on the pairs of `lamar_eval pairs`. A DIFFERENT "
      "PROTOCOL from the paper's (SuperPoint+SuperGlue, pycolmap): numbers are not comparable.",
      description, argc, argv, &vm);
  if (parsed != ParseResult::kOk) return ParseExitCode(parsed);
  return RunCommandGuarded([&]() {
    const lamar::LocalizeStats stats = lamar::RunLocalization(options);
    std::cout << "Localized " << stats.num_localized_keys << " of " << stats.num_query_keys
              << " queries (" << stats.num_registered_images << " of " << stats.num_query_images
              << " query images registered; map: " << stats.num_map_images << " images, "
              << stats.num_points3d << " points) in " << std::fixed << std::setprecision(1)
              << stats.seconds << std::defaultfloat << " s\nWrote " << stats.poses_path
              << std::endl;
    return EXIT_SUCCESS;
  });
}

}  // namespace

int RunLamarEval(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0 ||
      std::strcmp(argv[1], "help") == 0) {
    std::cout << kUsage;
    return argc < 2 ? EXIT_FAILURE : EXIT_SUCCESS;
  }
  const std::string step = argv[1];
  if (step == "extract") return RunExtractStep(argc - 1, argv + 1);
  if (step == "evaluate") return RunEvaluateStep(argc - 1, argv + 1);
  if (step == "pairs") return RunPairsStep(argc - 1, argv + 1);
  if (step == "localize") return RunLocalizeStep(argc - 1, argv + 1);
  std::cerr << "ERROR: megaloc lamar_eval: unknown step '" << step
            << "' (expected extract, pairs, localize or evaluate)" << std::endl;
  return EXIT_FAILURE;
}

}  // namespace megaloc
