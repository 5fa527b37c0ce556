#pragma once

// Helpers shared by the test binaries.

#include <exception>
#include <functional>
#include <string>

#include <gtest/gtest.h>

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


// The message of the ExceptionT that `body` throws; a test failure (and "") if it throws nothing
// or another exception.
template <typename ExceptionT>
std::string ThrownMessage(const std::function<void()>& body) {
  try {
    body();
  } catch (const ExceptionT& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "unexpected exception type: " << e.what();
    return "";
  }
  ADD_FAILURE() << "no exception";
  return "";
}

}  // namespace testing
}  // namespace megaloc
