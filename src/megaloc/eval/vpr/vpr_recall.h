#pragma once

// Recall@N of visual place recognition, exactly as the MegaLoc authors' evaluation code computes it
// for Table 1 of the paper (gmberton/VPR-methods-evaluation @ adbb6e2, `main.py` + `test_dataset.py`;
// docs/evaluation.md "VPR"):
//
//  * positives of a query = the database images whose UTM position lies within
//    `positive_dist_threshold` metres (Euclidean on easting/northing, boundary included): the
//    reference's sklearn NearestNeighbors.radius_neighbors, which compares squared distances
//    (dE*dE + dN*dN <= r*r in double);
//  * predictions = the first max(N) database images ranked by L2 distance of the L2-normalised
//    descriptors (faiss IndexFlatL2), computed here as the equivalent descending inner product with
//    megaloc/retrieval's exact search; equal scores keep ascending database order, which is also
//    the order faiss >= 1.7.3 gives equal distances (its heaps break ties by id and replace an
//    entry only on a strictly smaller distance);
//  * recall@N = 100 * (number of queries with a positive among their first N predictions) /
//    (number of queries). A query without any positive is a miss for every N and stays in the
//    denominator. Values are cumulative over the sorted N.
//
// Torch-free. The trainer's validation (megaloc/train) uses the same functions.

#include <cstdint>
#include <string>
#include <vector>

#include "megaloc/eval/vpr/vpr_dataset.h"
#include "megaloc/retrieval/search.h"

namespace megaloc {

struct VprRecallOptions {
  // The N of recall@N, strictly increasing, each >= 1 (the reference's default 1 5 10 20).
  std::vector<int> recall_values = {1, 5, 10, 20};
  // Positive radius in metres (>= 0; the reference's default 25).
  double positive_dist_threshold = 25.0;
  // Working memory of the exact search, in bytes (see SearchOptions::memory_limit).
  int64_t search_memory_limit = int64_t{1} << 30;
  // Search threads (-1 = the BLAS default).
  int num_threads = -1;

  bool Check() const;
};

struct VprRecallResult {
  // The N values (= options.recall_values) and recall@N in percent, same order.
  std::vector<int> recall_values;
  std::vector<double> recalls;
  int64_t num_queries = 0;
  int64_t num_database = 0;
  // Queries with no database image within the threshold (counted as misses).
  int64_t queries_without_positives = 0;
  // Per query: 0-based rank of the first positive among the first max(N) predictions, or -1.
  std::vector<int64_t> first_positive_rank;
};

// Database indices within `threshold_m` of each query (ascending index), as sklearn's
// radius_neighbors: dE*dE + dN*dN <= threshold_m*threshold_m in double precision.
std::vector<std::vector<int64_t>> FindVprPositives(const std::vector<VprImage>& database,
                                                   const std::vector<VprImage>& queries,
                                                   double threshold_m);

// Recall@N from predictions (predictions.Label(q, j) = database index of the j-th prediction of
// query q; -1 = padding) and positives (sorted ascending, as FindVprPositives returns them).
// Throws InvalidArgument if the options are invalid or the sizes disagree.
VprRecallResult ComputeVprRecall(const SearchResult& predictions,
                                 const std::vector<std::vector<int64_t>>& positives,
                                 int64_t num_database,
                                 const VprRecallOptions& options);

// The whole scoring: positives, exact search of the first max(N) predictions (inner product, ties
// by ascending database index) and recall@N. `database` / `queries` hold one descriptor per image
// of dataset.database / dataset.queries, in the same order (a streaming source such as
// HdfDescriptorSource is fine for large databases). Throws InvalidArgument on row-count or
// dimension mismatches.
VprRecallResult EvaluateVprRecall(const DescriptorSource& database,
                                  const DescriptorSource& queries,
                                  const VprDataset& dataset,
                                  const VprRecallOptions& options,
                                  SearchStats* stats = nullptr);

// The reference's one-line summary, e.g. "R@1: 98.8, R@5: 99.7, R@10: 99.9, R@20: 100.0"
// (one decimal, printf rounding of the binary value like Python's format).
std::string FormatVprRecalls(const VprRecallResult& result);

}  // namespace megaloc
