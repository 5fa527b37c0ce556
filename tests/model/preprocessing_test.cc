// Decoding and preprocessing (torch-free API of megaloc.h).

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "megaloc/model/image_codecs.h"
#include "megaloc/model/megaloc.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/npy.h"
#include "tests/common/testing.h"

namespace megaloc {
namespace testing {
namespace {

std::string Tiny(const std::string& relative) { return TestDataPath("megaloc_tiny/" + relative); }

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string ImageErrorOf(const std::string& path) {
  try {
    PreprocessingOptions options;
    options.mode = ResizeMode::kNative;
    LoadAndPreprocessImage(path, options);
  } catch (const ImageError& error) {
    return error.what();
  }
  ADD_FAILURE() << "no ImageError for " << path;
  return "";
}

TEST(PreprocessingTest, NormalisationIsBitExactWithTorchvision) {
  const NpyArray lut = ReadNpy(Tiny("normalize_lut.npy"));
  ASSERT_EQ(lut.shape, (std::vector<int64_t>{3, 256}));
  const std::vector<float> expected = lut.As<float>();
  std::vector<uint8_t> rgb(256 * 3);
  for (int u = 0; u < 256; ++u) rgb[3 * u] = rgb[3 * u + 1] = rgb[3 * u + 2] = u;
  PreprocessingOptions options;
  options.mode = ResizeMode::kNative;
  const PreprocessedImage image = PreprocessRgbImage(rgb.data(), 256, 1, options);
  ASSERT_EQ(image.data.size(), expected.size());
  int mismatches = 0;
  for (size_t i = 0; i < expected.size(); ++i) mismatches += image.data[i] != expected[i];
  EXPECT_EQ(mismatches, 0);
  // kResizeMax without resizing uses the same values (hloc: float image / 255 then Normalize).
  options.mode = ResizeMode::kResizeMax;
  const PreprocessedImage hloc = PreprocessRgbImage(rgb.data(), 256, 1, options);
  EXPECT_EQ(hloc.data, image.data);
}

TEST(PreprocessingTest, NativePngInputMatchesFixture) {
  PreprocessingOptions options;
  options.mode = ResizeMode::kNative;
  const PreprocessedImage image = LoadAndPreprocessImage(Tiny("images/test_100x70.png"), options);
  EXPECT_EQ(image.width, 100);
  EXPECT_EQ(image.height, 70);
  EXPECT_EQ(image.original_width, 100);
  const NpyArray expected = ReadNpy(Tiny("native/test_100x70/input.npy"));
  EXPECT_EQ(expected.shape, (std::vector<int64_t>{1, 3, 70, 100}));
  EXPECT_EQ(image.data, expected.As<float>());
}

TEST(PreprocessingTest, GreyImagesBecomeThreeEqualChannels) {
  for (const char* name : {"images/test_257x189_gray.png", "images/test_257x189_gray.jpg"}) {
    for (bool hloc : {false, true}) {
      std::vector<uint8_t> rgb;
      int width = 0;
      int height = 0;
      ReadRgbImage(Tiny(name), hloc, &rgb, &width, &height);
      ASSERT_EQ(width, 257);
      ASSERT_EQ(height, 189);
      int unequal = 0;
      for (int i = 0; i < width * height; ++i) {
        unequal += rgb[3 * i] != rgb[3 * i + 1] || rgb[3 * i] != rgb[3 * i + 2];
      }
      EXPECT_EQ(unequal, 0) << name;
    }
  }
  // The grey PNG decodes to the same grey values either way.
  std::vector<uint8_t> pil;
  std::vector<uint8_t> hloc;
  int w = 0;
  int h = 0;
  ReadRgbImage(Tiny("images/test_257x189_gray.png"), false, &pil, &w, &h);
  ReadRgbImage(Tiny("images/test_257x189_gray.png"), true, &hloc, &w, &h);
  EXPECT_EQ(pil, hloc);
}

// PIL (libjpeg-turbo, ISLOW DCT, fancy upsampling) vs OpenCV's libjpeg: spec allows +-1.
TEST(PreprocessingTest, JpegDecodingMatchesPil) {
  ModelOptions model_options;
  model_options.weights_path = Tiny("megaloc_tiny_v2.safetensors");
  model_options.num_threads = 1;
  MegaLocModel model(model_options);
  for (const char* stem : {"test_511x385", "test_257x189_gray"}) {
    std::vector<uint8_t> rgb;
    int width = 0;
    int height = 0;
    ReadRgbImage(Tiny(std::string("images/") + stem + ".jpg"), false, &rgb, &width, &height);
    const NpyArray expected = ReadNpy(Tiny(std::string("jpeg/") + stem + "/decoded_rgb_uint8.npy"));
    ASSERT_EQ(expected.shape, (std::vector<int64_t>{height, width, 3}));
    const std::vector<uint8_t> pil = expected.As<uint8_t>();
    int differing = 0;
    int max_diff = 0;
    for (size_t i = 0; i < pil.size(); ++i) {
      const int diff = std::abs(static_cast<int>(pil[i]) - static_cast<int>(rgb[i]));
      differing += diff != 0;
      max_diff = std::max(max_diff, diff);
    }
    std::printf("[jpeg] %s: %d of %zu values differ from PIL, max |diff| = %d\n", stem, differing,
                pil.size(), max_diff);
    EXPECT_LE(max_diff, 1) << stem;

    PreprocessingOptions options;
    options.mode = ResizeMode::kNative;
    const Eigen::VectorXf descriptor =
        model.Extract(LoadAndPreprocessImage(Tiny(std::string("images/") + stem + ".jpg"), options));
    const std::vector<float> reference =
        ReadNpy(Tiny(std::string("jpeg/") + stem + "/descriptor.npy")).As<float>();
    double diff = 0.0;
    for (int i = 0; i < descriptor.size(); ++i) {
      diff = std::max(diff, std::abs(static_cast<double>(descriptor[i]) - reference[i]));
    }
    std::printf("[jpeg] %s: descriptor max|diff| = %.3g\n", stem, diff);
    EXPECT_LE(diff, differing == 0 ? 1e-5 : 4e-4) << stem;
  }
}

TEST(PreprocessingTest, BrokenFilesAreImageErrorsNamingTheFile) {
  const std::string dir = TempDir();
  const std::string png = ReadFileToString(Tiny("images/test_100x70.png"));
  const std::string jpg = ReadFileToString(Tiny("images/test_257x189_gray.jpg"));
  struct Case {
    std::string name;
    std::string bytes;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"empty.png", "", "empty file"},
      {"half.png", png.substr(0, png.size() / 2), "truncated PNG"},
      {"no_iend.png", png.substr(0, png.size() - 12), "truncated PNG"},
      {"half.jpg", jpg.substr(0, jpg.size() / 2), "truncated JPEG"},
      {"no_eoi.jpg", jpg.substr(0, jpg.size() - 2), "truncated JPEG"},
      {"text.jpg", "hello, I am not an image\n", "not a decodable image"},
      {"random.bin", std::string(1000, '\x17'), "not a decodable image"},
  };
  for (const Case& c : cases) {
    const std::string path = JoinPaths(dir, c.name);
    WriteBytes(path, c.bytes);
    const std::string message = ImageErrorOf(path);
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(c.reason), std::string::npos) << c.name << ": " << message;
  }
  const std::string missing = JoinPaths(dir, "missing.png");
  EXPECT_NE(ImageErrorOf(missing).find("no such image file"), std::string::npos);
  EXPECT_NE(ImageErrorOf(dir).find("directory"), std::string::npos);
  // A dangling symbolic link: named, and said to be dangling (with its target).
  const std::string dangling = JoinPaths(dir, "dangling.jpg");
  ASSERT_EQ(symlink("gone/target.jpg", dangling.c_str()), 0);
  const std::string message = ImageErrorOf(dangling);
  EXPECT_NE(message.find(dangling + ": dangling symbolic link"), std::string::npos) << message;
  EXPECT_NE(message.find("gone/target.jpg"), std::string::npos) << message;
}

// PIL convert("RGB") semantics for 16-bit and alpha PNGs (Pillow 9.4): 16-bit RGB(A) keeps the
// high byte, 16-bit grey opens as mode "I" whose RGB conversion clips to 255, alpha is dropped.
TEST(PreprocessingTest, SixteenBitAndAlphaPngs) {
  const std::string dir = TempDir();
  const std::vector<uint16_t> grey_values = {0, 100, 255, 256, 1000, 40000};
  cv::Mat grey16(1, static_cast<int>(grey_values.size()), CV_16UC1);
  for (size_t i = 0; i < grey_values.size(); ++i) grey16.at<uint16_t>(0, i) = grey_values[i];
  const std::string grey_path = JoinPaths(dir, "grey16.png");
  ASSERT_TRUE(cv::imwrite(grey_path, grey16));
  std::vector<uint8_t> rgb;
  int width = 0;
  int height = 0;
  ReadRgbImage(grey_path, false, &rgb, &width, &height);
  const std::vector<uint8_t> pil_expected = {0, 100, 255, 255, 255, 255};
  for (size_t i = 0; i < grey_values.size(); ++i) {
    EXPECT_EQ(rgb[3 * i], pil_expected[i]) << grey_values[i];
    EXPECT_EQ(rgb[3 * i + 2], pil_expected[i]);
  }
  ReadRgbImage(grey_path, true, &rgb, &width, &height);  // hloc: cv2 IMREAD_COLOR = high byte
  for (size_t i = 0; i < grey_values.size(); ++i) EXPECT_EQ(rgb[3 * i], grey_values[i] >> 8);

  cv::Mat color16(1, 2, CV_16UC3);
  color16.at<cv::Vec3w>(0, 0) = cv::Vec3w(1000, 20000, 65535);  // BGR
  color16.at<cv::Vec3w>(0, 1) = cv::Vec3w(255, 256, 511);
  const std::string color_path = JoinPaths(dir, "color16.png");
  ASSERT_TRUE(cv::imwrite(color_path, color16));
  for (bool hloc : {false, true}) {
    ReadRgbImage(color_path, hloc, &rgb, &width, &height);
    EXPECT_EQ(std::vector<uint8_t>(rgb.begin(), rgb.end()),
              (std::vector<uint8_t>{255, 20000 >> 8, 1000 >> 8, 1, 1, 0}));
  }

  cv::Mat rgba(1, 2, CV_8UC4);
  rgba.at<cv::Vec4b>(0, 0) = cv::Vec4b(10, 20, 30, 0);    // BGRA, fully transparent
  rgba.at<cv::Vec4b>(0, 1) = cv::Vec4b(40, 50, 60, 128);
  const std::string rgba_path = JoinPaths(dir, "rgba.png");
  ASSERT_TRUE(cv::imwrite(rgba_path, rgba));
  for (bool hloc : {false, true}) {
    ReadRgbImage(rgba_path, hloc, &rgb, &width, &height);
    EXPECT_EQ(rgb, (std::vector<uint8_t>{30, 20, 10, 60, 50, 40}));
  }
}

std::string BigEndianBytes(uint32_t v) {
  return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
}

// Issue 14, bad input 8: a 1.1 MB 20000x20000 PNG decoded to 5.9 GB. The header is checked
// against max_image_pixels (PIL's MAX_IMAGE_PIXELS by default) before anything is decoded.
TEST(PreprocessingTest, DecompressionBombsAreRefusedFromTheHeader) {
  const std::string dir = TempDir();
  // Signature, IHDR of 20000x20000 RGB, IEND: nothing to decode, only the header says the size.
  std::string png("\x89PNG\r\n\x1a\n", 8);
  png += BigEndianBytes(13) + "IHDR" + BigEndianBytes(20000) + BigEndianBytes(20000) +
         std::string("\x08\x02\x00\x00\x00", 5) + BigEndianBytes(0);
  png += BigEndianBytes(0) + "IEND" + BigEndianBytes(0xAE426082);
  const std::string bomb = dir + "/bomb.png";
  WriteBytes(bomb, png);
  const std::string message = ImageErrorOf(bomb);
  EXPECT_NE(message.find(bomb + ": image of 20000x20000 = 400000000 pixels exceeds "
                                "--max_image_pixels 89478485"),
            std::string::npos)
      << message;
  // The same limit for JPEG (SOF header), here a real 100x70 image with a limit of 6999 pixels.
  const cv::Mat image(70, 100, CV_8UC3, cv::Scalar(10, 200, 30));
  std::vector<uint8_t> jpeg;
  ASSERT_TRUE(cv::imencode(".jpg", image, jpeg));
  const std::string small = dir + "/small.jpg";
  WriteBytes(small, std::string(jpeg.begin(), jpeg.end()));
  PreprocessingOptions options;
  options.mode = ResizeMode::kNative;
  options.max_image_pixels = 6999;
  EXPECT_THROW(LoadAndPreprocessImage(small, options), ImageError);
  options.max_image_pixels = 7000;
  EXPECT_EQ(LoadAndPreprocessImage(small, options).width, 100);
  options.max_image_pixels = 0;  // no limit
  EXPECT_EQ(LoadAndPreprocessImage(small, options).height, 70);
  // WebP (VP8L) and BMP headers too.
  for (const char* ext : {".webp", ".bmp", ".png"}) {
    std::vector<uint8_t> encoded;
    ASSERT_TRUE(cv::imencode(ext, image, encoded,
                             std::string(ext) == ".webp" ? std::vector<int>{cv::IMWRITE_WEBP_QUALITY, 101}
                                                         : std::vector<int>{}));
    const std::string path = dir + "/small" + ext;
    WriteBytes(path, std::string(encoded.begin(), encoded.end()));
    options.max_image_pixels = 6999;
    EXPECT_THROW(LoadAndPreprocessImage(path, options), ImageError) << ext;
    options.max_image_pixels = 7000;
    EXPECT_EQ(LoadAndPreprocessImage(path, options).width, 100) << ext;
  }
}

// Issue 14, bad input 10: a PNG with more than 1 KB after IEND was rejected as truncated (PIL
// reads it). The chunks are walked now; a file cut before IEND is still truncated.
TEST(PreprocessingTest, DataAfterPngIendIsAccepted) {
  const std::string dir = TempDir();
  const cv::Mat image(70, 100, CV_8UC3, cv::Scalar(1, 2, 3));
  std::vector<uint8_t> encoded;
  ASSERT_TRUE(cv::imencode(".png", image, encoded));
  const std::string bytes(encoded.begin(), encoded.end());
  WriteBytes(dir + "/trailing.png", bytes + std::string(5000, 'x'));
  PreprocessingOptions options;
  options.mode = ResizeMode::kNative;
  EXPECT_EQ(LoadAndPreprocessImage(dir + "/trailing.png", options).width, 100);
  WriteBytes(dir + "/cut.png", bytes.substr(0, bytes.size() - 12));  // IEND chunk removed
  EXPECT_NE(ImageErrorOf(dir + "/cut.png").find("truncated PNG"), std::string::npos);
}

TEST(PreprocessingTest, ResizeMaxFollowsHloc) {
  PreprocessingOptions options;  // default: hloc resize_max 1024
  EXPECT_EQ(options.mode, ResizeMode::kResizeMax);
  EXPECT_EQ(options.ToString(), "resize_max=1024");
  // 2048 x 1025: scale 0.5, 512.5 -> 512 (Python round, half to even).
  std::vector<uint8_t> rgb(2048 * 1025 * 3, 100);
  PreprocessedImage image = PreprocessRgbImage(rgb.data(), 2048, 1025, options);
  EXPECT_EQ(image.width, 1024);
  EXPECT_EQ(image.height, 512);
  EXPECT_EQ(image.original_width, 2048);
  EXPECT_EQ(image.original_height, 1025);
  // A constant image stays (almost exactly) constant.
  const float lut100 = (100.0f / 255.0f - static_cast<float>(0.485)) / static_cast<float>(0.229);
  EXPECT_NEAR(image.data[0], lut100, 1e-5);
  EXPECT_NEAR(image.data[1024 * 300 + 77], lut100, 1e-5);
  // 1100 x 700 -> 1024 x 652 (651.64).
  rgb.assign(1100 * 700 * 3, 7);
  image = PreprocessRgbImage(rgb.data(), 1100, 700, options);
  EXPECT_EQ(image.width, 1024);
  EXPECT_EQ(image.height, 652);
  // Never upscales.
  rgb.assign(640 * 480 * 3, 7);
  image = PreprocessRgbImage(rgb.data(), 640, 480, options);
  EXPECT_EQ(image.width, 640);
  EXPECT_EQ(image.height, 480);
}

TEST(PreprocessingTest, FixedSizeAndOptions) {
  PreprocessingOptions options;
  options.mode = ResizeMode::kFixed;
  EXPECT_EQ(options.ToString(), "resize=322x322");
  const PreprocessedImage image = LoadAndPreprocessImage(Tiny("images/test_100x70.png"), options);
  EXPECT_EQ(image.width, 322);
  EXPECT_EQ(image.height, 322);
  EXPECT_EQ(image.original_width, 100);
  EXPECT_EQ(image.original_height, 70);
  EXPECT_EQ(image.data.size(), 3u * 322 * 322);
  options.mode = ResizeMode::kNative;
  EXPECT_EQ(options.ToString(), "native");
  EXPECT_TRUE(options.Check());
  options.resize_max = 0;
  EXPECT_FALSE(options.Check());
}

std::string Decoding(const std::string& name) { return TestDataPath("decoding/" + name); }

// What OpenCV's cv::imdecode(IMREAD_COLOR) gives, as RGB: hloc's cv2.imread.
std::vector<uint8_t> OpenCvRgb(const std::string& bytes) {
  const cv::Mat buffer(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data()));
  const cv::Mat bgr = cv::imdecode(buffer, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return std::vector<uint8_t>(rgb.ptr<uint8_t>(), rgb.ptr<uint8_t>() + rgb.total() * 3);
}

std::vector<uint8_t> ReadRgb(const std::string& path, bool hloc, int* width, int* height) {
  std::vector<uint8_t> rgb;
  ReadRgbImage(path, hloc, &rgb, width, height);
  return rgb;
}

// JPEGs are decoded with libjpeg directly: YCbCr and grey JPEGs (baseline, progressive, restart
// markers, optimised Huffman tables) give exactly OpenCV's bytes, in both modes.
TEST(PreprocessingTest, JpegDecodingEqualsOpenCv) {
  const std::string dir = TempDir();
  cv::Mat image(37, 53, CV_8UC3);
  for (int y = 0; y < image.rows; ++y) {
    for (int x = 0; x < image.cols; ++x) {
      image.at<cv::Vec3b>(y, x) = cv::Vec3b((x * 5) % 256, (y * 7) % 256, ((x * y) * 3) % 256);
    }
  }
  cv::Mat grey;
  cv::cvtColor(image, grey, cv::COLOR_BGR2GRAY);
  struct Case {
    std::string name;
    cv::Mat image;
    std::vector<int> params;
  };
  const std::vector<Case> cases = {
      {"420.jpg", image, {cv::IMWRITE_JPEG_QUALITY, 85}},
      {"q100.jpg", image, {cv::IMWRITE_JPEG_QUALITY, 100}},
      {"optimized.jpg", image, {cv::IMWRITE_JPEG_OPTIMIZE, 1}},
      {"progressive.jpg", image, {cv::IMWRITE_JPEG_PROGRESSIVE, 1}},
      {"restart.jpg", image, {cv::IMWRITE_JPEG_RST_INTERVAL, 2}},
      {"grey.jpg", grey, {}},
  };
  std::vector<std::string> paths = {Tiny("images/test_511x385.jpg"),
                                     Tiny("images/test_257x189_gray.jpg")};
  for (const Case& c : cases) {
    std::vector<uint8_t> encoded;
    ASSERT_TRUE(cv::imencode(".jpg", c.image, encoded, c.params)) << c.name;
    paths.push_back(JoinPaths(dir, c.name));
    WriteBytes(paths.back(), std::string(encoded.begin(), encoded.end()));
  }
  for (const std::string& path : paths) {
    const std::vector<uint8_t> expected = OpenCvRgb(ReadFileToString(path));
    for (const bool hloc : {false, true}) {
      int width = 0;
      int height = 0;
      EXPECT_EQ(ReadRgb(path, hloc, &width, &height), expected) << path << " hloc=" << hloc;
    }
  }
}

// An Adobe CMYK JPEG (inverted samples, as libjpeg writes them): bit for bit PIL's
// convert("RGB") (tests/data/decoding/make_fixtures.py), and OpenCV's bytes in hloc mode.
TEST(PreprocessingTest, CmykJpegMatchesPilExactly) {
  int width = 0;
  int height = 0;
  const std::vector<uint8_t> pil = ReadRgb(Decoding("cmyk.jpg"), false, &width, &height);
  const NpyArray expected = ReadNpy(Decoding("cmyk_pil_rgb.npy"));
  ASSERT_EQ(expected.shape, (std::vector<int64_t>{height, width, 3}));
  EXPECT_EQ(pil, expected.As<uint8_t>());
  const std::vector<uint8_t> hloc = ReadRgb(Decoding("cmyk.jpg"), true, &width, &height);
  EXPECT_EQ(hloc, OpenCvRgb(ReadFileToString(Decoding("cmyk.jpg"))));
  EXPECT_NE(hloc, pil);  // the two conversions do differ on this image (by one or two levels)
}

// An animated WebP: its first frame, as PIL (OpenCV refuses the file), in both modes; a build
// without libwebpdemux says so naming the file.
TEST(PreprocessingTest, AnimatedWebpGivesTheFirstFrameAsPil) {
  const std::string path = Decoding("animated.webp");
  if (!internal::AnimatedWebpSupported()) {
    EXPECT_NE(ImageErrorOf(path).find(path + ": animated WebP is not supported"), std::string::npos);
    return;
  }
  const NpyArray expected = ReadNpy(Decoding("animated_pil_rgb.npy"));
  for (const bool hloc : {false, true}) {
    int width = 0;
    int height = 0;
    EXPECT_EQ(ReadRgb(path, hloc, &width, &height), expected.As<uint8_t>()) << hloc;
    EXPECT_EQ(expected.shape, (std::vector<int64_t>{height, width, 3}));
  }
  // A cut file is an ImageError naming it, never a crash.
  const std::string bytes = ReadFileToString(path);
  const std::string cut = JoinPaths(TempDir(), "cut.webp");
  WriteBytes(cut, bytes.substr(0, bytes.size() / 2));
  EXPECT_NE(ImageErrorOf(cut).find(cut), std::string::npos);
}

// Fuzzing finding (image_fuzzer): a JPEG whose header walk stops at garbage before the frame header
// (which libjpeg skips) declared 626 M pixels and was decoded in full (35 s, 1.9 GB). The frame header
// libjpeg reads is checked before decoding now.
TEST(PreprocessingTest, JpegBombBehindGarbageIsRefusedBeforeDecoding) {
  const std::string path = TestDataPath("fuzz_regressions/jpeg_bomb_behind_garbage.jpg");
  for (const bool hloc : {false, true}) {
    std::vector<uint8_t> rgb;
    int width = 0;
    int height = 0;
    try {
      ReadRgbImage(path, hloc, &rgb, &width, &height);
      ADD_FAILURE() << "no error";
    } catch (const ImageError& error) {
      EXPECT_NE(std::string(error.what()).find(path + ": image of "), std::string::npos) << error.what();
      EXPECT_NE(std::string(error.what()).find("exceeds --max_image_pixels 89478485"), std::string::npos)
          << error.what();
    }
    EXPECT_TRUE(rgb.empty());
  }
}

// Warnings of the codec libraries name the file: a JPEG with extraneous bytes before a marker
// (libjpeg: "Corrupt JPEG data: 3 extraneous bytes before marker 0xda") and a PNG whose ancillary
// chunk has a bad CRC (libpng: "tEXt: CRC error") decode, with one WARNING line naming the file.
TEST(PreprocessingTest, LibraryWarningsNameTheFile) {
  const std::string dir = TempDir();
  cv::Mat image(16, 24, CV_8UC3, cv::Scalar(10, 120, 200));
  std::vector<uint8_t> encoded;
  ASSERT_TRUE(cv::imencode(".jpg", image, encoded));
  std::string jpeg(encoded.begin(), encoded.end());
  const size_t sos = jpeg.find("\xFF\xDA");
  ASSERT_NE(sos, std::string::npos);
  jpeg.insert(sos, std::string("\x00\x01\x02", 3));
  const std::string jpeg_path = JoinPaths(dir, "extraneous.jpg");
  WriteBytes(jpeg_path, jpeg);

  ASSERT_TRUE(cv::imencode(".png", image, encoded));
  std::string png(encoded.begin(), encoded.end());
  const std::string text = std::string("Comment") + '\0' + "hello";
  std::string chunk;
  for (int shift = 24; shift >= 0; shift -= 8) chunk += static_cast<char>((text.size() >> shift) & 0xFF);
  chunk += "tEXt" + text + std::string("\xDE\xAD\xBE\xEF", 4);  // wrong CRC
  png.insert(33, chunk);  // after the signature and IHDR
  const std::string png_path = JoinPaths(dir, "bad_crc.png");
  WriteBytes(png_path, png);

  for (const bool hloc : {false, true}) {
    ::testing::internal::CaptureStderr();
    int width = 0;
    int height = 0;
    ReadRgb(jpeg_path, hloc, &width, &height);
    EXPECT_EQ(width, 24);
    ReadRgb(png_path, hloc, &width, &height);
    EXPECT_EQ(width, 24);
    const std::string log = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(log.find("WARNING: " + jpeg_path + ": Corrupt JPEG data: 3 extraneous bytes before marker 0xda"),
              std::string::npos)
        << log;
    EXPECT_NE(log.find("WARNING: " + png_path + ": libpng warning: tEXt: CRC error"), std::string::npos) << log;
    std::istringstream lines(log);
    std::string line;
    while (std::getline(lines, line)) {
      EXPECT_TRUE(line.find(jpeg_path) != std::string::npos || line.find(png_path) != std::string::npos)
          << "a library line without the file name: " << line;
    }
  }
}

// CaptureStderr returns what C code wrote to fd 2 and restores it.
TEST(PreprocessingTest, CaptureStderrRestoresTheDescriptor) {
  const std::string captured = internal::CaptureStderr([] { std::fprintf(stderr, "from C\n"); });
  EXPECT_EQ(captured, "from C\n");
  ::testing::internal::CaptureStderr();
  std::fprintf(stderr, "after\n");
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "after\n");
}

}  // namespace
}  // namespace testing
}  // namespace megaloc
