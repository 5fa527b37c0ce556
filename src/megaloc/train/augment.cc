#include "megaloc/train/augment.h"

#include <algorithm>
#include <cmath>
#include <random>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "megaloc/util/logging.h"

namespace megaloc {

namespace {

constexpr float kMean[3] = {0.485f, 0.456f, 0.406f};
constexpr float kStd[3] = {0.229f, 0.224f, 0.225f};

// torch.linspace(lo, hi, bins)[index] in float32 arithmetic, like torchvision.
double Linspace(double lo, double hi, int bins, int index) {
  if (bins <= 1) return lo;
  return static_cast<float>(lo + (hi - lo) * index / (bins - 1));
}

uint8_t Clamp8(double v) { return static_cast<uint8_t>(std::min(255.0, std::max(0.0, std::round(v)))); }

cv::Mat Wrap(int width, int height, std::vector<uint8_t>* rgb) {
  return cv::Mat(height, width, CV_8UC3, rgb->data());
}

// PIL "L" conversion: (R*19595 + G*38470 + B*7471 + 0x8000) >> 16.
cv::Mat Grayscale(const cv::Mat& img) {
  cv::Mat gray(img.rows, img.cols, CV_8UC1);
  for (int y = 0; y < img.rows; ++y) {
    const cv::Vec3b* row = img.ptr<cv::Vec3b>(y);
    uint8_t* g = gray.ptr<uint8_t>(y);
    for (int x = 0; x < img.cols; ++x) {
      g[x] = static_cast<uint8_t>((row[x][0] * 19595 + row[x][1] * 38470 + row[x][2] * 7471 + 0x8000) >> 16);
    }
  }
  return gray;
}

// out = degenerate + factor * (img - degenerate), clamped (PIL ImageEnhance blend).
void Blend(cv::Mat& img, const cv::Mat& degenerate, double factor) {
  for (int y = 0; y < img.rows; ++y) {
    cv::Vec3b* row = img.ptr<cv::Vec3b>(y);
    const cv::Vec3b* d = degenerate.ptr<cv::Vec3b>(y);
    for (int x = 0; x < img.cols; ++x) {
      for (int c = 0; c < 3; ++c) row[x][c] = Clamp8(d[x][c] + factor * (row[x][c] - d[x][c]));
    }
  }
}

void Affine(cv::Mat& img, const cv::Mat& forward) {
  cv::Mat out;
  cv::warpAffine(img, out, forward, img.size(), cv::INTER_LINEAR, cv::BORDER_CONSTANT, cv::Scalar(0, 0, 0));
  out.copyTo(img);
}

}  // namespace

bool RandAugmentOptions::Check() const {
  CHECK_OPTION_GE(num_ops, 0);
  CHECK_OPTION_GT(num_magnitude_bins, 1);
  CHECK_OPTION_GE(magnitude, 0);
  CHECK_OPTION_LT(magnitude, num_magnitude_bins);
  return true;
}

void ApplyAugmentOp(AugmentOp op, int sign, const RandAugmentOptions& o, int width, int height,
                    std::vector<uint8_t>* rgb) {
  MEGALOC_CHECK_EQ(rgb->size(), static_cast<size_t>(width) * height * 3);
  cv::Mat img = Wrap(width, height, rgb);
  const int bins = o.num_magnitude_bins, m = o.magnitude;
  const double s = sign < 0 ? -1.0 : 1.0;
  switch (op) {
    case AugmentOp::kIdentity:
      break;
    case AugmentOp::kShearX: {
      // torchvision: affine(shear=[degrees(atan(mag)), 0], center=[0, 0]) -> x' = x - mag * y.
      const double mag = s * Linspace(0.0, 0.3, bins, m);
      cv::Mat a = (cv::Mat_<double>(2, 3) << 1, -mag, 0, 0, 1, 0);
      Affine(img, a);
      break;
    }
    case AugmentOp::kShearY: {
      const double mag = s * Linspace(0.0, 0.3, bins, m);
      cv::Mat a = (cv::Mat_<double>(2, 3) << 1, 0, 0, -mag, 1, 0);
      Affine(img, a);
      break;
    }
    case AugmentOp::kTranslateX: {
      const int t = static_cast<int>(s * Linspace(0.0, 150.0 / 331.0 * width, bins, m));
      cv::Mat a = (cv::Mat_<double>(2, 3) << 1, 0, t, 0, 1, 0);
      Affine(img, a);
      break;
    }
    case AugmentOp::kTranslateY: {
      const int t = static_cast<int>(s * Linspace(0.0, 150.0 / 331.0 * height, bins, m));
      cv::Mat a = (cv::Mat_<double>(2, 3) << 1, 0, 0, 0, 1, t);
      Affine(img, a);
      break;
    }
    case AugmentOp::kRotate: {
      const double deg = s * Linspace(0.0, 30.0, bins, m);
      Affine(img, cv::getRotationMatrix2D(cv::Point2f(width * 0.5f, height * 0.5f), deg, 1.0));
      break;
    }
    case AugmentOp::kBrightness: {
      const double f = 1.0 + s * Linspace(0.0, 0.9, bins, m);
      Blend(img, cv::Mat::zeros(img.size(), CV_8UC3), f);
      break;
    }
    case AugmentOp::kColor: {
      const double f = 1.0 + s * Linspace(0.0, 0.9, bins, m);
      cv::Mat gray3;
      cv::cvtColor(Grayscale(img), gray3, cv::COLOR_GRAY2RGB);
      Blend(img, gray3, f);
      break;
    }
    case AugmentOp::kContrast: {
      const double f = 1.0 + s * Linspace(0.0, 0.9, bins, m);
      const int mean = static_cast<int>(cv::mean(Grayscale(img))[0] + 0.5);
      Blend(img, cv::Mat(img.size(), CV_8UC3, cv::Scalar(mean, mean, mean)), f);
      break;
    }
    case AugmentOp::kSharpness: {
      const double f = 1.0 + s * Linspace(0.0, 0.9, bins, m);
      cv::Mat kernel = (cv::Mat_<float>(3, 3) << 1, 1, 1, 1, 5, 1, 1, 1, 1) / 13.0f;
      cv::Mat smooth;
      cv::filter2D(img, smooth, -1, kernel, cv::Point(-1, -1), 0, cv::BORDER_REPLICATE);
      if (width > 2 && height > 2) {  // PIL keeps the border pixels
        img.row(0).copyTo(smooth.row(0));
        img.row(height - 1).copyTo(smooth.row(height - 1));
        img.col(0).copyTo(smooth.col(0));
        img.col(width - 1).copyTo(smooth.col(width - 1));
      }
      Blend(img, smooth, f);
      break;
    }
    case AugmentOp::kPosterize: {
      // 8 - round(index / ((bins - 1) / 4)), round half to even.
      const int bits = 8 - static_cast<int>(std::nearbyint(m / ((bins - 1) / 4.0)));
      const uint8_t mask = static_cast<uint8_t>(~((1 << (8 - std::max(0, std::min(8, bits)))) - 1));
      for (uint8_t& v : *rgb) v &= mask;
      break;
    }
    case AugmentOp::kSolarize: {
      const double thr = Linspace(255.0, 0.0, bins, m);
      for (uint8_t& v : *rgb) {
        if (v >= thr) v = static_cast<uint8_t>(255 - v);
      }
      break;
    }
    case AugmentOp::kAutoContrast: {
      for (int c = 0; c < 3; ++c) {
        int lo = 255, hi = 0;
        for (size_t i = c; i < rgb->size(); i += 3) {
          lo = std::min<int>(lo, (*rgb)[i]);
          hi = std::max<int>(hi, (*rgb)[i]);
        }
        if (hi <= lo) continue;
        const double scale = 255.0 / (hi - lo);
        for (size_t i = c; i < rgb->size(); i += 3) (*rgb)[i] = Clamp8(((*rgb)[i] - lo) * scale);
      }
      break;
    }
    case AugmentOp::kEqualize: {
      std::vector<cv::Mat> ch;
      cv::split(img, ch);
      for (auto& c : ch) cv::equalizeHist(c, c);
      cv::merge(ch, img);
      break;
    }
  }
}

std::vector<float> LoadTrainingImage(const ImageRef& ref, int size, const RandAugmentOptions& options,
                                     uint64_t seed) {
  cv::Mat bgr = cv::imread(ref.path, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
  if (bgr.empty()) MEGALOC_THROW(ImageError, ref.path << ": cannot read or decode the image");
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  if (ref.panorama_crop) {
    // Square crop of height x height columns facing the focal point, wrapping around.
    const int w = rgb.cols, cw = std::min(rgb.rows, rgb.cols);
    const int x0 = PanoramaCropX0(ref.crop_bearing_deg, ref.pano_heading_deg, w, cw);
    cv::Mat crop(rgb.rows, cw, CV_8UC3);
    const int first = std::min(cw, w - x0);
    rgb(cv::Rect(x0, 0, first, rgb.rows)).copyTo(crop(cv::Rect(0, 0, first, rgb.rows)));
    if (first < cw) rgb(cv::Rect(0, 0, cw - first, rgb.rows)).copyTo(crop(cv::Rect(first, 0, cw - first, rgb.rows)));
    rgb = crop;
  }
  cv::Mat resized;
  const bool shrink = rgb.cols > 2 * size || rgb.rows > 2 * size;
  cv::resize(rgb, resized, cv::Size(size, size), 0, 0, shrink ? cv::INTER_AREA : cv::INTER_LINEAR);
  std::vector<uint8_t> pixels(resized.data, resized.data + static_cast<size_t>(size) * size * 3);
  if (!resized.isContinuous()) MEGALOC_THROW(ImageError, ref.path << ": internal: non-contiguous image");
  if (options.enabled) {
    std::mt19937_64 rng(seed);
    for (int k = 0; k < options.num_ops; ++k) {
      const int op = std::uniform_int_distribution<int>(0, kNumAugmentOps - 1)(rng);
      const int sign = std::uniform_int_distribution<int>(0, 1)(rng) ? -1 : 1;
      ApplyAugmentOp(static_cast<AugmentOp>(op), sign, options, size, size, &pixels);
    }
  }
  std::vector<float> out(static_cast<size_t>(3) * size * size);
  const size_t plane = static_cast<size_t>(size) * size;
  for (size_t i = 0; i < plane; ++i) {
    for (int c = 0; c < 3; ++c) out[c * plane + i] = (pixels[i * 3 + c] / 255.0f - kMean[c]) / kStd[c];
  }
  return out;
}

}  // namespace megaloc
