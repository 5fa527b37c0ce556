#pragma once

// MegaLoc global descriptors of LaMAR sessions in the layout the official pipeline
// (lamar.tasks.feature_extraction.RetrievalFeatureExtraction) reads as-is:
//   <outputs>/<SCENE>/extraction/<session_id>/<method>/features.h5         hloc layout, float16
//   <outputs>/<SCENE>/extraction/<session_id>/<method>/configuration.json  the method dict
// Image names are "<session_id>/raw_data/<images.txt path>" (relative to <SCENE>/sessions/).
// With every name present and a configuration.json equal to the registered method dict, hloc's
// extract_features skips the extraction and never loads a model.

#include <string>
#include <vector>

#include "megaloc/eval/lamar/capture.h"
#include "megaloc/eval/lamar/pairs.h"
#include "megaloc/model/megaloc.h"

namespace megaloc {
namespace lamar {

struct LamarExtractOptions {
  // Root holding <SCENE>/sessions/<session_id>/. Required.
  std::string capture_path;
  // Scene name (CAB, HGE, LIN, ...). Required.
  std::string scene;
  // Session ids to process (e.g. map, query_val_phone). Required.
  std::vector<std::string> sessions;
  // Output root; files go under <outputs>/<SCENE>/. Required.
  std::string outputs;
  // Method dict (name, resize_max).
  RetrievalMethod method;
  // Network (weights_path required when there is something to extract).
  ModelOptions model;
  // Images per forward pass and decoding threads.
  int batch_size = 1;
  int num_workers = 2;
  // Re-extract images already present.
  bool overwrite = false;
  // Images of a session with queries.txt: false (default) = only the query images (rigs expanded),
  // as LaMAR extracts query sessions; true = every images.txt image.
  bool all_images = false;

  bool Check() const;
};

struct LamarSessionExtractStats {
  std::string session_id;
  std::string features_path;
  size_t num_images = 0;
  size_t num_extracted = 0;
  size_t num_skipped_existing = 0;
  size_t num_failed = 0;
  std::vector<std::string> failures;  // one sentence each
};

// The image names (unique, sorted, as LaMAR's np.unique) the official pipeline expects in a
// session's features.h5.
std::vector<std::string> SessionImageNames(const Session& session, bool all_images);

// Extracts every session (one model load for all). A session whose images all exist in its file
// is not recomputed. configuration.json is written after the descriptors. Throws on bad options,
// unreadable sessions or a model that cannot be loaded; bad images are reported in the stats
// (and make the command exit non-zero).
std::vector<LamarSessionExtractStats> RunLamarExtraction(const LamarExtractOptions& options);

}  // namespace lamar
}  // namespace megaloc
