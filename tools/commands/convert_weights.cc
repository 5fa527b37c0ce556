// `megaloc convert_weights` and `megaloc model_info`.

#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>

#include "megaloc/model/megaloc.h"
#include "megaloc/util/file_utils.h"
#include "tools/commands/commands.h"
#include "megaloc/cli/option_manager.h"

namespace megaloc {
namespace {

std::string WithThousands(int64_t value) {
  std::string digits = std::to_string(value);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) digits.insert(i, ",");
  return digits;
}

void PrintInfo(const ModelInfo& info, const std::string& path) {
  std::cout << "weights:         " << path << "\n"
            << "format:          " << info.weights_format << "\n"
            << "sha256:          " << info.weights_sha256 << "\n"
            << "backbone:        DINOv2 ViT, embed_dim " << info.embed_dim << ", depth "
            << info.depth << ", heads " << info.num_heads << ", patch " << info.patch_size
            << ", pos_embed grid " << info.pos_embed_grid << "x" << info.pos_embed_grid << "\n"
            << "aggregator:      SALAD, " << info.num_clusters << " clusters x "
            << info.cluster_dim << " + token " << info.token_dim << " = " << info.salad_dim
            << "-d\n"
            << "descriptor_dim:  " << info.descriptor_dim << "\n"
            << "num_parameters:  " << WithThousands(info.num_parameters) << "\n"
            << "min_input:       more than " << info.num_clusters << " patches of "
            << info.patch_size << "x" << info.patch_size << " pixels" << std::endl;
}

}  // namespace

int RunConvertWeights(int argc, char** argv) {
  std::string input_path;
  std::string output_path;
  int num_heads = -1;
  po::options_description options("Options");
  options.add_options()
      ("input_path", po::value<std::string>(&input_path)->required(),
       "Checkpoint to convert: the v1 release megaloc.torch (torch.save zip) or a safetensors file "
       "(v2 model.safetensors, or keys with a `module.` prefix).")
      ("output_path", po::value<std::string>(&output_path)->required(),
       "Output safetensors file (float32, v2 key names), written atomically.")
      ("num_heads", po::value<int>(&num_heads)->default_value(-1),
       "Attention heads (-1: config.json beside the input, else embed_dim / 64).");
  po::variables_map vm;
  const ParseResult parsed = ParseCommandLine(
      "convert_weights",
      "Validates a MegaLoc checkpoint with the strict loader and writes it as "
      "safetensors with the v2 (HF model.safetensors) key names.",
      options, argc, argv, &vm);
  if (parsed != ParseResult::kOk) return ParseExitCode(parsed);
  return RunCommandGuarded([&] {
    // A regular file (or new), never the input; a symbolic link is written through.
    const std::string target = CheckOutputFile(output_path, {input_path});
    std::string input_format;
    const ModelInfo info =
        ConvertCheckpointToSafetensors(input_path, target, num_heads, &input_format);
    std::cout << "Converted " << input_path << " (" << input_format << ") -> " << output_path
              << "\n";
    PrintInfo(info, output_path);
    return EXIT_SUCCESS;
  });
}

int RunModelInfo(int argc, char** argv) {
  std::string weights_path;
  int num_heads = -1;
  po::options_description options("Options");
  options.add_options()
      ("weights_path", po::value<std::string>(&weights_path)->required(),
       "Checkpoint (safetensors or torch.save zip).")
      ("num_heads", po::value<int>(&num_heads)->default_value(-1),
       "Attention heads (-1: config.json beside the weights, else embed_dim / 64).");
  po::variables_map vm;
  const ParseResult parsed = ParseCommandLine(
      "model_info",
      "Loads a MegaLoc checkpoint with the strict loader and prints its "
      "architecture, parameter count, format and sha256.",
      options, argc, argv, &vm);
  if (parsed != ParseResult::kOk) return ParseExitCode(parsed);
  return RunCommandGuarded([&] {
    PrintInfo(ReadCheckpointInfo(weights_path, num_heads), weights_path);
    return EXIT_SUCCESS;
  });
}

}  // namespace megaloc
