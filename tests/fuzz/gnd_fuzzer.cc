// libFuzzer harness: revisitop ground truth files (pickle or JSON, src/megaloc/eval/revisitop_gnd.cc).

#include "megaloc/eval/revisitop/revisitop_gnd.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const bool json = size > 0 && data[0] == '{';
  const std::string path = megaloc::fuzz::WriteInput(data, size, json ? ".json" : ".pkl");
  megaloc::fuzz::ExpectCleanError(path, [&] { megaloc::ReadRevisitopGroundTruth(path); });
  return 0;
}
