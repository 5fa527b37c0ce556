// libFuzzer harness: the generic pickle reader (src/megaloc/util/pickle.cc).

#include "megaloc/util/pickle.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  megaloc::fuzz::ExpectCleanError("fuzz.pkl", [&] { megaloc::ParsePickle(bytes, "fuzz.pkl"); });
  return 0;
}
