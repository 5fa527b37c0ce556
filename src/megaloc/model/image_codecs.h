#pragma once

// Internal (model/): decoders used by ReadRgbImage (preprocessing.cc) where OpenCV's own would
// differ from the reference or would print to stderr without the file name. Torch-free.
//
//  * JPEG through libjpeg directly (the libjpeg-turbo OpenCV links; same default settings, so
//    YCbCr and grey JPEGs decode to the same bytes as cv::imdecode): libjpeg's warnings ("Corrupt
//    JPEG data: ...") are returned to the caller, which names the file; CMYK/YCCK JPEGs (Adobe
//    inverted samples) are converted with PIL's arithmetic or with OpenCV's.
//  * The first frame of an animated WebP through libwebpdemux, as PIL does (optional:
//    MEGALOC_WEBP_DEMUX_ENABLED).
//  * A capture of what a library writes to the process's stderr (fd 2) during a call.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace megaloc {
namespace internal {

// How 4-component (CMYK/YCCK) JPEGs become RGB. libjpeg returns Adobe-inverted CMYK samples
// (c, m, y, k) in 0..255 (0 = full ink).
enum class CmykConversion {
  // Pillow (Image.open(p).convert("RGB")): rawmode "CMYK;I" inverts the samples (C = 255 - c, ...),
  // then per channel CLIP8(nk - MULDIV255(C, nk)) with nk = 255 - K and
  // MULDIV255(a, b) = (t = a * b + 128, ((t >> 8) + t) >> 8), i.e. a rounded division by 255.
  kPil,
  // OpenCV (cv2.imread, hloc): per channel k - ((255 - c) * k >> 8) on the raw samples.
  kOpenCv,
};

// Decodes the JPEG `bytes` to interleaved 8-bit RGB (height * width * 3). Grey JPEGs are
// replicated to three channels. An image of more than `max_pixels` (> 0) pixels is refused from the
// frame header libjpeg reads, before decoding (ImageError "... exceeds --max_image_pixels ..."). libjpeg's warnings (corrupt but decodable data) are appended to
// `warnings` (at most 8, then a count). Throws ImageError naming `path` and libjpeg's reason for
// undecodable data.
void DecodeJpegRgb(const std::string& path,
                   const std::string& bytes,
                   CmykConversion cmyk,
                   int64_t max_pixels,
                   std::vector<uint8_t>* rgb,
                   int* width,
                   int* height,
                   std::vector<std::string>* warnings);

// True if `bytes` is a WebP file whose VP8X header has the animation flag.
bool IsAnimatedWebp(const std::string& bytes);

// True if this build decodes animated WebP (libwebpdemux was found).
bool AnimatedWebpSupported();

// The first frame of an animated WebP as PIL decodes it (WebPAnimDecoder, RGBA canvas; convert("RGB")
// drops alpha) to interleaved 8-bit RGB. `max_pixels` (> 0) refuses larger canvases before decoding.
// Throws ImageError naming `path` (corrupt file; or "animated WebP is not supported" in a build
// without libwebpdemux).
void DecodeAnimatedWebpFirstFrameRgb(const std::string& path,
                                     const std::string& bytes,
                                     int64_t max_pixels,
                                     std::vector<uint8_t>* rgb,
                                     int* width,
                                     int* height);

// Runs `body` with the process's stderr (file descriptor 2) redirected to an anonymous temporary
// file and returns what was written to it meanwhile (by C libraries such as libpng). Captures are
// serialised process-wide and hold the MEGALOC_LOG lock, so no MEGALOC_LOG line of another thread
// is captured; `body` must not use MEGALOC_LOG. If redirection is impossible, `body` runs as is.
std::string CaptureStderr(const std::function<void()>& body);

}  // namespace internal
}  // namespace megaloc
