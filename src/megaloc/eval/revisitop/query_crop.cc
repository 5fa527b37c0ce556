#include "megaloc/eval/revisitop/query_crop.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "megaloc/util/logging.h"

namespace megaloc {

PixelBox PilCropBox(const double bbx[4]) {
  int64_t v[4];
  for (int k = 0; k < 4; ++k) {
    if (!std::isfinite(bbx[k]) || std::fabs(bbx[k]) > 2147483647.0) {
      MEGALOC_THROW(InvalidArgument, "crop box coordinate " << k << " (" << bbx[k]
                                                            << ") is not a finite pixel position");
    }
    // Python round(): ties to even, independent of the current floating-point rounding mode.
    const double down = std::floor(bbx[k]);
    const double diff = bbx[k] - down;
    double rounded = down;
    if (diff > 0.5 || (diff == 0.5 && std::fmod(down, 2.0) != 0.0)) rounded = down + 1.0;
    v[k] = static_cast<int64_t>(rounded);
  }
  PixelBox box{v[0], v[1], v[2], v[3]};
  if (box.right <= box.left || box.bottom <= box.top) {
    MEGALOC_THROW(InvalidArgument, "crop box [" << bbx[0] << ", " << bbx[1] << ", " << bbx[2]
                                                << ", " << bbx[3] << "] rounds to an empty box ("
                                                << box.Width() << " x " << box.Height()
                                                << " pixels)");
  }
  return box;
}

std::vector<uint8_t> CropRgb(const uint8_t* rgb, int width, int height, const PixelBox& box) {
  MEGALOC_CHECK(width >= 0 && height >= 0);
  MEGALOC_CHECK(box.Width() > 0 && box.Height() > 0);
  const int64_t out_w = box.Width();
  const int64_t out_h = box.Height();
  if (out_w * out_h > (int64_t{1} << 28)) {
    MEGALOC_THROW(InvalidArgument, "crop box of " << out_w << " x " << out_h
                                                  << " pixels is implausibly large");
  }
  std::vector<uint8_t> out(static_cast<size_t>(out_w * out_h * 3), 0);
  // Intersection of the box with the image.
  const int64_t x0 = std::max<int64_t>(box.left, 0);
  const int64_t x1 = std::min<int64_t>(box.right, width);
  const int64_t y0 = std::max<int64_t>(box.top, 0);
  const int64_t y1 = std::min<int64_t>(box.bottom, height);
  if (x0 >= x1 || y0 >= y1) return out;
  for (int64_t y = y0; y < y1; ++y) {
    const uint8_t* src = rgb + (y * width + x0) * 3;
    uint8_t* dst = out.data() + ((y - box.top) * out_w + (x0 - box.left)) * 3;
    std::memcpy(dst, src, static_cast<size_t>((x1 - x0) * 3));
  }
  return out;
}

}  // namespace megaloc
