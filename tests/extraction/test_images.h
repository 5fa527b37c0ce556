#pragma once

// Synthetic test images for the extraction tests (PNG: lossless, exact decoding).

#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "megaloc/util/file_utils.h"
#include "tests/common/testing.h"

namespace megaloc {
namespace testing {

// A deterministic "scene": gradient sky, facade-like rectangles, an ellipse and noise.
inline cv::Mat MakeSceneImage(int width, int height, int seed) {
  cv::RNG rng(static_cast<uint64_t>(seed) * 7919 + 17);
  cv::Mat image(height, width, CV_8UC3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      image.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<uchar>(120 + 100 * y / height),
                                            static_cast<uchar>(80 + 60 * x / width),
                                            static_cast<uchar>(60 + (seed * 37) % 120));
    }
  }
  for (int i = 0; i < 6; ++i) {
    const cv::Point a(rng.uniform(0, width), rng.uniform(0, height));
    const cv::Point b(rng.uniform(0, width), rng.uniform(0, height));
    cv::rectangle(image, a, b, cv::Scalar(rng.uniform(0, 255), rng.uniform(0, 255), rng.uniform(0, 255)), -1);
  }
  cv::ellipse(image, cv::Point(width / 2, height / 2), cv::Size(width / 5, height / 6), seed * 10, 0, 360,
              cv::Scalar(rng.uniform(0, 255), 40, 200), -1);
  cv::Mat noise(height, width, CV_8UC3);
  rng.fill(noise, cv::RNG::UNIFORM, 0, 20);
  image += noise;
  return image;
}

inline void WriteSceneImage(const std::string& root, const std::string& name, int width, int height,
                            int seed) {
  const size_t slash = name.rfind('/');
  if (slash != std::string::npos) CreateDirectories(JoinPaths(root, name.substr(0, slash)));
  cv::imwrite(JoinPaths(root, name), MakeSceneImage(width, height, seed));
}

inline std::string TinyWeightsPath() {
  return TestDataPath("megaloc_tiny/megaloc_tiny_v2.safetensors");
}

}  // namespace testing
}  // namespace megaloc
