#pragma once

// Query cropping of the Revisited Oxford/Paris protocol with the semantics of the official Python
// code, `PIL.Image.open(path).convert('RGB').crop(bbx)`: Pillow rounds every coordinate with Python
// round() (half to even) and copies the half-open box [left, right) x [top, bottom); pixels outside
// the image are black (0). (The MATLAB crop_qim.m differs: inclusive, one pixel larger per axis.)

#include <cstdint>
#include <vector>

namespace megaloc {

// Integer crop box in pixels, half-open: columns [left, right), rows [top, bottom).
struct PixelBox {
  int64_t left = 0;
  int64_t top = 0;
  int64_t right = 0;
  int64_t bottom = 0;
  int64_t Width() const { return right - left; }
  int64_t Height() const { return bottom - top; }
};

// Rounds a [x1, y1, x2, y2] box like Pillow (round half to even, e.g. 0.5 -> 0, 1.5 -> 2,
// 2.5 -> 2). Throws InvalidArgument for non-finite or out-of-int32 values, or when the box is
// empty (right <= left or bottom <= top).
PixelBox PilCropBox(const double bbx[4]);

// Crops an interleaved 8-bit RGB image (height * width * 3 bytes) to `box` like Pillow: the result
// has box.Width() x box.Height() pixels; parts of the box outside the image are 0.
std::vector<uint8_t> CropRgb(const uint8_t* rgb, int width, int height, const PixelBox& box);

}  // namespace megaloc
