#pragma once

// The Revisited Oxford/Paris protocol end to end (docs/evaluation.md):
//   ground truth (gnd_<dataset>.pkl) -> cropped queries (PIL semantics) + full database images
//   (+ optional R1M distractors) -> MegaLoc descriptors (optionally cached in an hloc-layout HDF5
//   file) -> dot-product ranking -> official E/M/H mAP and mP@{1,5,10}.
// The model-free form evaluates a ranks .npy against a ground truth.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "megaloc/retrieval/pair_graph.h"
#include "megaloc/eval/revisitop/revisitop_gnd.h"
#include "megaloc/eval/revisitop/revisitop_metrics.h"
#include "megaloc/model/megaloc.h"

namespace megaloc {

// The preprocessing used by default for Table 3 of the paper: 322 x 322 (the authors' stated
// evaluation resolution, MegaLoc issue #2), applied to the cropped query and to database images.
PreprocessingOptions RevisitopDefaultPreprocessing();

struct RevisitopEvalOptions {
  // "roxford5k" or "rparis6k" (required).
  std::string dataset;
  // Root of the official layout: <data_root>/datasets/<dataset>/{jpg/<name>.jpg, gnd_<dataset>.pkl}.
  std::string data_root;
  // Ground truth file; empty = <data_root>/datasets/<dataset>/gnd_<dataset>.pkl.
  std::string gnd_path;
  // Image directory; empty = <data_root>/datasets/<dataset>/jpg.
  std::string image_dir;
  // MegaLoc checkpoint. Required unless every descriptor is already in `descriptors_path`.
  std::string weights_path;
  // Model execution (device, threads, bf16); weights_path is taken from above.
  ModelOptions model;
  // Input preprocessing (default RevisitopDefaultPreprocessing()).
  PreprocessingOptions preprocessing = RevisitopDefaultPreprocessing();
  // Optional R1M directory holding revisitop1m.txt and jpg/<entry> (entries carry their extension).
  std::string r1m_dir;
  // Optional descriptor cache in hloc's layout, float32 (created / resumed; required with R1M;
  // without it a temporary file is used and removed). Database images are stored as
  // "<imlist[i]>.jpg", cropped queries as "query_crop/<qimlist[i]>.jpg", distractors as
  // "jpg/<entry>" (their path relative to r1m_dir). The file's preprocessing and weights
  // attributes must match the current run.
  std::string descriptors_path;
  // Database extraction pipeline (megaloc/extraction): images per forward pass (equal sizes only)
  // and decoding threads.
  int batch_size = 1;
  int num_workers = 2;
  // Optional output: ranks .npy, int64, official layout (N, n_q), N = database (+ distractors).
  std::string ranks_output_path;
  // Flush the cache every this many new query descriptors (database batches are flushed by the
  // extraction pipeline after every batch).
  int flush_every = 64;
  // αQE and DBA (retrieval/pair_graph.h) before ranking: the database descriptors are replaced by
  // their DBA combination with their dba_num best database neighbours (themselves excluded), then each
  // query by its αQE combination with its qe_num best (augmented) database neighbours; ranks are the
  // dot products of the results. Off by default (qe_num = dba_num = 0: the paper's protocol). Holds
  // the database in memory: not available with R1M.
  QueryExpansionOptions expansion;
  // Progress messages (the library never prints); may be empty.
  std::function<void(const std::string&)> progress;

  bool Check() const;
};

// Everything a run produces. Metric values are fractions in RevisitopEvaluation; the JSON and the
// table are in percent.
struct RevisitopReport {
  std::string dataset;
  std::string preprocessing;   // PreprocessingOptions::ToString() or "external ranks"
  std::string gnd_path;
  std::string ranks_source;    // "dot product" or the ranks file
  int64_t num_database = 0;
  int64_t num_distractors = 0;
  std::vector<std::string> query_names;
  RevisitopEvaluation evaluation;
  // Extraction statistics (model form only).
  int64_t num_extracted = 0;
  int64_t num_cached = 0;
  double extraction_seconds = 0.0;
  double total_seconds = 0.0;
};

// Full pipeline. Throws IoError / FormatError / ImageError / InvalidArgument with the file and the
// reason; descriptors already written to the cache are kept (flushed) on error.
RevisitopReport RunRevisitopEvaluation(const RevisitopEvalOptions& options);

// Model-free: evaluates a ranks .npy (int, 2-D). `layout_db_by_q` = official (n_db, n_q) layout,
// else (n_q, n_db). Ids must be non-negative and not repeat within a query's list; ids >= n_db are
// distractors.
RevisitopReport EvaluateRevisitopRanksFile(const std::string& gnd_path,
                                           const std::string& ranks_path,
                                           bool layout_db_by_q = true);

// Results JSON: {"dataset", "preprocessing", "mAP": {"easy", "medium", "hard"},
// "mP": {"easy": {"1", "5", "10"}, ...}, "nvalid": {...}, "ap_per_query": {"easy": [...], ...},
// "p_at_k_per_query": {"easy": {"1": [...], ...}, ...}, ...}; values in percent, full double
// precision; null for excluded queries.
nlohmann::json RevisitopReportToJson(const RevisitopReport& report);

// The familiar two-line summary plus a table (percent, 2 decimals).
std::string FormatRevisitopReport(const RevisitopReport& report);

}  // namespace megaloc
