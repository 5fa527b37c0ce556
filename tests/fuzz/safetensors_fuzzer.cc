// libFuzzer harness: the safetensors reader (src/megaloc/model/weights.cc).

#include "megaloc/model/weights.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = megaloc::fuzz::WriteInput(data, size, ".safetensors");
  megaloc::fuzz::ExpectCleanError(path, [&] { megaloc::ReadSafetensors(path); });
  return 0;
}
