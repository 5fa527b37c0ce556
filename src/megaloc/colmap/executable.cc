#include "megaloc/colmap/executable.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <sstream>

#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/string_utils.h"

namespace megaloc {
namespace {

std::string ParentDirectory(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return "";
  return path.substr(0, slash);
}

}  // namespace

bool ColmapVersion::AtLeast(int other_major, int other_minor) const {
  return major > other_major || (major == other_major && minor >= other_minor);
}

bool ColmapVersion::UsesFeatureMatchingPrefix() const { return AtLeast(3, 13); }

std::string ColmapVersion::MatchingOptionPrefix() const {
  return UsesFeatureMatchingPrefix() ? "FeatureMatching" : "SiftMatching";
}

std::string ColmapVersion::ExtractionOptionPrefix() const {
  return UsesFeatureMatchingPrefix() ? "FeatureExtraction" : "SiftExtraction";
}

std::string ColmapVersion::ToString() const {
  std::ostringstream out;
  out << major << "." << minor;
  if (patch > 0) out << "." << patch;
  return out.str();
}

ColmapVersion ParseColmapVersion(const std::string& help_text, const std::string& source) {
  std::istringstream in(help_text);
  std::string first_line;
  // Skip leading blank lines.
  while (std::getline(in, first_line) && Trim(first_line).empty()) {
  }
  first_line = Trim(first_line);
  ColmapVersion version;
  version.text = first_line;
  const std::vector<std::string> tokens = SplitWhitespace(first_line);
  if (tokens.size() < 2 || tokens[0] != "COLMAP") {
    MEGALOC_THROW(FormatError, source << ": not COLMAP's help text (first line: '" << first_line << "')");
  }
  int major = 0, minor = 0, patch = 0;
  const int fields = std::sscanf(tokens[1].c_str(), "%d.%d.%d", &major, &minor, &patch);
  if (fields < 2) {
    MEGALOC_THROW(FormatError, source << ": cannot parse the COLMAP version from '" << first_line << "'");
  }
  version.major = major;
  version.minor = minor;
  version.patch = fields >= 3 ? patch : 0;
  // The build description is on the second line up to 3.x, on the first from 4.0 on.
  std::string second_line;
  std::getline(in, second_line);
  version.with_cuda = first_line.find("with CUDA") != std::string::npos ||
                      second_line.find("with CUDA") != std::string::npos;
  return version;
}

ColmapVersion DetectColmapVersion(const std::string& colmap_path) {
  const std::string log = JoinPaths(CreateTempDirectory("megaloc_colmap_help"), "help.txt");
  const ProcessResult result = RunProcess({colmap_path, "help"}, log);
  const std::string text = FileExists(log) ? ReadFileToString(log) : "";
  std::remove(log.c_str());
  rmdir(ParentDirectory(log).c_str());
  // `colmap help` exits 0 on every version we know; accept a non-zero status if the text parses.
  try {
    return ParseColmapVersion(text, "'" + colmap_path + " help'");
  } catch (const FormatError&) {
    if (!result.Succeeded()) {
      MEGALOC_THROW(IoError, "'" << colmap_path << " help' failed (" << result.Describe()
                                 << "); is --colmap the COLMAP binary? Output: " << Trim(text).substr(0, 300));
    }
    throw;
  }
}

std::string ProcessResult::Describe() const {
  std::ostringstream out;
  if (signal != 0) {
    out << "killed by signal " << signal << " (" << strsignal(signal) << ")";
  } else {
    out << "exit status " << exit_code;
  }
  return out.str();
}

ProcessResult RunProcess(const std::vector<std::string>& argv, const std::string& log_path) {
  MEGALOC_CHECK_MSG(!argv.empty() && !argv[0].empty(), "RunProcess: empty command");
  const std::string parent = ParentDirectory(log_path);
  if (!parent.empty()) CreateDirectories(parent);
  const int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) MEGALOC_THROW(IoError, log_path << ": cannot open log file: " << std::strerror(errno));
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);

  // Report exec failures through a close-on-exec pipe (nothing is written on success).
  int error_pipe[2];
  if (pipe2(error_pipe, O_CLOEXEC) != 0) {
    close(log_fd);
    if (null_fd >= 0) close(null_fd);
    MEGALOC_THROW(IoError, "cannot create a pipe to run " << argv[0] << ": " << std::strerror(errno));
  }
  const pid_t pid = fork();
  if (pid < 0) {
    const int err = errno;
    close(log_fd);
    if (null_fd >= 0) close(null_fd);
    close(error_pipe[0]);
    close(error_pipe[1]);
    MEGALOC_THROW(IoError, "cannot start " << argv[0] << ": fork failed: " << std::strerror(err));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls.
    if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    execvp(args[0], args.data());
    const int err = errno;
    ssize_t unused = write(error_pipe[1], &err, sizeof(err));
    (void)unused;
    _exit(127);
  }
  close(error_pipe[1]);
  close(log_fd);
  if (null_fd >= 0) close(null_fd);
  int exec_errno = 0;
  const ssize_t n = read(error_pipe[0], &exec_errno, sizeof(exec_errno));
  close(error_pipe[0]);

  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) MEGALOC_THROW(IoError, "waiting for " << argv[0] << " failed: " << std::strerror(errno));
  }
  if (n == static_cast<ssize_t>(sizeof(exec_errno))) {
    MEGALOC_THROW(IoError, "cannot run '" << argv[0] << "': " << std::strerror(exec_errno)
                                          << " (install COLMAP or pass its path with --colmap)");
  }
  ProcessResult result;
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  return result;
}

std::string TailOfFile(const std::string& path, int max_lines) {
  std::ifstream in(path);
  if (!in) return "";
  std::deque<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(line);
    if (static_cast<int>(lines.size()) > max_lines) lines.pop_front();
  }
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

}  // namespace megaloc
