#pragma once

// Public, torch-free interface of the MegaLoc global descriptor
// (Berton & Masone, "MegaLoc: One Retrieval to Place Them All", arXiv 2502.17237, CVPRW 2025).
//
// MegaLoc = DINOv2 ViT-B/14 backbone -> SALAD optimal-transport aggregation (16640-d) ->
// Linear(16640 -> 8448) -> L2 normalisation. One float32 unit vector per image; similarity = dot
// product. The architecture (depth, widths, clusters, output dimension) is read from the checkpoint,
// so the same code runs the official model and the tiny test models.
//
// This header exposes no LibTorch types: front ends, the COLMAP plugin and the HDF5 code include it
// without pulling in c10. Torch lives in the .cc files of this directory.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <Eigen/Core>

namespace megaloc {

// Row-major matrix of descriptors, one image per row.
using DescriptorMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// How an image is resized before the model's own multiple-of-14 resize (see docs/model.md).
enum class ResizeMode {
  // No resize (the authors' default path: native size, then the model's multiple-of-14 step).
  kNative,
  // hloc's `megaloc` conf: if max(w, h) > resize_max, scale so the longest side is resize_max
  // (Python round, half to even), OpenCV INTER_AREA on the float image; never upscales.
  kResizeMax,
  // Fixed size (the paper's 322x322): torchvision Resize([h, w], antialias=True) on the
  // normalised tensor.
  kFixed,
};

struct PreprocessingOptions {
  // Default = hloc's `megaloc` configuration, so files are interchangeable with hloc's.
  ResizeMode mode = ResizeMode::kResizeMax;
  // Longest image side for kResizeMax, in pixels (> 0).
  int resize_max = 1024;
  // Output size for kFixed, in pixels (> 0).
  int width = 322;
  int height = 322;
  // Largest image accepted, in pixels (width x height of the file, checked from the file header
  // before decoding where the format allows: JPEG, PNG, WebP, BMP); 0 = no limit. Default = PIL's
  // Image.MAX_IMAGE_PIXELS (89,478,485), against decompression bombs.
  int64_t max_image_pixels = 89478485;

  bool Check() const;
  // Stable textual description recorded with the descriptors, e.g. "resize_max=1024",
  // "resize=322x322", "native".
  std::string ToString() const;
};

// A decoded, ImageNet-normalised image: float32 planar RGB (CHW), after the preset resize and before
// the model's multiple-of-14 resize.
struct PreprocessedImage {
  // Size of the image file as decoded (before any resize), in pixels.
  int original_width = 0;
  int original_height = 0;
  // Size of `data`.
  int width = 0;
  int height = 0;
  // 3 * height * width values, channel-major: (u / 255 - mean[c]) / std[c] for the resized image.
  std::vector<float> data;
};

// Decodes an image file like PIL `Image.open(p).convert("RGB")` (no EXIF rotation; grey, palette and
// alpha images become 3 channels) and preprocesses it. Throws ImageError naming the file and the
// reason (missing, unreadable, not an image, truncated, zero bytes).
PreprocessedImage LoadAndPreprocessImage(const std::string& path,
                                         const PreprocessingOptions& options);

// Decodes an image file to interleaved 8-bit RGB (height * width * 3 bytes) with the semantics of
// PIL `Image.open(p).convert("RGB")`: no EXIF rotation, grey replicated, alpha dropped, palette
// expanded, 16-bit RGB(A) -> high byte, 16-bit grey -> min(v, 255). With `hloc_decoding`, decodes as
// hloc does instead (cv2.imread IMREAD_COLOR | IMREAD_IGNORE_ORIENTATION, BGR -> RGB; 16-bit grey
// -> high byte). Throws ImageError naming the file and the reason.
// Images larger than `max_image_pixels` (> 0) are an ImageError.
// JPEGs are decoded with libjpeg directly (same bytes as OpenCV for YCbCr/grey; CMYK/YCCK JPEGs
// exactly as PIL, or as OpenCV with `hloc_decoding`); animated WebP gives its first frame, as PIL
// (needs libwebpdemux; else ImageError). Warnings of the codec libraries (libjpeg's "Corrupt JPEG
// data: ...", libpng's) are logged as MEGALOC_LOG(Warning) lines naming the file, not printed bare.
void ReadRgbImage(const std::string& path, bool hloc_decoding, std::vector<uint8_t>* rgb,
                  int* width, int* height, int64_t max_image_pixels = 89478485);

// Preprocesses an already decoded interleaved 8-bit RGB image (height * width * 3 bytes).
PreprocessedImage PreprocessRgbImage(const uint8_t* rgb,
                                     int width,
                                     int height,
                                     const PreprocessingOptions& options);

// The image size the network actually sees: each side rounded to a multiple of 14 with ties to
// even (511 -> 504, 385 -> 392), or unchanged when both are multiples already.
void ModelInputSize(int width, int height, int* model_width, int* model_height);

struct ModelOptions {
  // Checkpoint: safetensors (official v2 `model.safetensors`) or a torch.save zip file (the v1
  // release `megaloc.torch`). Required.
  std::string weights_path;
  // Attention heads; -1 = `config.json` beside the weights if it has "num_heads", else
  // embed_dim / 64 (12 for the official model).
  int num_heads = -1;
  // "cpu", "cuda", "cuda:N" or "auto" (CUDA when available, else CPU).
  std::string device = "cpu";
  // Intra-op CPU threads (the process-wide LibTorch thread count). -1: the cores this process may
  // use, less those other processes keep busy, measured before every forward (ThreadGovernor,
  // util/cpu_share.h): on a shared machine more threads than free cores stall at every barrier.
  int num_threads = -1;
  // Opt-in bfloat16 autocast for the transformer (CPU with AVX512-BF16 or AMX, or CUDA).
  // Descriptors differ from fp32 by a documented small amount (docs/performance.md). On a CPU
  // without native bf16 matmul (detected at run time) bf16 would be emulated and slower than fp32:
  // the model then runs fp32 and says so in ModelInfo::precision_note.
  bool use_bf16 = false;
  // SALAD aggregation as one batched matmul instead of upstream's repeat + mul + sum: faster and
  // ~2 GB less memory at batch 8; descriptors differ by float rounding only (<= ~2e-7).
  bool fast_aggregation = false;

