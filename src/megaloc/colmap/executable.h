#pragma once

// Driving the COLMAP command-line binary: version detection (flag names changed in 3.13) and
// running a subcommand with its output captured in a log file.

#include <string>
#include <vector>

namespace megaloc {

// Version and build of a `colmap` binary, from the first lines of `colmap help`:
//   "COLMAP 3.8 -- Structure-from-Motion and Multi-View Stereo"
//   "              (Commit Unknown on Unknown without CUDA)"
struct ColmapVersion {
  int major = 0;
  int minor = 0;
  int patch = 0;
  std::string text;         // the first line of `colmap help`
  bool with_cuda = false;   // "with CUDA" on the second line

  // Matching options are `--FeatureMatching.*` from 3.13 on, `--SiftMatching.*` before.
  bool UsesFeatureMatchingPrefix() const;
  // "SiftMatching" or "FeatureMatching".
  std::string MatchingOptionPrefix() const;
  // "SiftExtraction" or "FeatureExtraction" (use_gpu, num_threads, max_image_size; the SIFT-only
  // options such as max_num_features stay SiftExtraction.*).
  std::string ExtractionOptionPrefix() const;
  // "3.8", "3.13.0", ...
  std::string ToString() const;
  bool AtLeast(int major, int minor) const;
};

// Parses the text of `colmap help`. Throws FormatError (naming `source`) if the first line is not
// "COLMAP <major>.<minor>[.<patch>][suffix] ...".
ColmapVersion ParseColmapVersion(const std::string& help_text, const std::string& source = "colmap help");

// Runs `<colmap_path> help` and parses it. Throws IoError if the binary cannot be run (naming it),
// FormatError if the output is not COLMAP's.
ColmapVersion DetectColmapVersion(const std::string& colmap_path);

// Result of a child process.
struct ProcessResult {
  int exit_code = -1;  // exit status if it exited normally, else -1
  int signal = 0;      // terminating signal, 0 if it exited normally
  bool Succeeded() const { return signal == 0 && exit_code == 0; }
  // "exit status 1" / "killed by signal 6 (Aborted)".
  std::string Describe() const;
};

// Runs argv[0] (searched in PATH if it has no '/') with the arguments, stdin from /dev/null,
// stdout and stderr appended to `log_path` (created; parent directories created). Waits for it.
// Throws IoError if the log cannot be opened or the program cannot be started (exec failure is
// reported as exit code 127 by the child and turned into an IoError naming the program).
ProcessResult RunProcess(const std::vector<std::string>& argv, const std::string& log_path);

// The last `max_lines` lines of a text file ("" if it cannot be read).
std::string TailOfFile(const std::string& path, int max_lines = 20);

}  // namespace megaloc
