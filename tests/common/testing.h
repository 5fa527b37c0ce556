#pragma once

// Helpers shared by the test binaries.

#include <string>

namespace megaloc {
namespace testing {

// tests/data of the source tree (MEGALOC_TEST_DATA_DIR, set by CTest; falls back to the path
// compiled in).
std::string TestDataDir();
// Path of a file under tests/data.
std::string TestDataPath(const std::string& relative);
// The build tree (MEGALOC_BINARY_DIR), where the `megaloc` executable lives in tools/.
std::string BinaryDir();
// Path of the built `megaloc` executable.
std::string MegalocExecutable();
// A fresh, empty temporary directory, removed at process exit unless MEGALOC_KEEP_TEST_DIRS is set.
std::string TempDir();
// Runs a shell command; returns its exit status (WEXITSTATUS), or -1 if it did not exit normally.
int RunShell(const std::string& command);

}  // namespace testing
}  // namespace megaloc
