// libFuzzer harness: image decoding (ReadRgbImage, src/megaloc/model/preprocessing.cc and
// image_codecs.cc): the input is written as .jpg (the decoder goes by content, not by name: JPEG,
// PNG, WebP incl. animated, BMP, ...) and decoded in PIL mode and in hloc mode. Pixel limit 4 Mpx
// so that headers declaring huge images are refused quickly.

#include <cstdint>
#include <vector>

#include "megaloc/model/megaloc.h"
#include "megaloc/util/logging.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  megaloc::SetLogLevel(0);  // the decoders' warnings (corrupt but decodable data) are not findings
  const std::string path = megaloc::fuzz::WriteInput(data, size, ".jpg");
  for (const bool hloc : {false, true}) {
    megaloc::fuzz::ExpectCleanError(path, [&] {
      std::vector<uint8_t> rgb;
      int width = 0;
      int height = 0;
      megaloc::ReadRgbImage(path, hloc, &rgb, &width, &height, int64_t{1} << 22);
      if (rgb.size() != static_cast<size_t>(width) * height * 3) {
        megaloc::fuzz::Finding("decoded size does not match width x height x 3");
      }
    });
  }
  return 0;
}
