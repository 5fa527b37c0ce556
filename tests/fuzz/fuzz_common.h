#pragma once

// Shared by the libFuzzer harnesses (tests/fuzz, opt-in with MEGALOC_FUZZ_ENABLED).
//
// The oracle is the project's rule for bad input: a reader either succeeds or throws a
// megaloc::Error whose message is ONE line naming the file. Any other exception type (std::stoi's
// invalid_argument, bad_alloc, c10::Error, ...), a multi-line message or one without the file name
// aborts the run, and so do the crashes, leaks and undefined behaviour that ASan/UBSan report.

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "megaloc/util/logging.h"

namespace megaloc {
namespace fuzz {

// Writes the input to a per-process temporary file ending in `suffix` and returns its path.
inline std::string WriteInput(const uint8_t* data, size_t size, const std::string& suffix) {
  const char* tmp = std::getenv("TMPDIR");
  const std::string path = std::string(tmp && *tmp ? tmp : "/tmp") + "/megaloc_fuzz_" +
                           std::to_string(getpid()) + suffix;
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path;
}

[[noreturn]] inline void Finding(const std::string& what) {
  std::fprintf(stderr, "FUZZ FINDING: %s\n", what.c_str());
  std::abort();
}

// Runs `body`; enforces the error rule for `source` (the name the reader was given).
template <typename Body>
void ExpectCleanError(const std::string& source, Body body) {
  try {
    body();
  } catch (const Error& error) {
    const std::string message = error.what();
    if (message.find(source) == std::string::npos) {
      Finding("error does not name '" + source + "': " + message);
    }
    if (message.find('\n') != std::string::npos) Finding("multi-line error: " + message);
  } catch (const std::exception& error) {
    Finding(std::string("non-megaloc exception: ") + error.what());
  }
}

}  // namespace fuzz
}  // namespace megaloc
