// libFuzzer harness: LaMAR Capture text files (src/megaloc/eval/lamar/capture.cc): trajectories, rigs,
// sensors, image lists and query lists, each reader on the same input.

#include "megaloc/eval/lamar/capture.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = megaloc::fuzz::WriteInput(data, size, "_capture.txt");
  using namespace megaloc::lamar;
  megaloc::fuzz::ExpectCleanError(path, [&] { ReadTrajectories(path); });
  megaloc::fuzz::ExpectCleanError(path, [&] { ReadRigs(path); });
  megaloc::fuzz::ExpectCleanError(path, [&] { ReadSensors(path); });
  megaloc::fuzz::ExpectCleanError(path, [&] { ReadImages(path); });
  megaloc::fuzz::ExpectCleanError(path, [&] { ReadQueryList(path); });
  return 0;
}
