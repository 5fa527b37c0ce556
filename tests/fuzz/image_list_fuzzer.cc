// libFuzzer harness: image-list files (src/megaloc/io/image_list.cc), names validated, no image
// root (so no file-system look-ups).

#include "megaloc/io/image_list.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = megaloc::fuzz::WriteInput(data, size, "_list.txt");
  megaloc::fuzz::ExpectCleanError(path, [&] { megaloc::ReadImageList(path, ""); });
  return 0;
}
