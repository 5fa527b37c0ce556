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

#include "lamar_eval/evaluation.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "tools/option_manager.h"

namespace megaloc {
namespace {

const char kUsage[] =
    "Usage: megaloc lamar_eval <step> [options]\n\n"
    "LaMAR visual localization with MegaLoc retrieval (docs/lamar.md). Steps:\n"
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
       "Write the JSON report here (default: print it only).")
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
  if (parsed == ParseResult::kHelp) return EXIT_SUCCESS;
  if (parsed == ParseResult::kError) return EXIT_FAILURE;
  return RunCommandGuarded([&]() {
    options.mode = lamar::ParseEvaluationMode(mode);
    if (!options.Check()) {
      MEGALOC_THROW(InvalidArgument, "invalid options for lamar_eval evaluate");
    }
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

}  // namespace

int RunLamarEval(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0 ||
      std::strcmp(argv[1], "help") == 0) {
    std::cout << kUsage;
    return argc < 2 ? EXIT_FAILURE : EXIT_SUCCESS;
  }
  const std::string step = argv[1];
  if (step == "evaluate") return RunEvaluateStep(argc - 1, argv + 1);
  std::cerr << "ERROR: megaloc lamar_eval: unknown step '" << step
            << "' (expected extract, pairs, localize or evaluate)" << std::endl;
  return EXIT_FAILURE;
}

}  // namespace megaloc
