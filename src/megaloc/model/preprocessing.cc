// Image decoding and preprocessing (megaloc.h): PIL-compatible decoding for the authors' path,
// hloc's OpenCV path for resize_max, ImageNet normalisation with the exact float32 op order.

#include <ATen/ATen.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <iostream>
#include <mutex>
#include <sstream>

#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "megaloc/model/image_codecs.h"
#include "megaloc/model/megaloc.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"

namespace megaloc {

namespace {

// torchvision Normalize(ImageNet): mean/std are Python doubles turned into float32 tensors.
const float kMean[3] = {static_cast<float>(0.485), static_cast<float>(0.456),
                        static_cast<float>(0.406)};
const float kStd[3] = {static_cast<float>(0.229), static_cast<float>(0.224),
                       static_cast<float>(0.225)};

// ToTensor (u / 255, float32 division) then Normalize (subtract, then divide), per element.
inline float NormalizeValue(float value_0_255, int channel) {
  const float scaled = value_0_255 / 255.0f;  // a true division, as torch (no reciprocal)
  const float centred = scaled - kMean[channel];
  return centred / kStd[channel];
}

const std::array<std::array<float, 256>, 3>& NormalizeLut() {
  static const std::array<std::array<float, 256>, 3> lut = [] {
    std::array<std::array<float, 256>, 3> table{};
    for (int c = 0; c < 3; ++c) {
      for (int u = 0; u < 256; ++u) table[c][u] = NormalizeValue(static_cast<float>(u), c);
    }
    return table;
  }();
  return lut;
}

// Planar normalised image from interleaved 8-bit RGB.
std::vector<float> NormalizeRgb8(const uint8_t* rgb, int width, int height) {
  const auto& lut = NormalizeLut();
  const size_t plane = static_cast<size_t>(width) * height;
  std::vector<float> data(3 * plane);
  for (size_t i = 0; i < plane; ++i) {
    data[i] = lut[0][rgb[3 * i]];
    data[plane + i] = lut[1][rgb[3 * i + 1]];
    data[2 * plane + i] = lut[2][rgb[3 * i + 2]];
  }
  return data;
}

// A JPEG whose last scan has no end-of-image marker after it was cut short (PIL raises "image file
// is truncated"; libjpeg only warns and fills the rest with grey).
bool IsTruncatedJpeg(const std::string& bytes) {
  const size_t size = bytes.size();
  size_t last_sos = std::string::npos;
  for (size_t i = 0; i + 1 < size; ++i) {
    if (static_cast<uint8_t>(bytes[i]) == 0xFF && static_cast<uint8_t>(bytes[i + 1]) == 0xDA) {
      last_sos = i;
    }
  }
  if (last_sos == std::string::npos) return true;
  for (size_t i = last_sos + 2; i + 1 < size; ++i) {
    if (static_cast<uint8_t>(bytes[i]) == 0xFF && static_cast<uint8_t>(bytes[i + 1]) == 0xD9) {
      return false;
    }
  }
  return true;
}

uint32_t BigEndian32(const std::string& bytes, size_t at) {
  return (static_cast<uint32_t>(static_cast<uint8_t>(bytes[at])) << 24) |
         (static_cast<uint32_t>(static_cast<uint8_t>(bytes[at + 1])) << 16) |
         (static_cast<uint32_t>(static_cast<uint8_t>(bytes[at + 2])) << 8) |
         static_cast<uint32_t>(static_cast<uint8_t>(bytes[at + 3]));
}
uint32_t LittleEndian(const std::string& bytes, size_t at, int n) {
  uint32_t value = 0;
  for (int i = n - 1; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(bytes[at + i]);
  return value;
}

// A PNG must reach its IEND chunk (libpng may decode all rows of a file cut after its last IDAT).
// The chunks are walked from the signature, so data after IEND is allowed, as PIL allows it.
bool IsTruncatedPng(const std::string& bytes) {
  size_t at = 8;
  while (at + 12 <= bytes.size()) {
    const uint64_t length = BigEndian32(bytes, at);
    if (std::memcmp(bytes.data() + at + 4, "IEND", 4) == 0) return false;
    at += 12 + length;
  }
  return true;
}

// Width and height from the header of a JPEG, PNG, WebP or BMP file, without decoding it; false
// for other formats or headers too short to tell.
bool ImageHeaderSize(const std::string& bytes, uint64_t* width, uint64_t* height) {
  const size_t size = bytes.size();
  if (size >= 24 && static_cast<uint8_t>(bytes[0]) == 0x89 && bytes.compare(12, 4, "IHDR") == 0) {
    *width = BigEndian32(bytes, 16);
    *height = BigEndian32(bytes, 20);
    return true;
  }
  if (size >= 4 && static_cast<uint8_t>(bytes[0]) == 0xFF && static_cast<uint8_t>(bytes[1]) == 0xD8) {
    size_t at = 2;
    while (at + 4 <= size) {
      if (static_cast<uint8_t>(bytes[at]) != 0xFF) return false;
      const uint8_t marker = static_cast<uint8_t>(bytes[at + 1]);
      if (marker == 0xFF) {  // fill byte
        ++at;
        continue;
      }
      if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {  // no length field
        at += 2;
        continue;
      }
      const size_t length = (static_cast<uint8_t>(bytes[at + 2]) << 8) | static_cast<uint8_t>(bytes[at + 3]);
      const bool sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 &&
                       marker != 0xCC;
      if (sof) {
        if (at + 9 > size) return false;
        *height = (static_cast<uint8_t>(bytes[at + 5]) << 8) | static_cast<uint8_t>(bytes[at + 6]);
        *width = (static_cast<uint8_t>(bytes[at + 7]) << 8) | static_cast<uint8_t>(bytes[at + 8]);
        return true;
      }
      if (marker == 0xDA || marker == 0xD9) return false;
      at += 2 + length;
    }
    return false;
  }
  if (size >= 30 && bytes.compare(0, 4, "RIFF") == 0 && bytes.compare(8, 4, "WEBP") == 0) {
    if (bytes.compare(12, 4, "VP8X") == 0) {
      *width = uint64_t{LittleEndian(bytes, 24, 3)} + 1;
      *height = uint64_t{LittleEndian(bytes, 27, 3)} + 1;
      return true;
    }
    if (bytes.compare(12, 4, "VP8L") == 0 && static_cast<uint8_t>(bytes[20]) == 0x2F) {
      const uint32_t bits = LittleEndian(bytes, 21, 4);
      *width = (bits & 0x3FFF) + 1;
      *height = ((bits >> 14) & 0x3FFF) + 1;
      return true;
    }
    if (bytes.compare(12, 4, "VP8 ") == 0) {
      *width = LittleEndian(bytes, 26, 2) & 0x3FFF;
      *height = LittleEndian(bytes, 28, 2) & 0x3FFF;
      return true;
    }
    return false;
  }
  if (size >= 26 && bytes.compare(0, 2, "BM") == 0) {
    const auto w = static_cast<int32_t>(LittleEndian(bytes, 18, 4));
    const auto h = static_cast<int32_t>(LittleEndian(bytes, 22, 4));
    *width = static_cast<uint64_t>(std::abs(static_cast<int64_t>(w)));
    *height = static_cast<uint64_t>(std::abs(static_cast<int64_t>(h)));
    return true;
  }
  return false;
}

void CheckImagePixels(const std::string& path, uint64_t width, uint64_t height,
                      int64_t max_image_pixels) {
  if (max_image_pixels > 0 && width * height > static_cast<uint64_t>(max_image_pixels)) {
    MEGALOC_THROW(ImageError, path << ": image of " << width << "x" << height << " = "
                                   << width * height << " pixels exceeds --max_image_pixels "
                                   << max_image_pixels << " (a decompression bomb?)");
  }
}

bool StartsWith(const std::string& bytes, const unsigned char* magic, size_t n) {
  return bytes.size() >= n && std::memcmp(bytes.data(), magic, n) == 0;
}

// Re-emits what a decoding library wrote to stderr as warnings naming the file. Lines in our own
// format ("ERROR: ", "WARNING: ") or without a diagnostic word were written meanwhile by another
// thread of the program (e.g. a progress line) and go back to stderr unchanged.
void EmitLibraryOutput(const std::string& path, const std::string& captured) {
  std::istringstream lines(captured);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    std::string lower = line;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    const bool ours = line.rfind("ERROR: ", 0) == 0 || line.rfind("WARNING: ", 0) == 0;
    const bool diagnostic = lower.find("warning") != std::string::npos ||
                            lower.find("error") != std::string::npos ||
                            lower.find("corrupt") != std::string::npos ||
                            lower.find("invalid") != std::string::npos ||
                            lower.find("unknown") != std::string::npos ||
                            lower.find("premature") != std::string::npos ||
                            lower.find("libpng") != std::string::npos ||
                            lower.find("tiff") != std::string::npos;
    if (!ours && diagnostic) {
      MEGALOC_LOG(Warning) << path << ": " << line;
    } else {
      std::lock_guard<std::mutex> lock(internal::LogMutex());
      std::cerr << line << std::endl;
    }
  }
}

cv::Mat Decode(const std::string& path, const std::string& bytes, int flags) {
  // OpenCV's own log lines ("imread_: ...", "[ WARN:0@...]") name no file; failures are reported
  // by the ImageError below instead.
  static const bool silenced = [] {
    cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
    return true;
  }();
  (void)silenced;
  cv::Mat image;
  std::string error;
  // libpng and the other codecs OpenCV wraps print their warnings (e.g. "libpng warning: iCCP:
  // known incorrect sRGB profile") straight to stderr: capture them and name the file.
  const std::string captured = internal::CaptureStderr([&] {
    try {
      const cv::Mat buffer(1, static_cast<int>(bytes.size()), CV_8UC1,
                           const_cast<char*>(bytes.data()));
      image = cv::imdecode(buffer, flags);
    } catch (const cv::Exception& exception) {
      error = exception.what();
    }
  });
  if (!captured.empty()) EmitLibraryOutput(path, captured);
  if (!error.empty()) MEGALOC_THROW(ImageError, path << ": cannot decode image (" << error << ")");
  return image;
}

// Interleaved RGB uint8 like PIL Image.open(p).convert("RGB"): grey replicated, alpha dropped,
// palette expanded, 16-bit RGB(A) -> high byte, 16-bit grey ("I" mode) -> clipped to 255.
cv::Mat ToRgb8Pil(const cv::Mat& image) {
  cv::Mat eight;
  if (image.depth() == CV_8U) {
    eight = image;
  } else if (image.depth() == CV_16U) {
    if (image.channels() == 1) {
      image.convertTo(eight, CV_8U);  // saturating: min(v, 255), as PIL's I -> RGB
    } else {
      cv::Mat shifted(image.size(), CV_MAKETYPE(CV_8U, image.channels()));
      const int count = image.rows * image.cols * image.channels();
      cv::Mat contiguous = image.isContinuous() ? image : image.clone();
      const uint16_t* src = contiguous.ptr<uint16_t>();
      uint8_t* dst = shifted.ptr<uint8_t>();
      for (int i = 0; i < count; ++i) dst[i] = static_cast<uint8_t>(src[i] >> 8);
      eight = shifted;
    }
  } else {
    return cv::Mat();
  }
  cv::Mat rgb;
  switch (eight.channels()) {
    case 1: cv::cvtColor(eight, rgb, cv::COLOR_GRAY2RGB); break;
    case 3: cv::cvtColor(eight, rgb, cv::COLOR_BGR2RGB); break;
    case 4: cv::cvtColor(eight, rgb, cv::COLOR_BGRA2RGB); break;
    default: return cv::Mat();
  }
  return rgb;
}

}  // namespace

bool PreprocessingOptions::Check() const {
  CHECK_OPTION_GT(resize_max, 0);
  CHECK_OPTION_GT(width, 0);
  CHECK_OPTION_GT(height, 0);
  CHECK_OPTION_GE(max_image_pixels, 0);
  return true;
}

std::string PreprocessingOptions::ToString() const {
  std::ostringstream out;
  switch (mode) {
    case ResizeMode::kNative: out << "native"; break;
    case ResizeMode::kResizeMax: out << "resize_max=" << resize_max; break;
    case ResizeMode::kFixed: out << "resize=" << width << "x" << height; break;
  }
  return out.str();
}

PreprocessedImage PreprocessRgbImage(const uint8_t* rgb, int width, int height,
                                     const PreprocessingOptions& options) {
  MEGALOC_CHECK_MSG(options.Check(), "invalid preprocessing options");
  MEGALOC_CHECK_MSG(rgb != nullptr && width > 0 && height > 0,
                    "empty image (" << width << "x" << height << ")");
  PreprocessedImage image;
  image.original_width = width;
  image.original_height = height;
  image.width = width;
  image.height = height;

  if (options.mode == ResizeMode::kResizeMax && std::max(width, height) > options.resize_max) {
    // hloc ImageDataset: float32 image, scale = resize_max / max(w, h) (double), Python round
    // (half to even), cv2.resize INTER_AREA on the float 0-255 image, then / 255 and Normalize.
    const double scale = static_cast<double>(options.resize_max) / std::max(width, height);
    const int new_width = static_cast<int>(std::nearbyint(width * scale));
    const int new_height = static_cast<int>(std::nearbyint(height * scale));
    const cv::Mat source8(height, width, CV_8UC3, const_cast<uint8_t*>(rgb));
    cv::Mat source;
    source8.convertTo(source, CV_32FC3);
    cv::Mat resized;
    cv::resize(source, resized, cv::Size(new_width, new_height), 0, 0, cv::INTER_AREA);
    image.width = new_width;
    image.height = new_height;
    const size_t plane = static_cast<size_t>(new_width) * new_height;
    image.data.resize(3 * plane);
    for (int y = 0; y < new_height; ++y) {
      const float* row = resized.ptr<float>(y);
      for (int x = 0; x < new_width; ++x) {
        const size_t i = static_cast<size_t>(y) * new_width + x;
        for (int c = 0; c < 3; ++c) image.data[c * plane + i] = NormalizeValue(row[3 * x + c], c);
      }
    }
    return image;
  }

  image.data = NormalizeRgb8(rgb, width, height);
  if (options.mode == ResizeMode::kFixed) {
    // torchvision Resize([h, w], antialias=True) on the normalised float tensor.
    at::Tensor input = at::from_blob(image.data.data(), {1, 3, height, width}, at::kFloat);
    at::Tensor resized = at::_upsample_bilinear2d_aa(input, {options.height, options.width},
                                                     /*align_corners=*/false, c10::nullopt,
                                                     c10::nullopt)
                             .contiguous();
    image.width = options.width;
    image.height = options.height;
    image.data.assign(resized.data_ptr<float>(), resized.data_ptr<float>() + resized.numel());
  }
  return image;
}

void ReadRgbImage(const std::string& path, bool hloc_decoding, std::vector<uint8_t>* rgb_out,
                  int* width, int* height, int64_t max_image_pixels) {
  if (!FileExists(path)) {
    if (DirectoryExists(path)) MEGALOC_THROW(ImageError, path << ": is a directory, not an image");
    std::string target;
    if (IsDanglingSymlink(path, &target)) {
      MEGALOC_THROW(ImageError, path << ": dangling symbolic link (its target '" << target
                                     << "' does not exist)");
    }
    MEGALOC_THROW(ImageError, path << ": no such image file");
  }
  std::string bytes;
  try {
    bytes = ReadFileToString(path);
  } catch (const IoError& error) {
    MEGALOC_THROW(ImageError, error.what());
  }
  if (bytes.empty()) MEGALOC_THROW(ImageError, path << ": empty file (0 bytes)");
  static const unsigned char kJpegMagic[] = {0xFF, 0xD8, 0xFF};
  static const unsigned char kPngMagic[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (StartsWith(bytes, kJpegMagic, 3) && IsTruncatedJpeg(bytes)) {
    MEGALOC_THROW(ImageError, path << ": truncated JPEG file (no end-of-image marker)");
  }
  if (StartsWith(bytes, kPngMagic, 8) && IsTruncatedPng(bytes)) {
    MEGALOC_THROW(ImageError, path << ": truncated PNG file (no IEND chunk)");
  }
  uint64_t header_width = 0;
  uint64_t header_height = 0;
  if (ImageHeaderSize(bytes, &header_width, &header_height)) {
    CheckImagePixels(path, header_width, header_height, max_image_pixels);
  }

  static const unsigned char kJpegSoi[] = {0xFF, 0xD8};
  if (StartsWith(bytes, kJpegSoi, 2)) {
    // libjpeg directly (image_codecs.h): its warnings named, CMYK as PIL (or as OpenCV for hloc).
    std::vector<std::string> warnings;
    int w = 0;
    int h = 0;
    internal::DecodeJpegRgb(path, bytes,
                            hloc_decoding ? internal::CmykConversion::kOpenCv
                                          : internal::CmykConversion::kPil,
                            max_image_pixels, rgb_out, &w, &h, &warnings);
    for (const std::string& warning : warnings) {
      MEGALOC_LOG(Warning) << path << ": " << warning << " (libjpeg; the image was decoded)";
    }
    CheckImagePixels(path, w, h, max_image_pixels);
    *width = w;
    *height = h;
    return;
  }
  if (internal::IsAnimatedWebp(bytes)) {
    // OpenCV refuses animated WebP; PIL decodes its first frame (libwebpdemux, image_codecs.h).
    internal::DecodeAnimatedWebpFirstFrameRgb(path, bytes, max_image_pixels, rgb_out, width, height);
    return;
  }

  cv::Mat rgb;
  if (hloc_decoding) {
    // hloc read_image: cv2.imread(IMREAD_COLOR | IMREAD_IGNORE_ORIENTATION), BGR -> RGB.
    const cv::Mat bgr = Decode(path, bytes, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
    if (bgr.empty()) {
      MEGALOC_THROW(ImageError, path << ": not a decodable image (unknown format or corrupt data)");
    }
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  } else {
    // PIL Image.open(p).convert("RGB"); IMREAD_UNCHANGED never applies EXIF orientation.
    const cv::Mat raw = Decode(path, bytes, cv::IMREAD_UNCHANGED);
    if (raw.empty()) {
      MEGALOC_THROW(ImageError, path << ": not a decodable image (unknown format or corrupt data)");
    }
    rgb = ToRgb8Pil(raw);
    if (rgb.empty()) {
      const cv::Mat bgr = Decode(path, bytes, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
      if (bgr.empty()) MEGALOC_THROW(ImageError, path << ": unsupported pixel format");
      cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    }
  }
  CheckImagePixels(path, rgb.cols, rgb.rows, max_image_pixels);
  if (!rgb.isContinuous()) rgb = rgb.clone();
  *width = rgb.cols;
  *height = rgb.rows;
  rgb_out->assign(rgb.ptr<uint8_t>(), rgb.ptr<uint8_t>() + static_cast<size_t>(rgb.total()) * 3);
}

PreprocessedImage LoadAndPreprocessImage(const std::string& path,
                                         const PreprocessingOptions& options) {
  std::vector<uint8_t> rgb;
  int width = 0;
  int height = 0;
  ReadRgbImage(path, options.mode == ResizeMode::kResizeMax, &rgb, &width, &height,
               options.max_image_pixels);
  try {
    return PreprocessRgbImage(rgb.data(), width, height, options);
  } catch (const InvalidArgument& error) {
    MEGALOC_THROW(ImageError, path << ": " << error.what());
  }
}

}  // namespace megaloc
