#include "megaloc/model/image_codecs.h"

#include <fcntl.h>
#include <setjmp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>

// jpeglib.h needs size_t and FILE declared first.
#include <jpeglib.h>

#ifdef MEGALOC_WEBP_DEMUX_ENABLED
#include <webp/decode.h>
#include <webp/demux.h>
#endif

#include "megaloc/util/logging.h"

namespace megaloc {
namespace internal {
namespace {

constexpr size_t kMaxJpegWarnings = 8;

// libjpeg reports errors through error_exit (which must not return: we longjmp back to
// DecodeJpegRgb) and warnings through emit_message(-1), which by default prints to stderr.
struct JpegErrorManager {
  jpeg_error_mgr pub;  // first member: libjpeg sees a jpeg_error_mgr*
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  std::vector<std::string>* warnings;
  size_t num_warnings;
};

void OnJpegError(j_common_ptr cinfo) {
  auto* manager = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, manager->message);
  longjmp(manager->jump, 1);
}

void OnJpegMessage(j_common_ptr cinfo, int level) {
  if (level >= 0) return;  // trace messages
  auto* manager = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  ++manager->pub.num_warnings;
  if (manager->num_warnings++ >= kMaxJpegWarnings) return;
  char text[JMSG_LENGTH_MAX];
  (*cinfo->err->format_message)(cinfo, text);
  try {
    manager->warnings->emplace_back(text);
  } catch (...) {  // never unwind through libjpeg
  }
}

inline uint8_t PilCmykChannel(int inverted_sample, int k_sample) {
  const int ink = 255 - inverted_sample;  // PIL's "CMYK;I" unpacking
  const int nk = k_sample;                // 255 - K with K = 255 - k_sample
  const int t = ink * nk + 128;
  const int value = nk - (((t >> 8) + t) >> 8);
  return static_cast<uint8_t>(std::clamp(value, 0, 255));
}

inline uint8_t OpenCvCmykChannel(int sample, int k_sample) {
  return static_cast<uint8_t>(k_sample - (((255 - sample) * k_sample) >> 8));
}

}  // namespace

namespace {

// One decode. setjmp lives in RunJpegDecode, whose own locals are plain C data; the C++ objects it
// fills are owned by the caller (nothing with a destructor is skipped or left indeterminate by the
// longjmp).
struct JpegJob {
  const std::string* bytes = nullptr;
  CmykConversion cmyk = CmykConversion::kPil;
  int64_t max_pixels = 0;
  bool too_large = false;  // set with width/height from the frame header
  std::vector<uint8_t>* row = nullptr;
  std::vector<uint8_t>* rgb = nullptr;
  int width = 0;
  int height = 0;
  JpegErrorManager manager;
};

// False after a libjpeg error (the reason in job->manager.message).
bool RunJpegDecode(JpegJob* job) {
  jpeg_decompress_struct cinfo;
  cinfo.err = jpeg_std_error(&job->manager.pub);
  job->manager.pub.error_exit = OnJpegError;
  job->manager.pub.emit_message = OnJpegMessage;
  if (setjmp(job->manager.jump) != 0) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, reinterpret_cast<const unsigned char*>(job->bytes->data()),
               static_cast<unsigned long>(job->bytes->size()));
  jpeg_read_header(&cinfo, TRUE);
  // The frame header as libjpeg reads it (it skips garbage our header walk stops at): refuse
  // decompression bombs before anything is allocated or decoded.
  if (job->max_pixels > 0 && static_cast<uint64_t>(cinfo.image_width) * cinfo.image_height >
                                 static_cast<uint64_t>(job->max_pixels)) {
    job->width = static_cast<int>(cinfo.image_width);
    job->height = static_cast<int>(cinfo.image_height);
    job->too_large = true;
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  const int components = cinfo.num_components;
  if (components == 4) {
    cinfo.out_color_space = JCS_CMYK;  // YCCK is converted to CMYK by libjpeg
  } else if (components == 1) {
    cinfo.out_color_space = JCS_GRAYSCALE;
  } else if (components == 3) {
    cinfo.out_color_space = JCS_RGB;
  } else {
    std::snprintf(job->manager.message, sizeof(job->manager.message),
                  "unsupported JPEG with %d components", components);
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_start_decompress(&cinfo);
  const int w = static_cast<int>(cinfo.output_width);
  const int h = static_cast<int>(cinfo.output_height);
  const int channels = cinfo.output_components;
  try {
    job->row->resize(static_cast<size_t>(w) * channels);
    job->rgb->resize(static_cast<size_t>(w) * h * 3);
  } catch (...) {
    jpeg_destroy_decompress(&cinfo);
    throw;
  }
  uint8_t* row = job->row->data();
  while (cinfo.output_scanline < cinfo.output_height) {
    const size_t y = cinfo.output_scanline;
    JSAMPROW row_pointer = row;
    if (jpeg_read_scanlines(&cinfo, &row_pointer, 1) != 1) break;
    uint8_t* out = job->rgb->data() + y * w * 3;
    if (channels == 3) {
      std::memcpy(out, row, static_cast<size_t>(w) * 3);
    } else if (channels == 1) {
      for (int x = 0; x < w; ++x) out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = row[x];
    } else {
      for (int x = 0; x < w; ++x) {
        const uint8_t* s = row + 4 * x;
        for (int c = 0; c < 3; ++c) {
          out[3 * x + c] = job->cmyk == CmykConversion::kPil ? PilCmykChannel(s[c], s[3])
                                                             : OpenCvCmykChannel(s[c], s[3]);
        }
      }
    }
  }
  // As OpenCV: the image is complete once its scanlines are read (no jpeg_finish_decompress, which
  // would read on to the end-of-image marker).
  jpeg_destroy_decompress(&cinfo);
  job->width = w;
  job->height = h;
  return true;
}

}  // namespace

void DecodeJpegRgb(const std::string& path,
                   const std::string& bytes,
                   CmykConversion cmyk,
                   int64_t max_pixels,
                   std::vector<uint8_t>* rgb,
                   int* width,
                   int* height,
                   std::vector<std::string>* warnings) {
  std::vector<uint8_t> row;
  JpegJob job;
  job.bytes = &bytes;
  job.cmyk = cmyk;
  job.max_pixels = max_pixels;
  job.row = &row;
  job.rgb = rgb;
  std::memset(job.manager.message, 0, sizeof(job.manager.message));
  job.manager.warnings = warnings;
  job.manager.num_warnings = 0;
  if (!RunJpegDecode(&job)) {
    if (job.too_large) {
      const uint64_t pixels = static_cast<uint64_t>(job.width) * static_cast<uint64_t>(job.height);
      MEGALOC_THROW(ImageError, path << ": image of " << job.width << "x" << job.height << " = " << pixels
                                     << " pixels exceeds --max_image_pixels " << max_pixels
                                     << " (a decompression bomb?)");
    }
    MEGALOC_THROW(ImageError, path << ": cannot decode JPEG (" << job.manager.message << ")");
  }
  if (job.manager.num_warnings > kMaxJpegWarnings) {
    warnings->push_back("... and " + std::to_string(job.manager.num_warnings - kMaxJpegWarnings) +
                        " more libjpeg warning(s)");
  }
  *width = job.width;
  *height = job.height;
}

bool IsAnimatedWebp(const std::string& bytes) {
  return bytes.size() >= 21 && bytes.compare(0, 4, "RIFF") == 0 && bytes.compare(8, 4, "WEBP") == 0 &&
         bytes.compare(12, 4, "VP8X") == 0 && (static_cast<uint8_t>(bytes[20]) & 0x02) != 0;
}

bool AnimatedWebpSupported() {
#ifdef MEGALOC_WEBP_DEMUX_ENABLED
  return true;
#else
  return false;
#endif
}

void DecodeAnimatedWebpFirstFrameRgb(const std::string& path,
                                     const std::string& bytes,
                                     int64_t max_pixels,
                                     std::vector<uint8_t>* rgb,
                                     int* width,
                                     int* height) {
#ifdef MEGALOC_WEBP_DEMUX_ENABLED
  WebPData data;
  data.bytes = reinterpret_cast<const uint8_t*>(bytes.data());
  data.size = bytes.size();
  WebPAnimDecoderOptions options;
  if (!WebPAnimDecoderOptionsInit(&options)) {
    MEGALOC_THROW(ImageError, path << ": cannot decode animated WebP (libwebpdemux version mismatch)");
  }
  options.color_mode = MODE_RGBA;  // as Pillow's WebPAnimDecoder for RGBA/RGB images
  options.use_threads = 0;
  std::unique_ptr<WebPAnimDecoder, void (*)(WebPAnimDecoder*)> decoder(
      WebPAnimDecoderNew(&data, &options), WebPAnimDecoderDelete);
  WebPAnimInfo info;
  if (decoder == nullptr || !WebPAnimDecoderGetInfo(decoder.get(), &info)) {
    MEGALOC_THROW(ImageError, path << ": cannot decode animated WebP (corrupt file)");
  }
  const uint64_t pixels = static_cast<uint64_t>(info.canvas_width) * info.canvas_height;
  if (max_pixels > 0 && pixels > static_cast<uint64_t>(max_pixels)) {
    MEGALOC_THROW(ImageError, path << ": image of " << info.canvas_width << "x" << info.canvas_height
                                   << " = " << pixels << " pixels exceeds --max_image_pixels "
                                   << max_pixels << " (a decompression bomb?)");
  }
  uint8_t* frame = nullptr;
  int timestamp = 0;
  if (info.frame_count == 0 || !WebPAnimDecoderGetNext(decoder.get(), &frame, &timestamp) ||
      frame == nullptr) {
    MEGALOC_THROW(ImageError, path << ": cannot decode the first frame of the animated WebP");
  }
  rgb->resize(static_cast<size_t>(pixels) * 3);
  for (uint64_t i = 0; i < pixels; ++i) {
    (*rgb)[3 * i] = frame[4 * i];
    (*rgb)[3 * i + 1] = frame[4 * i + 1];
    (*rgb)[3 * i + 2] = frame[4 * i + 2];
  }
  *width = static_cast<int>(info.canvas_width);
  *height = static_cast<int>(info.canvas_height);
#else
  (void)bytes;
  (void)max_pixels;
  (void)rgb;
  (void)width;
  (void)height;
  MEGALOC_THROW(ImageError, path << ": animated WebP is not supported by this build (it needs "
                                    "libwebpdemux, package libwebp-dev); convert the file to a "
                                    "still image");
#endif
}

std::string CaptureStderr(const std::function<void()>& body) {
  static std::mutex capture_mutex;
  std::lock_guard<std::mutex> capture_lock(capture_mutex);
  std::lock_guard<std::mutex> log_lock(LogMutex());
  std::fflush(stderr);
  const int file = memfd_create("megaloc_stderr", MFD_CLOEXEC);
  const int saved = file >= 0 ? dup(STDERR_FILENO) : -1;
  if (file < 0 || saved < 0 || dup2(file, STDERR_FILENO) < 0) {
    if (saved >= 0) close(saved);
    if (file >= 0) close(file);
    body();
    return "";
  }
  auto restore = [&] {
    std::fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
  };
  try {
    body();
  } catch (...) {
    restore();
    close(file);
    throw;
  }
  restore();
  std::string captured;
  const off_t size = lseek(file, 0, SEEK_END);
  if (size > 0 && lseek(file, 0, SEEK_SET) == 0) {
    captured.resize(static_cast<size_t>(std::min<off_t>(size, 1 << 16)));
    const ssize_t n = read(file, captured.data(), captured.size());
    captured.resize(n > 0 ? static_cast<size_t>(n) : 0);
  }
  close(file);
  return captured;
}

}  // namespace internal
}  // namespace megaloc
