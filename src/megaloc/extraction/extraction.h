#pragma once

// Global descriptors for a whole image collection, written to an hloc-layout HDF5 file
// (docs/formats.md, docs/cli.md#megaloc-extract).
//
//   enumerate (image root / list / explicit names) -> shard -> skip names already in the file
//   -> decode + preprocess on `num_workers` threads -> batches of equal-size images
//   -> MegaLocModel::Extract on the calling thread -> write + atomic flush per batch.
//
// Resumable: a rerun skips every image already in the output file (unless `overwrite`); a run
// killed at any moment (even kill -9, or a power loss) leaves a valid file holding every batch
// committed before (commits: after each batch, at most every `commit_interval_seconds`).
// Bad images (unreadable, truncated, empty, not an image, too small for the model) are skipped and
// reported; the good ones are still written.

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "megaloc/io/descriptor_store.h"
#include "megaloc/model/megaloc.h"

namespace megaloc {

// One image that could not be processed.
struct ImageFailure {
  std::string name;    // as it would appear in the file
  std::string reason;  // complete sentence naming the file and the reason
};

// Reported after every written batch and every failure.
struct ExtractionProgress {
  size_t num_done = 0;    // written + failed so far in this run
  size_t num_total = 0;   // images to process in this run (after skipping existing ones)
  size_t num_failed = 0;
  double elapsed_seconds = 0;
};

struct ExtractionOptions {
  // Root of the images; names are paths relative to it with '/'. Required.
  std::string image_path;
  // Output HDF5 file (created if missing, else appended to). Required.
  std::string output_path;
  // Optional image-list file (first token per line, '#' comments; see ReadImageList). Without it
  // (and without image_names) every image under image_path is used (see ListImages).
  std::string image_list_path;
  // Optional explicit names (library callers); takes precedence over image_list_path. Each must
  // exist under image_path.
  std::vector<std::string> image_names;

  // The network. model.weights_path is required unless a loaded model is passed to RunExtraction.
  ModelOptions model;
  // Preprocessing before the network (default: hloc's `megaloc` conf, resize_max=1024).
  PreprocessingOptions preprocessing;
  // On-disk dtype of `global_descriptor` (default float16, hloc's Python-API default `as_half`).
  DescriptorDtype dtype = DescriptorDtype::kFloat16;

  // Images per forward pass; only images of identical preprocessed size share a batch (>= 1).
  int batch_size = 1;
  // Decoding/preprocessing threads (>= 1).
  int num_workers = 2;
  // Re-extract images already in the file (hloc's overwrite: the group is deleted and recreated).
  // If the file was made with other settings (preprocessing, weights, dtype, dimension), its whole
  // content is discarded instead of raising an error.
  bool overwrite = false;
  // Finished batches are committed to the file (atomic, fsync'ed flush) at most this often, in
  // seconds, and always at the end: a kill loses at most this much finished work. 0 = commit after
  // every batch (each commit costs a few fsyncs, ~1-30 ms depending on the disk).
  double commit_interval_seconds = 1.0;
  // Process only shard `shard_index` (1-based) of `num_shards` (see SelectShard: by name hash).
  int shard_index = 1;
  int num_shards = 1;

  // Called on the calling thread after each written batch / each failed image (may be empty).
  std::function<void(const ExtractionProgress&)> progress_callback;
  std::function<void(const ImageFailure&)> failure_callback;

  bool Check() const;
};

struct ExtractionStats {
  size_t num_images = 0;            // listed (after the shard selection)
  size_t num_skipped_existing = 0;  // already in the file, not recomputed
  size_t num_extracted = 0;         // written in this run
  size_t num_failed = 0;            // bad images (see failures)
  std::vector<ImageFailure> failures;
  bool replaced_existing_file = false;  // overwrite with other settings discarded the old content
  int descriptor_dim = 0;               // 0 if the model was not needed
  double seconds = 0;                   // wall time of the whole call
  double images_per_second = 0;         // num_extracted / time from the first image to the end
  size_t peak_rss_bytes = 0;
};

// Runs the extraction, loading the model from options.model only if there is work to do.
// Throws InvalidArgument for bad options, IoError/FormatError for an unusable image root, list or
// output file (including "made with other settings"), and model loading errors. Never throws for a
// bad image (see ExtractionStats::failures).
ExtractionStats RunExtraction(const ExtractionOptions& options);

// Same with an already loaded model (options.model is ignored), e.g. to extract several
// collections with one model.
ExtractionStats RunExtraction(const ExtractionOptions& options, MegaLocModel* model);

// The provenance attributes this run writes (kAttr* of descriptor_store.h) for a model with the
// given info. `precision` is the loaded model's ModelInfo::precision ("fp32" / "bf16"); empty =
// what a model built from options.model would use (UsesBf16: --bf16 on a CPU without native bf16
// runs, and is recorded as, float32).
std::vector<std::pair<std::string, std::string>> ExtractionAttributes(
    const ExtractionOptions& options,
    int descriptor_dim,
    const std::string& weights_sha256,
    const std::string& precision = "");

}  // namespace megaloc
