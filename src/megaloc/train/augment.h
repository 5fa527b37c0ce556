#pragma once

// Training-image loading and RandAugment (torch-free, OpenCV), seeded per image so that a resumed
// run reproduces its inputs exactly.
//
// Pipeline (SALAD / GSV-Cities loader): Resize((S, S), bilinear) -> RandAugment(num_ops, magnitude,
// num_magnitude_bins, bilinear) -> ToTensor -> Normalize(ImageNet).

#include <cstdint>
#include <string>
#include <vector>

#include "megaloc/train/datasets.h"

namespace megaloc {

struct RandAugmentOptions {
  // Enable RandAugment (SALAD: on).
  bool enabled = true;
  // Operations per image (SALAD: num_ops = 3; not published for MegaLoc).
  int num_ops = 3;
  // Magnitude bin (torchvision default 9; not published).
  int magnitude = 9;
  // Number of magnitude bins (torchvision default 31).
  int num_magnitude_bins = 31;

  bool Check() const;
};

// The 14 RandAugment operations of torchvision, in torchvision's order.
enum class AugmentOp {
  kIdentity, kShearX, kShearY, kTranslateX, kTranslateY, kRotate, kBrightness, kColor, kContrast,
  kSharpness, kPosterize, kSolarize, kAutoContrast, kEqualize,
};
constexpr int kNumAugmentOps = 14;

// Applies one operation to an interleaved 8-bit RGB image (height x width x 3) in place, with the
// magnitude of `options` and `sign` = +1 or -1 for the signed operations (torchvision semantics:
// shear/translate/rotate fill with 0).
void ApplyAugmentOp(AugmentOp op, int sign, const RandAugmentOptions& options, int width, int height,
                    std::vector<uint8_t>* rgb);

// Loads one training image: decode (no EXIF rotation), optional panorama crop (ImageRef), resize to
// size x size (bilinear; INTER_AREA when shrinking by more than 2x), RandAugment drawn from `seed`,
// ImageNet normalisation. Output: 3 * size * size floats, CHW. Throws ImageError naming the file.
std::vector<float> LoadTrainingImage(const ImageRef& ref, int size, const RandAugmentOptions& options,
                                     uint64_t seed);

}  // namespace megaloc
