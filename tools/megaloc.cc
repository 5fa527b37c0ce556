// `megaloc`: one command, one table of subcommands (in the style of COLMAP's `colmap` binary).
//
// Built twice from this file. `megaloc` (MEGALOC_FRONT) runs the commands that need no network —
// `pairs` and `merge` — in its own process, linked without LibTorch, so that retrieval does not pay
// for loading it (~165 MB of resident memory and its start-up time). For every other command it
// executes `megaloc_torch` (this file without MEGALOC_FRONT: every command, LibTorch linked) with the
// same arguments: next to itself in a build tree, or <prefix>/libexec/megaloc/ when installed;
// MEGALOC_TORCH_EXECUTABLE overrides the location.

#include <limits.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
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

// Commands run by megaloc_torch: a null entry in the front's table.
#ifdef MEGALOC_FRONT
#define MEGALOC_TORCH_COMMAND(function) nullptr
#else
#define MEGALOC_TORCH_COMMAND(function) function
#endif

const std::vector<Command>& Commands() {
  static const std::vector<Command> commands = {
      {"extract", MEGALOC_TORCH_COMMAND(megaloc::RunExtract),
       "Global MegaLoc descriptors of an image collection -> HDF5 (hloc layout)"},
      {"merge", megaloc::RunMerge, "Merge descriptor files (e.g. the shards of one collection)"},
      {"pairs", megaloc::RunPairs,
       "Top-k retrieval pair list (hloc pairs_from_retrieval semantics, COLMAP format)"},
      {"colmap_matcher", MEGALOC_TORCH_COMMAND(megaloc::RunColmapMatcher),
       "Retrieval matching on a COLMAP database (drop-in for vocab_tree_matcher)"},
      {"revisitop_eval", MEGALOC_TORCH_COMMAND(megaloc::RunRevisitopEval),
       "Revisited Oxford/Paris evaluation (mAP and mP@k, Easy/Medium/Hard)"},
      {"vpr_eval", MEGALOC_TORCH_COMMAND(megaloc::RunVprEval),
       "Visual place recognition recall@N (the paper's Table 1 protocol, positives within 25 m)"},
      {"lamar_eval", MEGALOC_TORCH_COMMAND(megaloc::RunLamarEval),
       "LaMAR localization with MegaLoc retrieval: extract, pairs, localize, evaluate"},
      {"train", MEGALOC_TORCH_COMMAND(megaloc::RunTrain), "Train MegaLoc (multi-dataset, multi-similarity loss)"},
      {"convert_weights", MEGALOC_TORCH_COMMAND(megaloc::RunConvertWeights),
       "Convert a .torch or .safetensors checkpoint to safetensors"},
      {"model_info", MEGALOC_TORCH_COMMAND(megaloc::RunModelInfo), "Print the architecture and digest of a checkpoint"},
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
// machine"). Unless the user chose a policy (OMP_WAIT_POLICY or GOMP_SPINCOUNT), set
// OMP_WAIT_POLICY=PASSIVE for the process image `executable` runs next; that process removes the
// variables again so that its child processes (COLMAP) see the user's environment.
constexpr const char* kWaitPolicyMarker = "MEGALOC_REEXEC_OMP_WAIT_POLICY";

// In the process started by ExecWithWaitPolicy: drops the variables set for it. True if it was.
bool ClearWaitPolicyMarker() {
  if (std::getenv(kWaitPolicyMarker) == nullptr) return false;
  unsetenv("OMP_WAIT_POLICY");
  unsetenv(kWaitPolicyMarker);
  return true;
}

bool UserChoseWaitPolicy() {
  return std::getenv("OMP_WAIT_POLICY") != nullptr || std::getenv("GOMP_SPINCOUNT") != nullptr;
}

// Executes `executable` with argv and, unless the user chose one, the passive wait policy. Returns
// only if the exec failed (errno set).
void ExecWithWaitPolicy(const char* executable, char** argv) {
  const bool user_policy = UserChoseWaitPolicy();
  if (!user_policy) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    setenv(kWaitPolicyMarker, "1", 1);
  }
  execv(executable, argv);
  const int error = errno;
  if (!user_policy) {
    unsetenv("OMP_WAIT_POLICY");
    unsetenv(kWaitPolicyMarker);
  }
  errno = error;
}

// Re-executes this program once with the passive policy (in-process commands). No /proc: keeps
// libgomp's default policy.
void SetOpenMpWaitPolicy(char** argv) {
  if (ClearWaitPolicyMarker() || UserChoseWaitPolicy()) return;
  ExecWithWaitPolicy("/proc/self/exe", argv);
}

#ifdef MEGALOC_FRONT
bool IsExecutableFile(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0;
}

// The LibTorch half: $MEGALOC_TORCH_EXECUTABLE, else next to this executable (build tree), else
// <prefix>/libexec/megaloc/ (installed). Returns the candidates tried in `tried` when none exists.
std::string FindTorchExecutable(std::vector<std::string>* tried) {
  const char* override_path = std::getenv("MEGALOC_TORCH_EXECUTABLE");
  if (override_path != nullptr && *override_path != '\0') {
    tried->push_back(override_path);
    return IsExecutableFile(override_path) ? override_path : "";
  }
  char self[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return "";
  self[n] = '\0';
  std::string dir(self);
  dir = dir.substr(0, dir.rfind('/'));
  for (const std::string& candidate : {dir + "/megaloc_torch", dir + "/../libexec/megaloc/megaloc_torch"}) {
    tried->push_back(candidate);
    if (IsExecutableFile(candidate)) return candidate;
  }
  return "";
}

int RunInTorchExecutable(const std::string& command, char** argv) {
  std::vector<std::string> tried;
  const std::string executable = FindTorchExecutable(&tried);
  if (!executable.empty()) {
    ExecWithWaitPolicy(executable.c_str(), argv);
    std::cerr << "ERROR: megaloc " << command << ": cannot execute " << executable << ": "
              << std::strerror(errno) << std::endl;
    return EXIT_FAILURE;
  }
  std::cerr << "ERROR: megaloc " << command << " runs in megaloc_torch (the part of megaloc linked with "
            << "LibTorch), which was not found (tried:";
  for (const std::string& path : tried) std::cerr << " " << path;
  std::cerr << "); reinstall megaloc or set MEGALOC_TORCH_EXECUTABLE" << std::endl;
  return EXIT_FAILURE;
}
#endif

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
#ifdef MEGALOC_FRONT
      if (command.run == nullptr) return RunInTorchExecutable(name, argv);
#endif
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
