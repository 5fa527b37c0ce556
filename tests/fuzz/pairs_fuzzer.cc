// libFuzzer harness: pair lists and scored pair lists (src/megaloc/retrieval/pairs_io.cc).

#include "megaloc/retrieval/pairs_io.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  megaloc::fuzz::ExpectCleanError("fuzz_pairs.txt",
                                   [&] { megaloc::ParsePairs(text, "fuzz_pairs.txt"); });
  const std::string path = megaloc::fuzz::WriteInput(data, size, "_pairs.txt");
  megaloc::fuzz::ExpectCleanError(path, [&] { megaloc::ReadPairs(path); });
  megaloc::fuzz::ExpectCleanError(path, [&] { megaloc::ReadPairScores(path); });
  return 0;
}
