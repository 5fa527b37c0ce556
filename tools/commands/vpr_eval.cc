// `megaloc vpr_eval`: the visual place recognition protocol of Table 1 of the MegaLoc paper
// (VPR-methods-evaluation: recall@N, positives within 25 m) in one command (docs/cli.md).
#include <cstdio>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "megaloc/eval/vpr/vpr_evaluation.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/timer.h"
#include "megaloc/cli/option_manager.h"

namespace megaloc {
int RunVprEval(int argc, char** argv) {
  VprEvalOptions options;
  ModelCommandOptions model;
  std::string output_path;
  int resize_max = 0;
  std::vector<int> resize;
  bool native = false, quiet = false;
  po::options_description desc("Options");
  desc.add_options()
      ("dataset_path", po::value<std::string>(&options.dataset_path)->required(),
       "Dataset root with database/ and queries/ (any depth), image names "
       "@<utm_east>@<utm_north>@...@.jpg; optional database_images_paths.txt / "
       "queries_images_paths.txt beside the folders list the images instead.")
      ("output_path", po::value<std::string>(&output_path)->required(),
       "Results JSON (recall@N in percent, counts).")
      ("descriptors", po::value<std::string>(&options.descriptors_path),
       "Descriptor cache (hloc HDF5 layout, names database/... and queries/...): created, resumed, "
       "reused by later runs with the same settings. Without it a temporary file is used.")
      ("recall_values",
       po::value<std::vector<int>>(&options.recall.recall_values)->multitoken()->default_value(
           options.recall.recall_values, "1 5 10 20"),
       "The N of recall@N, increasing.")
      ("positive_dist_threshold",
       po::value<double>(&options.recall.positive_dist_threshold)->default_value(25.0),
       "Database images within this many metres (UTM) of a query are its positives.")
      ("quiet", po::bool_switch(&quiet), "Only the recall line on stdout (errors are still printed).");
  ModelCommandHelp model_help;
  model_help.weights_path =
      "MegaLoc checkpoint. Default: $MEGALOC_WEIGHTS, then ~/.cache/megaloc/model.safetensors. Not "
      "needed when --descriptors already holds every image.";
  AddModelCommandOptions(desc, &model, model_help);
  AddPreprocessingOptions(desc, &resize_max, &resize, &native, VprDefaultPreprocessing());
  po::variables_map vm;
  const ParseResult parsed = ParseCommandLine(
      "vpr_eval",
      "Visual place recognition evaluation as the MegaLoc authors' VPR-methods-evaluation: "
      "MegaLoc descriptors of database and query images, L2 ranking, recall@N with positives "
      "within --positive_dist_threshold metres (queries without positives count as misses).",
      desc, argc, argv, &vm);
  if (parsed != ParseResult::kOk) return ParseExitCode(parsed);
  return RunCommandGuarded([&]() -> int {
    options.preprocessing =
        ResolvePreprocessingOptions(vm, resize_max, resize, native, VprDefaultPreprocessing());
    const std::vector<int>& ns = options.recall.recall_values;
    for (size_t i = 0; i < ns.size(); ++i) {
      if (ns[i] < 1 || (i > 0 && ns[i] <= ns[i - 1])) {
        MEGALOC_THROW(InvalidArgument, "--recall_values must be increasing integers >= 1");
      }
    }
    if (ns.empty()) MEGALOC_THROW(InvalidArgument, "--recall_values needs at least one value");
    if (!(options.recall.positive_dist_threshold >= 0)) {
      MEGALOC_THROW(InvalidArgument, "--positive_dist_threshold must be >= 0");
    }
    ApplyModelCommandOptions(model, &options.model, &options.batch_size, &options.num_workers);
    options.weights_path = options.model.weights_path;
    // The cache is read and written: an output here, never the same file as the results.
    CheckOutputFiles({output_path, options.descriptors_path}, {options.weights_path});

    Timer last_print;
    if (!quiet) {
      options.message_callback = [](const std::string& text) {
        std::cerr << "[vpr_eval] " << text << std::endl;
      };
      options.progress_callback = [&](const ExtractionProgress& p) {
        if (p.num_done != p.num_total && last_print.ElapsedSeconds() < 10) return;
        last_print.Restart();
        std::cerr << "[vpr_eval] extracted " << p.num_done << "/" << p.num_total << " ("
                  << std::fixed << std::setprecision(2)
                  << (p.elapsed_seconds > 0 ? p.num_done / p.elapsed_seconds : 0.0) << " img/s)"
                  << std::defaultfloat << std::endl;
      };
      // The run then ends with one ERROR line naming the first failure.
      options.failure_callback = [](const ImageFailure& f) {
        std::cerr << "[vpr_eval] failed: " << f.reason << std::endl;
      };
    }
    if (options.weights_path.empty() && !quiet) {
      std::cerr << "[vpr_eval] no weights given: every descriptor must be in the cache" << std::endl;
    }

    const VprEvalReport report = RunVprEvaluation(options);
    WriteFileAtomically(output_path, VprEvalReportToJson(report));
    if (!quiet) {
      std::cerr << "[vpr_eval] " << report.recall.num_queries << " queries ("
                << report.recall.queries_without_positives << " without positives), "
                << report.recall.num_database << " database images; descriptors: "
                << report.num_extracted << " extracted, " << report.num_cached << " cached; "
                << std::fixed << std::setprecision(1) << report.total_seconds << " s -> "
                << output_path << std::endl;
    }
    std::cout << FormatVprRecalls(report.recall) << std::endl;
    return EXIT_SUCCESS;
  });
}

}  // namespace megaloc