  bool Check() const;
};

// Architecture and provenance of a loaded checkpoint.
struct ModelInfo {
  int embed_dim = 0;        // 768 for ViT-B
  int depth = 0;            // 12
  int num_heads = 0;        // 12
  int patch_size = 0;       // 14
  int pos_embed_grid = 0;   // 37 (trained at 518x518)
  int num_clusters = 0;     // 64
  int cluster_dim = 0;      // 256
  int token_dim = 0;        // 256
  int salad_dim = 0;        // token_dim + num_clusters * cluster_dim = 16640
  int descriptor_dim = 0;   // 8448
  int64_t num_parameters = 0;  // 228,639,553 for the official model
  std::string weights_format;  // "safetensors" or "torch-zip"
  std::string weights_sha256;  // of the checkpoint file
  std::string device;          // device actually used, e.g. "cpu" or "cuda:0"
  std::string precision;       // "fp32" or "bf16" (autocast), as actually used
  std::string precision_note;  // why --bf16 was not honoured (empty otherwise)
};

// What the CPU offers for bfloat16 matmuls, detected at run time (cpuid + OS state).
struct CpuBf16Support {
  std::string cpu_model;     // brand string, e.g. "Intel(R) Xeon(R) Processor @ 2.80GHz"
  bool avx512_bf16 = false;  // AVX512_BF16 (VDPBF16PS), with AVX-512 state enabled by the OS
  bool amx_bf16 = false;     // AMX-BF16 tiles, with tile state enabled by the OS
  bool Native() const { return avx512_bf16 || amx_bf16; }
};
CpuBf16Support DetectCpuBf16Support();

// Whether a MegaLocModel built with `options` runs bfloat16 autocast: use_bf16 on a CUDA device
// (device "cuda[:N]", or "auto" with CUDA available), or on a CPU with native bf16 matmul
// (DetectCpuBf16Support().Native()). The constructor decides the same way (ModelInfo::precision);
// files record the result, never the bare option (extraction's inference_precision).
bool UsesBf16(const ModelOptions& options);

// The MegaLoc network with loaded weights, always in eval mode, without autograd.
// Not thread-safe: use one instance per thread (LibTorch itself parallelises each forward).
class MegaLocModel {
 public:
  // Loads and validates the checkpoint (strict: missing, unexpected or mis-shaped keys are an error
  // listing them). Throws FormatError / IoError on bad weights, InvalidArgument on bad options.
  explicit MegaLocModel(const ModelOptions& options);
  ~MegaLocModel();
  MegaLocModel(const MegaLocModel&) = delete;
  MegaLocModel& operator=(const MegaLocModel&) = delete;

  const ModelInfo& Info() const;
  int DescriptorDim() const;

  // The smallest image (in model input pixels) the model accepts: the patch count
  // (h/14)*(w/14) must exceed the cluster count. Returns false if width x height (before the
  // multiple-of-14 step) is too small.
  bool AcceptsSize(int width, int height) const;

  // Descriptors of a batch of images that all have the same width and height: [B, D] row-major,
  // each row of unit L2 norm. Throws ImageError if the size is too small, InvalidArgument if the
  // sizes differ.
  DescriptorMatrix Extract(const std::vector<const PreprocessedImage*>& images);

  // Convenience for one image.
  Eigen::VectorXf Extract(const PreprocessedImage& image);

  // Implementation (torch); see megaloc_net.h.
  struct Impl;
  Impl* impl() { return impl_.get(); }

 private:
  std::unique_ptr<Impl> impl_;
};

// Converts a MegaLoc checkpoint in any supported form (v1 `.torch` zip, v2 safetensors, keys with
// a `module.` prefix) into float32 safetensors with the v2 key names, after validating it with the
// strict loader, then reloads the written file. `num_heads` as in ModelOptions. Returns the info of
// the written file; `input_format` receives "safetensors" / "torch-zip" if not null. Throws
// FormatError / IoError naming the file.
ModelInfo ConvertCheckpointToSafetensors(const std::string& input_path,
                                         const std::string& output_path,
                                         int num_heads = -1,
                                         std::string* input_format = nullptr);

// Loads and validates a checkpoint (strict) on the CPU and returns its architecture and digest.
ModelInfo ReadCheckpointInfo(const std::string& weights_path, int num_heads = -1);

}  // namespace megaloc
