#include "megaloc/eval/revisitop/query_crop.h"

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "megaloc/util/logging.h"

namespace megaloc {
namespace {

PixelBox Box(double x1, double y1, double x2, double y2) {
  const double b[4] = {x1, y1, x2, y2};
  return PilCropBox(b);
}

TEST(QueryCrop, RoundsHalfToEvenLikePython) {
  // Spec example: (0.5, 1.5, 2.5, 3.5) -> x 0..2, y 2..4 -> 2 x 2 pixels.
  const PixelBox b = Box(0.5, 1.5, 2.5, 3.5);
  EXPECT_EQ(b.left, 0);
  EXPECT_EQ(b.top, 2);
  EXPECT_EQ(b.right, 2);
  EXPECT_EQ(b.bottom, 4);
  EXPECT_EQ(b.Width(), 2);
  EXPECT_EQ(b.Height(), 2);
  // Python: round(200.5) = 200, round(300.25) = 300, round(10.5) = 10, round(11.5) = 12,
  // round(10.51) = 11, round(-0.5) = 0, round(-1.5) = -2.
  EXPECT_EQ(Box(10, 20, 200.5, 300.25).right, 200);
  EXPECT_EQ(Box(10, 20, 200.5, 300.25).bottom, 300);
  EXPECT_EQ(Box(10.5, 11.5, 20, 20).left, 10);
  EXPECT_EQ(Box(10.5, 11.5, 20, 20).top, 12);
  EXPECT_EQ(Box(10.51, 0, 20, 20).left, 11);
  EXPECT_EQ(Box(10.49, 0, 20, 20).left, 10);
  EXPECT_EQ(Box(-0.5, -1.5, 2, 2).left, 0);
  EXPECT_EQ(Box(-0.5, -1.5, 2, 2).top, -2);
  EXPECT_EQ(Box(-2.5, 0, 2, 2).left, -2);
}

TEST(QueryCrop, EmptyOrInvalidBoxesAreErrors) {
  EXPECT_THROW(Box(5, 5, 5, 10), InvalidArgument);       // zero width
  EXPECT_THROW(Box(5, 5, 10, 4), InvalidArgument);       // negative height
  EXPECT_THROW(Box(0.5, 0, 0.5, 1), InvalidArgument);    // both round to 0
  EXPECT_THROW(Box(0, 0.5, 1, 0.4), InvalidArgument);    // rows [0, 0)
  EXPECT_THROW(Box(std::nan(""), 0, 1, 1), InvalidArgument);
  EXPECT_THROW(Box(0, 0, std::numeric_limits<double>::infinity(), 1), InvalidArgument);
  EXPECT_NO_THROW(Box(0, 0, 0.51, 0.51));  // rounds to 1 x 1
}

// 4 x 3 test image whose pixel (x, y) has RGB = (10 y + x, 100 + x, 200 + y).
std::vector<uint8_t> TestImage(int w, int h) {
  std::vector<uint8_t> rgb(static_cast<size_t>(w * h * 3));
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      rgb[(y * w + x) * 3 + 0] = static_cast<uint8_t>(10 * y + x);
      rgb[(y * w + x) * 3 + 1] = static_cast<uint8_t>(100 + x);
      rgb[(y * w + x) * 3 + 2] = static_cast<uint8_t>(200 + y);
    }
  }
  return rgb;
}

TEST(QueryCrop, HalfOpenBoxInsideTheImage) {
  const auto img = TestImage(4, 3);
  const PixelBox b = Box(1, 1, 3, 3);  // columns 1, 2; rows 1, 2
  const auto out = CropRgb(img.data(), 4, 3, b);
  ASSERT_EQ(out.size(), 2u * 2u * 3u);
  EXPECT_EQ(out[0], 11);   // (1, 1)
  EXPECT_EQ(out[3], 12);   // (2, 1)
  EXPECT_EQ(out[6], 21);   // (1, 2)
  EXPECT_EQ(out[9], 22);   // (2, 2)
  EXPECT_EQ(out[10], 102);
  EXPECT_EQ(out[11], 202);
}

TEST(QueryCrop, OutsideTheImageIsBlack) {
  const auto img = TestImage(4, 3);
  // Box from (-1, -1) to (5, 2): 6 x 3; image columns 0..3 rows 0..1 land at offset (1, 1).
  const auto out = CropRgb(img.data(), 4, 3, Box(-1, -1, 5, 2));
  ASSERT_EQ(out.size(), 6u * 3u * 3u);
  auto px = [&](int x, int y, int c) { return out[(y * 6 + x) * 3 + c]; };
  for (int x = 0; x < 6; ++x) EXPECT_EQ(px(x, 0, 0), 0);  // row -1
  EXPECT_EQ(px(0, 1, 1), 0);                                // column -1
  EXPECT_EQ(px(5, 1, 1), 0);                                // column 4
  EXPECT_EQ(px(1, 1, 0), 0);                                // (0, 0): R = 0 but G = 100
  EXPECT_EQ(px(1, 1, 1), 100);
  EXPECT_EQ(px(4, 2, 0), 13);                               // (3, 1)
  // Entirely outside: all black, right size.
  const auto outside = CropRgb(img.data(), 4, 3, Box(10, 10, 12, 11));
  ASSERT_EQ(outside.size(), 2u * 1u * 3u);
  for (const uint8_t v : outside) EXPECT_EQ(v, 0);
}

TEST(QueryCrop, FullImageBoxIsIdentity) {
  const auto img = TestImage(4, 3);
  EXPECT_EQ(CropRgb(img.data(), 4, 3, Box(0, 0, 4, 3)), img);
  // 3.5 rounds to 4 and 2.5 rounds to 2 (ties to even).
  const auto out = CropRgb(img.data(), 4, 3, Box(0, 0, 3.5, 2.5));
  EXPECT_EQ(out.size(), 4u * 2u * 3u);
}

TEST(QueryCrop, HugeBoxIsRejected) {
  const auto img = TestImage(4, 3);
  EXPECT_THROW(CropRgb(img.data(), 4, 3, Box(0, 0, 1e6, 1e6)), InvalidArgument);
}

}  // namespace
}  // namespace megaloc
