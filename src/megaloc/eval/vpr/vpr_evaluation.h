#pragma once

// The VPR protocol of Table 1 of the MegaLoc paper end to end (`megaloc vpr_eval`,
// docs/evaluation.md "VPR"):
//
//   <dataset>/{database,queries} (vpr_dataset.h) -> MegaLoc descriptors of every image through the
//   extraction pipeline into an hloc-layout HDF5 cache (names "database/<path>", "queries/<path>";
//   a rerun with the same settings computes nothing) -> exact inner-product search of the first
//   max(N) database images per query -> recall@N within the positive radius (vpr_recall.h).
//
// Library code: returns a report, never prints (progress goes to the callbacks). The model is
// loaded only when some descriptor is missing from the cache.

#include <cstdint>
#include <functional>
#include <string>

#include "megaloc/eval/vpr/vpr_recall.h"
#include "megaloc/extraction/extraction.h"
#include "megaloc/model/megaloc.h"

namespace megaloc {

// The authors' evaluation default for MegaLoc: VPR-methods-evaluation passes no --image_size for
// `--method megaloc`, so images are ImageNet-normalised at their native size (ResizeMode::kNative;
// the network then rounds each side to a multiple of 14). Table 1 itself was computed at 322 x 322
// according to the authors (gmberton/MegaLoc issue #2): use kFixed 322 x 322 to reproduce it.
PreprocessingOptions VprDefaultPreprocessing();

struct VprEvalOptions {
  // Dataset root holding database/ and queries/ (required; layout in vpr_dataset.h).
  std::string dataset_path;
  // MegaLoc checkpoint. Required unless every descriptor is already in `descriptors_path`; when
  // given, it must be the checkpoint the cache was made with (sha256 recorded in the file).
  std::string weights_path;
  // Device, threads, bf16, num_heads of the network (model.weights_path is ignored: see above).
  ModelOptions model;
  // Preprocessing before the network (default VprDefaultPreprocessing(): native size).
  PreprocessingOptions preprocessing = VprDefaultPreprocessing();
  // Descriptor cache in hloc's layout (created or resumed). Its recorded preprocessing, weights and
  // precision must match this run (FormatError naming the file otherwise). New descriptors are
  // stored as float32, or in the dtype the file records (e.g. a float16 `megaloc extract` file).
  // Empty: a temporary file, removed at the end (nothing survives a failed run).
  std::string descriptors_path;
  // Recall@N values, positive radius, search memory.
  VprRecallOptions recall;
  // Extraction pipeline: images per forward pass (equal preprocessed sizes only; the reference
  // uses 1 for queries) and decoding threads.
  int batch_size = 1;
  int num_workers = 2;
  // Seconds between commits of finished batches to the cache (see ExtractionOptions).
  double commit_interval_seconds = 1.0;
  // Called after every written batch / every failed image (may be empty).
  std::function<void(const ExtractionProgress&)> progress_callback;
  std::function<void(const ImageFailure&)> failure_callback;
  // Stage messages ("loading model", "searching", ...); may be empty.
  std::function<void(const std::string&)> message_callback;

  bool Check() const;
};

struct VprEvalReport {
  std::string dataset_path;
  std::string preprocessing;     // PreprocessingOptions::ToString()
  std::string descriptors_path;  // the cache used ("" when temporary)
  int descriptor_dim = 0;
  VprRecallResult recall;
  double positive_dist_threshold = 0.0;
  int64_t num_extracted = 0;     // descriptors computed by this run
  int64_t num_cached = 0;        // descriptors found in the cache
  double extraction_seconds = 0.0;
  double search_seconds = 0.0;
  double total_seconds = 0.0;
};

// Runs the protocol. Throws IoError / FormatError (bad dataset, names without two numeric '@'
// fields, cache made with other settings, mismatched descriptor dimensions: each naming the file),
// ImageError (an image that cannot be processed; every other descriptor stays in the cache) and
// InvalidArgument (bad options, missing weights).
VprEvalReport RunVprEvaluation(const VprEvalOptions& options);

// Results as JSON text: {"recall": {"1": ..., "5": ...}, "num_queries", "num_database",
// "queries_without_positives", "positive_dist_threshold", "preprocessing", "dataset_path",
// "descriptor_dim", "num_extracted", "num_cached"}; recalls in percent, full double precision.
std::string VprEvalReportToJson(const VprEvalReport& report);

}  // namespace megaloc
