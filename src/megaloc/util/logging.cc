#include "megaloc/util/logging.h"

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <mutex>

namespace megaloc {
namespace {

// MEGALOC_LOG_LEVEL=0..3 in the environment sets the starting level (default 2, info).
int InitialLogLevel() {
  const char* text = std::getenv("MEGALOC_LOG_LEVEL");
  if (text == nullptr || text[0] < '0' || text[0] > '3' || text[1] != '\0') return 2;
  return text[0] - '0';
}

std::atomic<int> g_log_level{InitialLogLevel()};
std::mutex g_log_mutex;

}  // namespace

void SetLogLevel(int level) { g_log_level = level; }
int GetLogLevel() { return g_log_level; }

namespace internal {

std::mutex& LogMutex() { return g_log_mutex; }

std::string StripPath(const char* file) {
  std::string path(file);
  const size_t pos = path.find("megaloc/");
  if (pos != std::string::npos) return path.substr(pos);
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

LogMessage::LogMessage(LogSeverity severity, const char* file, int line) : severity_(severity) {
  if (severity_ == LogSeverity::kError) {
    stream_ << "ERROR: ";
  } else if (severity_ == LogSeverity::kWarning) {
    stream_ << "WARNING: ";
  } else if (severity_ == LogSeverity::kDebug) {
    stream_ << "[" << StripPath(file) << ":" << line << "] ";
  }
}

LogMessage::~LogMessage() {
  if (static_cast<int>(severity_) > g_log_level) return;
  std::lock_guard<std::mutex> lock(g_log_mutex);
  std::cerr << stream_.str() << std::endl;
}

bool LogOptionFailure(const char* file, int line, const std::string& what) {
  LogMessage(LogSeverity::kError, file, line).stream()
      << "[" << StripPath(file) << ":" << line << "] Check failed: " << what;
  return false;
}

}  // namespace internal
}  // namespace megaloc
