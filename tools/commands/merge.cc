// `megaloc merge`: combines descriptor files (e.g. shards of `megaloc extract --shard K/N`).
#include <cstdlib>
#include <iostream>

#include "megaloc/io/merge.h"
#include "megaloc/cli/option_manager.h"

namespace megaloc {

int RunMerge(int argc, char** argv) {
  std::vector<std::string> input_paths;
  std::string output_path;
  bool quiet = false;
  po::options_description desc("Options");
  desc.add_options()
      ("input_paths", po::value<std::vector<std::string>>(&input_paths)->multitoken()->required(),
       "Descriptor files to merge (hloc HDF5 layout).")
      ("output_path", po::value<std::string>(&output_path)->required(),
       "Merged file; created if missing, else its content is kept and checked like an input.")
      ("quiet", po::bool_switch(&quiet), "Print nothing on success.");
  po::variables_map vm;
  const ParseResult parsed = ParseCommandLine(
      "merge",
      "Merges descriptor files. The same image in several files must have the "
      "same descriptor; the files must share their provenance attributes.",
      desc, argc, argv, &vm);
  if (parsed != ParseResult::kOk) return ParseExitCode(parsed);
  return RunCommandGuarded([&]() -> int {
    const MergeStats stats = MergeDescriptorFiles(input_paths, output_path);
    if (!quiet) {
      std::cerr << "Merged " << stats.num_inputs << " files: " << stats.num_written
                << " images written";
      if (stats.num_identical_duplicates > 0) {
        std::cerr << ", " << stats.num_identical_duplicates << " identical duplicates";
      }
      if (stats.num_already_in_output > 0) {
        std::cerr << ", " << stats.num_already_in_output << " already in the output";
      }
      std::cerr << " -> " << output_path << std::endl;
    }
    return EXIT_SUCCESS;
  });
}

}  // namespace megaloc
