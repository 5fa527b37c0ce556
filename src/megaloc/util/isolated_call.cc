#include "megaloc/util/isolated_call.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <sstream>

#include "megaloc/util/logging.h"

namespace megaloc {

bool IsolatedCallOptions::Check() const {
  CHECK_OPTION(std::isfinite(stall_seconds) && stall_seconds > 0);
  CHECK_OPTION_GE(max_stderr_bytes, 0);
  return true;
}

std::string IsolatedCallResult::Describe() const {
  std::ostringstream text;
  switch (status) {
    case Status::kCompleted:
      text << "completed";
      break;
    case Status::kSignaled: {
      text << "crashed with signal " << signal;
      const char* abbrev = sigabbrev_np(signal);
      if (abbrev != nullptr) text << " (SIG" << abbrev << ", " << strsignal(signal) << ")";
      break;
    }
    case Status::kStalled:
      text << "made no progress for " << seconds << " s and was stopped";
      break;
    case Status::kExited:
      text << "exited with status " << exit_code;
      break;
  }
  return text.str();
}

namespace {

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

// Writes one byte; the child's only way to say it advances.
void Beat(int fd) {
  const char byte = '.';
  while (write(fd, &byte, 1) < 0 && errno == EINTR) {
  }
}

std::string LastNonEmptyLine(const std::string& text) {
  size_t end = text.size();
  while (end > 0) {
    while (end > 0 && (text[end - 1] == '\n' || text[end - 1] == '\r')) --end;
    const size_t begin = text.rfind('\n', end == 0 ? 0 : end - 1);
    const size_t start = begin == std::string::npos ? 0 : begin + 1;
    std::string line = text.substr(start, end - start);
    if (line.find_first_not_of(" \t") != std::string::npos) return line;
    end = start;
  }
  return "";
}

}  // namespace

IsolatedCallResult RunIsolated(const std::function<void(const std::function<void()>& progress)>& work,
                               const IsolatedCallOptions& options) {
  MEGALOC_CHECK(options.Check());
  const auto start = std::chrono::steady_clock::now();
  int beat_pipe[2] = {-1, -1};
  int err_pipe[2] = {-1, -1};
  if (pipe2(beat_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
    const int error = errno;
    for (int fd : {beat_pipe[0], beat_pipe[1], err_pipe[0], err_pipe[1]}) {
      if (fd >= 0) close(fd);
    }
    MEGALOC_THROW(IoError, "cannot start a child process: pipe: " << std::strerror(error));
  }
  const pid_t pid = fork();
  if (pid < 0) {
    const int error = errno;
    for (int fd : {beat_pipe[0], beat_pipe[1], err_pipe[0], err_pipe[1]}) close(fd);
    MEGALOC_THROW(IoError, "cannot start a child process: fork: " << std::strerror(error));
  }
  if (pid == 0) {
    // Child: standard error goes to the parent's report, never to the terminal; _exit skips the
    // parent's atexit handlers and stdio buffers.
    close(beat_pipe[0]);
    close(err_pipe[0]);
    dup2(err_pipe[1], STDERR_FILENO);
    const int beat_fd = beat_pipe[1];
    try {
      work([beat_fd] { Beat(beat_fd); });
    } catch (...) {
    }
    _exit(0);
  }
  close(beat_pipe[1]);
  close(err_pipe[1]);

  IsolatedCallResult result;
  std::string err;
  bool beat_open = true;
  bool err_open = true;
  auto last_beat = std::chrono::steady_clock::now();
  bool stalled = false;
  while (beat_open || err_open) {
    pollfd fds[2] = {{beat_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    const double idle =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - last_beat).count();
    const double left = options.stall_seconds - idle;
    if (left <= 0) {
      stalled = true;
      break;
    }
    const int ready = poll(fds, 2, static_cast<int>(std::ceil(std::min(left, 3600.0) * 1000)));
    if (ready < 0) {
      if (errno == EINTR) continue;
      break;
    }
    char buffer[4096];
    if (fds[0].revents != 0) {
      const ssize_t n = read(beat_pipe[0], buffer, sizeof(buffer));
      if (n > 0) {
        last_beat = std::chrono::steady_clock::now();
      } else if (n == 0 || errno != EINTR) {
        beat_open = false;
        CloseFd(beat_pipe[0]);
      }
    }
    if (fds[1].revents != 0) {
      const ssize_t n = read(err_pipe[0], buffer, sizeof(buffer));
      if (n > 0) {
        err.append(buffer, static_cast<size_t>(n));
        if (err.size() > static_cast<size_t>(options.max_stderr_bytes)) {
          err.erase(0, err.size() - static_cast<size_t>(options.max_stderr_bytes));
        }
      } else if (n == 0 || errno != EINTR) {
        err_open = false;
        CloseFd(err_pipe[0]);
      }
    }
  }
  CloseFd(beat_pipe[0]);
  CloseFd(err_pipe[0]);
  if (stalled) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.stderr_tail = LastNonEmptyLine(err);
  if (stalled) {
    result.status = IsolatedCallResult::Status::kStalled;
    result.seconds = options.stall_seconds;
  } else if (WIFSIGNALED(status)) {
    result.status = IsolatedCallResult::Status::kSignaled;
    result.signal = WTERMSIG(status);
  } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
    result.status = IsolatedCallResult::Status::kExited;
    result.exit_code = WEXITSTATUS(status);
  }
  return result;
}

}  // namespace megaloc
