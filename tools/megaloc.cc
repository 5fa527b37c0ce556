// `megaloc`: one executable, one table of subcommands (in the style of COLMAP's `colmap` binary).

#include <malloc.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <string>
#include <vector>

#include "lamar_eval/lamar_eval_command.h"
#include "megaloc/io/descriptor_store.h"
#include "plugin/colmap_matcher_command.h"
#include "revisitop_eval/revisitop_eval_command.h"
#include "tools/commands/commands.h"

namespace {

struct Command {
  const char* name;
  int (*run)(int argc, char** argv);
  const char* summary;
};

const std::vector<Command>& Commands() {
  static const std::vector<Command> commands = {
      {"extract", megaloc::RunExtract,
       "Global MegaLoc descriptors of an image collection -> HDF5 (hloc layout)"},
      {"merge", megaloc::RunMerge, "Merge descriptor files (e.g. the shards of one collection)"},
      {"pairs", megaloc::RunPairs,
       "Top-k retrieval pair list (hloc pairs_from_retrieval semantics, COLMAP format)"},
      {"colmap_matcher", megaloc::RunColmapMatcher,
       "Retrieval matching on a COLMAP database (drop-in for vocab_tree_matcher)"},
      {"revisitop_eval", megaloc::RunRevisitopEval,
       "Revisited Oxford/Paris evaluation (mAP and mP@k, Easy/Medium/Hard)"},
      {"vpr_eval", megaloc::RunVprEval,
       "Visual place recognition recall@N (the paper's Table 1 protocol, positives within 25 m)"},
      {"lamar_eval", megaloc::RunLamarEval,
       "LaMAR localization with MegaLoc retrieval: extract, pairs, localize, evaluate"},
      {"train", megaloc::RunTrain, "Train MegaLoc (multi-dataset, multi-similarity loss)"},
      {"convert_weights", megaloc::RunConvertWeights,
       "Convert a .torch or .safetensors checkpoint to safetensors"},
      {"model_info", megaloc::RunModelInfo, "Print the architecture and digest of a checkpoint"},
  };
  return commands;
}

void PrintHelp() {
  std::cout << "megaloc " << MEGALOC_VERSION_STRING
            << " -- MegaLoc global descriptors for retrieval, SfM and localization\n"
            << "(Berton & Masone, \"MegaLoc: One Retrieval to Place Them All\", CVPRW 2025)\n\n"
            << "Usage:\n"
            << "  megaloc <command> [options]\n"
            << "  megaloc <command> --help\n"
            << "  megaloc help | --help | -h\n"
            << "  megaloc version | --version\n\n"
            << "Commands:\n";
  for (const Command& command : Commands()) {
    std::cout << "  " << std::left << std::setw(18) << command.name << command.summary << "\n";
  }
  std::cout << std::flush;
}

// Big model temporaries are reallocated every forward; glibc would serve them with fresh mmaps and
// return them to the kernel, and first-touch page faults then dominate (docs/performance.md).
void TuneMalloc() {
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 64 << 20);
}

// libgomp (the OpenMP runtime of LibTorch and oneDNN) reads its wait policy once, when it is
// loaded, before main. By default an idle worker spins for ~300,000 iterations (milliseconds) at
// every barrier; when another process holds a core, the spinning worker takes the CPU from the one
// that is late and 2-thread runs become slower than 1 thread (docs/performance.md, "Busy
// machine"). Unless the user chose a policy (OMP_WAIT_POLICY or GOMP_SPINCOUNT), re-execute once
// with OMP_WAIT_POLICY=PASSIVE; the re-executed process removes the variables again so that its
// child processes (COLMAP) see the user's environment.
void SetOpenMpWaitPolicy(char** argv) {
  constexpr const char* kMarker = "MEGALOC_REEXEC_OMP_WAIT_POLICY";
  if (std::getenv(kMarker) != nullptr) {
    unsetenv("OMP_WAIT_POLICY");
    unsetenv(kMarker);
    return;
  }
  if (std::getenv("OMP_WAIT_POLICY") != nullptr || std::getenv("GOMP_SPINCOUNT") != nullptr) {
    return;
  }
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  setenv(kMarker, "1", 1);
  execv("/proc/self/exe", argv);
  // No /proc: keep libgomp's default policy.
  unsetenv("OMP_WAIT_POLICY");
  unsetenv(kMarker);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    PrintHelp();
    return EXIT_FAILURE;
  }
  const std::string name = argv[1];
  if (name == "help" || name == "--help" || name == "-h") {
    PrintHelp();
    return EXIT_SUCCESS;
  }
  if (name == "version" || name == "--version") {
    std::cout << "megaloc " << MEGALOC_VERSION_STRING << std::endl;
    return EXIT_SUCCESS;
  }
  for (const Command& command : Commands()) {
    if (name == command.name) {
      SetOpenMpWaitPolicy(argv);
      TuneMalloc();
      // Existing HDF5 files are looked at in a child process first: libhdf5 crashes or hangs on some
      // corrupt files (docs/cli.md, Robustness). MEGALOC_HDF5_PROBE=0 turns that off.
      const char* probe = std::getenv("MEGALOC_HDF5_PROBE");
      megaloc::DescriptorFileProbeOptions probe_options;
      probe_options.enabled = probe == nullptr || std::strcmp(probe, "0") != 0;
      megaloc::SetDescriptorFileProbe(probe_options);
      return command.run(argc - 1, argv + 1);
    }
  }
  std::cerr << "ERROR: unknown command '" << name << "'; run `megaloc help` for the list."
            << std::endl;
  return EXIT_FAILURE;
}
