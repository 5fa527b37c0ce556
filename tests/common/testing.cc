#include "tests/common/testing.h"

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <vector>

#include "megaloc/util/file_utils.h"

namespace megaloc {
namespace testing {
namespace {

std::vector<std::string>& TempDirs() {
  static auto* dirs = new std::vector<std::string>();  // leaked: used from an atexit handler
  return *dirs;
}

void RemoveTempDirs() {
  if (std::getenv("MEGALOC_KEEP_TEST_DIRS") != nullptr) return;
  for (const std::string& dir : TempDirs()) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
}

}  // namespace

std::string TestDataDir() {
  const char* env = std::getenv("MEGALOC_TEST_DATA_DIR");
  if (env != nullptr && env[0] != '\0') return env;
  return MEGALOC_SOURCE_TEST_DATA_DIR;
}

std::string TestDataPath(const std::string& relative) { return JoinPaths(TestDataDir(), relative); }

std::string BinaryDir() {
  const char* env = std::getenv("MEGALOC_BINARY_DIR");
  if (env != nullptr && env[0] != '\0') return env;
  return MEGALOC_COMPILED_BINARY_DIR;
}

std::string MegalocExecutable() { return JoinPaths(BinaryDir(), "tools/megaloc"); }

std::string TempDir() {
  static std::once_flag once;
  std::call_once(once, [] { std::atexit(RemoveTempDirs); });
  const std::string dir = CreateTempDirectory("megaloc_test");
  TempDirs().push_back(dir);
  return dir;
}

int RunShell(const std::string& command) {
  const int status = std::system(command.c_str());
  if (status == -1 || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

}  // namespace testing
}  // namespace megaloc
