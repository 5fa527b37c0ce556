// libFuzzer harness: the .npy reader (src/megaloc/util/npy.cc), in memory and from a file.

#include "megaloc/util/npy.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  megaloc::fuzz::ExpectCleanError("fuzz.npy", [&] {
    const megaloc::NpyArray array = megaloc::ParseNpy(bytes, "fuzz.npy");
    if (array.dtype == "f4" || array.dtype == "i8" || array.dtype == "u1") {
      array.As<double>();
    }
  });
  const std::string path = megaloc::fuzz::WriteInput(data, size, ".npy");
  megaloc::fuzz::ExpectCleanError(path, [&] { megaloc::ReadNpy(path); });
  return 0;
}
