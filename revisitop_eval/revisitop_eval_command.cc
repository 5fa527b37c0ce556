// `megaloc revisitop_eval`: the Revisited Oxford/Paris protocol in one command (docs/cli.md, docs/evaluation.md).
#include "revisitop_eval/revisitop_eval_command.h"

#include <cstdlib>
#include <iostream>

#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/eval/revisitop/revisitop_eval.h"
#include "megaloc/cli/option_manager.h"

namespace megaloc {

int RunRevisitopEval(int argc, char** argv) {
  RevisitopEvalOptions options;
  ModelCommandOptions model;
  std::string ranks_path;
  std::string ranks_layout = "db_by_q";
  std::string output_path;
  int resize_max = -1;
  std::vector<int> resize;
  bool native = false;

  po::options_description desc("Options");
  desc.add_options()
      ("dataset", po::value<std::string>(&options.dataset),
       "roxford5k | rparis6k (required unless --ranks_path is given with --gnd_path)")
      ("data_root", po::value<std::string>(&options.data_root),
       "root of the official layout: <data_root>/datasets/<dataset>/{jpg/, gnd_<dataset>.pkl}")
      ("gnd_path", po::value<std::string>(&options.gnd_path),
       "ground truth (.pkl or .json); default <data_root>/datasets/<dataset>/gnd_<dataset>.pkl")
      ("image_dir", po::value<std::string>(&options.image_dir),
       "image directory; default <data_root>/datasets/<dataset>/jpg")
      ("resize_max", po::value<int>(&resize_max),
       "preprocessing: longest side <= N (hloc's megaloc preset is 1024)")
      ("resize", po::value<std::vector<int>>(&resize)->multitoken(),
       "preprocessing: fixed size W H (default 322 322, the paper's evaluation size)")
      ("native", po::bool_switch(&native), "preprocessing: native size (no resize)")
      ("r1m", po::value<std::string>(&options.r1m_dir),
       "R1M directory with revisitop1m.txt and jpg/ (+R1M protocol; needs --descriptors)")
      ("descriptors", po::value<std::string>(&options.descriptors_path),
       "descriptor cache, hloc HDF5 layout (created or reused)")
      ("write_ranks", po::value<std::string>(&options.ranks_output_path),
       "write the ranks (.npy, int64, official layout (n_db, n_q))")
      ("ranks_path", po::value<std::string>(&ranks_path),
       "model-free form: evaluate this ranks .npy against --gnd_path")
      ("ranks_layout", po::value<std::string>(&ranks_layout)->default_value("db_by_q"),
       "layout of --ranks_path: db_by_q (official (n_db, n_q)) or q_by_db ((n_q, n_db))")
      ("output_path", po::value<std::string>(&output_path), "results JSON (percent)")
      ("flush_every", po::value<int>(&options.flush_every)->default_value(64),
       "flush the descriptor cache every N new query descriptors");
  AddQueryExpansionOptions(desc, &options.expansion, "before ranking; not with --r1m");

  ModelCommandHelp model_help;
  model_help.weights_path =
      "MegaLoc checkpoint (safetensors or torch zip); needed unless --descriptors holds everything. "
      "Default: $MEGALOC_WEIGHTS, then ~/.cache/megaloc/model.safetensors.";
  AddModelCommandOptions(desc, &model, model_help);
  po::variables_map vm;
  const ParseResult parsed = ParseCommandLine(
      "revisitop_eval",
      "Revisited Oxford/Paris evaluation (E/M/H mAP and mP@1,5,10, official "
      "protocol), from images + MegaLoc weights or from a ranks .npy.",
      desc, argc, argv, &vm);
  if (parsed != ParseResult::kOk) return ParseExitCode(parsed);

  return RunCommandGuarded([&]() -> int {
    ApplyModelCommandOptions(model, &options.model, &options.batch_size, &options.num_workers);
    options.weights_path = options.model.weights_path;
    // Outputs: regular files (or new), never an input; symbolic links are written through.
    CheckOutputFiles({output_path, options.ranks_output_path, options.descriptors_path},
                     {options.gnd_path, ranks_path, options.weights_path});
    if (!options.ranks_output_path.empty()) {
      options.ranks_output_path = CheckOutputFile(options.ranks_output_path);
    }
    RevisitopReport report;
    if (!ranks_path.empty()) {
      if (options.expansion.Enabled()) {
        MEGALOC_THROW(InvalidArgument, "--qe_num/--dba_num need descriptors: not with --ranks_path");
      }
      if (ranks_layout != "db_by_q" && ranks_layout != "q_by_db") {
        MEGALOC_THROW(InvalidArgument, "--ranks_layout must be db_by_q or q_by_db, got '"
                                           << ranks_layout << "'");
      }
      std::string gnd = options.gnd_path;
      if (gnd.empty()) {
        if (options.dataset.empty() || options.data_root.empty()) {
          MEGALOC_THROW(InvalidArgument,
                        "--ranks_path needs --gnd_path (or --dataset and --data_root)");
        }
        gnd = JoinPaths(JoinPaths(JoinPaths(options.data_root, "datasets"), options.dataset),
                        "gnd_" + options.dataset + ".pkl");
      }
      report = EvaluateRevisitopRanksFile(gnd, ranks_path, ranks_layout == "db_by_q");
      if (!options.dataset.empty()) report.dataset = options.dataset;
    } else {
      const int presets = (resize_max > 0 ? 1 : 0) + (!resize.empty() ? 1 : 0) + (native ? 1 : 0);
      if (presets > 1) {
        MEGALOC_THROW(InvalidArgument, "give at most one of --resize_max, --resize, --native");
      }
      if (vm.count("resize_max")) {
        if (resize_max <= 0) MEGALOC_THROW(InvalidArgument, "--resize_max must be > 0");
        options.preprocessing.mode = ResizeMode::kResizeMax;
        options.preprocessing.resize_max = resize_max;
      } else if (!resize.empty()) {
        if (resize.size() != 2 || resize[0] <= 0 || resize[1] <= 0) {
          MEGALOC_THROW(InvalidArgument, "--resize takes two positive integers W H");
        }
        options.preprocessing.mode = ResizeMode::kFixed;
        options.preprocessing.width = resize[0];
        options.preprocessing.height = resize[1];
      } else if (native) {
        options.preprocessing.mode = ResizeMode::kNative;
      }
      if (options.dataset.empty()) MEGALOC_THROW(InvalidArgument, "--dataset is required");
      if (options.dataset != "roxford5k" && options.dataset != "rparis6k") {
        MEGALOC_THROW(InvalidArgument,
                      "--dataset must be roxford5k or rparis6k, got '" << options.dataset << "'");
      }
      if (options.data_root.empty() && (options.gnd_path.empty() || options.image_dir.empty())) {
        MEGALOC_THROW(InvalidArgument, "--data_root is required (or both --gnd_path and --image_dir)");
      }
      if (options.weights_path.empty() && options.descriptors_path.empty()) {
        MEGALOC_THROW(InvalidArgument, "--weights_path is required (or a complete --descriptors cache)");
      }
      ThrowIfInvalid(options.expansion);
      if (options.expansion.Enabled() && !options.r1m_dir.empty()) {
        MEGALOC_THROW(InvalidArgument, "--qe_num/--dba_num hold the database in memory: not available with --r1m");
      }
      if (!options.r1m_dir.empty() && options.descriptors_path.empty()) {
        MEGALOC_THROW(InvalidArgument, "--r1m needs --descriptors (1M descriptors do not fit in memory)");
      }
      options.progress = [](const std::string& message) {
        std::cerr << "[revisitop_eval] " << message << std::endl;
      };
      report = RunRevisitopEvaluation(options);
    }
    std::cout << FormatRevisitopReport(report) << std::flush;
    if (!output_path.empty()) {
      WriteFileAtomically(output_path, RevisitopReportToJson(report).dump(1) + "\n");
      std::cout << "Wrote " << output_path << std::endl;
    }
    return EXIT_SUCCESS;
  });
}

}  // namespace megaloc
