// `megaloc train`: the MegaLoc trainer (docs/cli.md, docs/training.md).

#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "megaloc/train/trainer.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "tools/commands/commands.h"
#include "megaloc/cli/option_manager.h"

namespace megaloc {
namespace {

std::string GiB(size_t bytes) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(2) << bytes / (1024.0 * 1024.0 * 1024.0) << " GiB";
  return out.str();
}

}  // namespace

int RunTrain(int argc, char** argv) {
  std::string config_path;
  std::vector<std::string> sets;
  bool print_config = false;
  int log_every = 1;
  // Convenience flags: each is the same as --set <name>=<value>.
  const std::vector<std::pair<std::string, std::string>> shortcuts = {
      {"output_path", "Folder for checkpoints/, train_log.jsonl, train_options.json."},
      {"init_weights", "DINOv2 weights (dinov2_vitb14_pretrain.pth) or a MegaLoc checkpoint; "
                       "empty = random init."},
      {"resume", "'latest' (newest checkpoint in output_path) or a checkpoint .safetensors."},
      {"gsv_root", "GSV-Cities root (Dataframes/, Images/); empty = source disabled."},
      {"msls_root", "MSLS root (train_val/); empty = disabled."},
      {"megascenes_root", "MegaScenes root (reconstruct/, images/); empty = disabled."},
      {"scannet_root", "ScanNet root (scans/ exported with SensReader); empty = disabled."},
      {"sfxl_root", "SF-XL root (raw/train/panoramas/); empty = disabled."},
      {"val_root", "Validation set (database/, queries/, @E@N@ names); empty = none."},
      {"num_iterations", "Iterations (default 40000)."},
      {"lr", "AdamW learning rate (default 6e-5)."},
      {"device", "auto | cpu | cuda | cuda:N (default auto)."},
      {"num_threads", "LibTorch intra-op threads (-1 = all cores)."},
      {"num_workers", "Image-loading threads (default 4)."},
      {"seed", "Random seed (default 0)."},
      {"checkpoint_every", "Checkpoint period in iterations (default 1000)."},
      {"validate_every", "Validation period in iterations (default 1000; 0 = start and end only)."},
  };
  std::vector<std::string> shortcut_values(shortcuts.size());

  po::options_description desc("Options");
  desc.add_options()
      ("config", po::value<std::string>(&config_path),
       "JSON file with training options (see docs/training.md); flags below override it.");
  for (size_t i = 0; i < shortcuts.size(); ++i) {
    desc.add_options()(shortcuts[i].first.c_str(), po::value<std::string>(&shortcut_values[i]),
                       shortcuts[i].second.c_str());
  }
  desc.add_options()
      ("set", po::value<std::vector<std::string>>(&sets)->composing(),
       "KEY=VALUE for any training option, dotted for nested ones (e.g. sampler.places_per_batch=32, "
       "clique.num_batches=4000, augment.enabled=false); repeatable, applied last.")
      ("log_every", po::value<int>(&log_every)->default_value(1),
       "Print every n-th iteration (the JSON log has every iteration).")
      ("print_config", po::bool_switch(&print_config),
       "Print the effective options as JSON and exit without training.");

  po::variables_map vm;
  const ParseResult parsed = ParseCommandLine(
      "train",
      "Trains MegaLoc (DINOv2 ViT-B/14 + SALAD + Linear) with one "
      "multi-similarity loss and one backward per sub-batch of each enabled "
      "source (GSV-Cities, MSLS/CliqueMining, MegaScenes, ScanNet, SF-XL "
      "lateral + frontal) and one AdamW step per iteration.",
      desc, argc, argv, &vm);
  if (parsed != ParseResult::kOk) return ParseExitCode(parsed);

  return RunCommandGuarded([&]() {
    TrainOptions options;
    if (!config_path.empty()) {
      if (!FileExists(config_path)) MEGALOC_THROW(IoError, config_path << ": configuration file does not exist");
      options = TrainOptions::FromJson(ReadFileToString(config_path), config_path);
    }
    for (size_t i = 0; i < shortcuts.size(); ++i) {
      if (vm.count(shortcuts[i].first)) options.Set(shortcuts[i].first, shortcut_values[i]);
    }
    for (const std::string& s : sets) {
      const size_t eq = s.find('=');
      if (eq == std::string::npos || eq == 0) {
        MEGALOC_THROW(InvalidArgument, "--set expects KEY=VALUE, got '" << s << "'");
      }
      options.Set(s.substr(0, eq), s.substr(eq + 1));
    }
    if (log_every < 1) MEGALOC_THROW(InvalidArgument, "--log_every must be >= 1");
    if (print_config) {
      std::cout << options.ToJson() << std::endl;
      return EXIT_SUCCESS;
    }
    if (!options.Check()) {
      MEGALOC_THROW(InvalidArgument, "invalid training options (see the message above): need "
                                     "--output_path and at least one data source root");
    }
    TrainCallbacks cb;
    cb.on_message = [](const std::string& m) { std::cout << m << std::endl; };
    cb.on_iteration = [&](const IterationLog& log) {
      if ((log.iteration + 1) % log_every != 0 && log.iteration + 1 != options.num_iterations) return;
      std::cout << "iter " << log.iteration + 1 << "/" << options.num_iterations << std::scientific
                << std::setprecision(2) << " lr " << log.lr << std::fixed << std::setprecision(4)
                << " loss " << log.total_loss << " [";
      for (size_t i = 0; i < log.sub_batches.size(); ++i) {
        std::cout << (i ? " " : "") << log.sub_batches[i].source << " " << log.sub_batches[i].loss;
      }
      std::cout << "]" << std::setprecision(1) << " " << log.images_per_second << " img/s, data wait "
                << std::setprecision(3) << log.data_wait_seconds << " s, grad norm " << log.grad_norm
                << ", peak RSS " << GiB(log.peak_memory_bytes) << std::endl;
    };
    cb.on_validation = [](const ValidationLog& v) {
      std::cout << "validation after " << v.iteration << " iterations:" << std::fixed << std::setprecision(2);
      for (size_t i = 0; i < v.ns.size() && i < v.recalls.size(); ++i) {
        std::cout << " R@" << v.ns[i] << " " << v.recalls[i];
      }
      std::cout << std::endl;
    };
    const TrainStats stats = RunTraining(options, cb);
    std::cout << "Device:           " << stats.device << "\n"
              << "Iterations:       " << stats.iterations_done << " (this run: " << stats.iterations.size()
              << ", started at " << stats.start_iteration << ")\n"
              << "Checkpoints:      " << stats.checkpoints.size();
    if (!stats.checkpoints.empty()) std::cout << " (last " << stats.checkpoints.back() << ")";
    std::cout << std::endl;
    return EXIT_SUCCESS;
  });
}

}  // namespace megaloc
