// libFuzzer harness: the torch.save zip reader and its data.pkl interpreter
// (src/megaloc/model/weights.cc).

#include "megaloc/model/weights.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = megaloc::fuzz::WriteInput(data, size, ".torch");
  megaloc::fuzz::ExpectCleanError(path, [&] { megaloc::ReadTorchZip(path); });
  return 0;
}
