// Compiled with -ffp-contract=off (CMakeLists.txt): dE*dE + dN*dN must be rounded as two products
// and a sum, like sklearn's KD-tree, not fused into an FMA, or boundary positives could flip.
#include "megaloc/eval/vpr/vpr_recall.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <numeric>
#include <sstream>

#include "megaloc/util/logging.h"

namespace megaloc {

bool VprRecallOptions::Check() const {
  CHECK_OPTION(!recall_values.empty());
  CHECK_OPTION_GE(recall_values.front(), 1);
  for (size_t i = 1; i < recall_values.size(); ++i) {
    CHECK_OPTION_GT(recall_values[i], recall_values[i - 1]);
  }
  CHECK_OPTION_GE(positive_dist_threshold, 0.0);
  CHECK_OPTION_GT(search_memory_limit, 0);
  return true;
}

std::vector<std::vector<int64_t>> FindVprPositives(const std::vector<VprImage>& database,
                                                   const std::vector<VprImage>& queries,
                                                   double threshold_m) {
  MEGALOC_CHECK_MSG(threshold_m >= 0, "the positive distance threshold must be >= 0");
  // Candidates come from a window on the easting, slightly wider than the radius so that rounding
  // never drops a point the exact squared test accepts; the exact test decides.
  std::vector<int64_t> by_easting(database.size());
  std::iota(by_easting.begin(), by_easting.end(), 0);
  std::stable_sort(by_easting.begin(), by_easting.end(), [&](int64_t a, int64_t b) {
    return database[a].easting < database[b].easting;
  });
  std::vector<double> eastings(database.size());
  for (size_t i = 0; i < by_easting.size(); ++i) eastings[i] = database[by_easting[i]].easting;
  const double r2 = threshold_m * threshold_m;
  const double margin = threshold_m * 1e-9 + 1e-9;

  std::vector<std::vector<int64_t>> positives(queries.size());
  for (size_t q = 0; q < queries.size(); ++q) {
    const double qe = queries[q].easting;
    const double qn = queries[q].northing;
    auto first = std::lower_bound(eastings.begin(), eastings.end(), qe - threshold_m - margin);
    auto last = std::upper_bound(eastings.begin(), eastings.end(), qe + threshold_m + margin);
    std::vector<int64_t>& out = positives[q];
    for (auto it = first; it != last; ++it) {
      const VprImage& d = database[by_easting[it - eastings.begin()]];
      const double de = qe - d.easting;
      const double dn = qn - d.northing;
      if (de * de + dn * dn <= r2) out.push_back(by_easting[it - eastings.begin()]);
    }
    std::sort(out.begin(), out.end());
  }
  return positives;
}

VprRecallResult ComputeVprRecall(const SearchResult& predictions,
                                 const std::vector<std::vector<int64_t>>& positives,
                                 int64_t num_database,
                                 const VprRecallOptions& options) {
  if (!options.Check()) MEGALOC_THROW(InvalidArgument, "invalid VPR recall options (see the log above)");
  if (predictions.num_queries != static_cast<int64_t>(positives.size())) {
    MEGALOC_THROW(InvalidArgument, "VPR recall: " << predictions.num_queries
                                                  << " queries have predictions but "
                                                  << positives.size() << " have positive lists");
  }
  VprRecallResult result;
  result.recall_values = options.recall_values;
  result.num_queries = predictions.num_queries;
  result.num_database = num_database;
  result.first_positive_rank.assign(static_cast<size_t>(predictions.num_queries), -1);
  std::vector<int64_t> hits(options.recall_values.size(), 0);
  const int64_t depth = std::min<int64_t>(predictions.k, options.recall_values.back());
  for (int64_t q = 0; q < predictions.num_queries; ++q) {
    const std::vector<int64_t>& pos = positives[static_cast<size_t>(q)];
    if (pos.empty()) {
      ++result.queries_without_positives;
      continue;
    }
    for (int64_t j = 0; j < depth; ++j) {
      const int64_t label = predictions.Label(q, j);
      if (label >= 0 && std::binary_search(pos.begin(), pos.end(), label)) {
        result.first_positive_rank[static_cast<size_t>(q)] = j;
        break;
      }
    }
    const int64_t rank = result.first_positive_rank[static_cast<size_t>(q)];
    if (rank < 0) continue;
    for (size_t i = 0; i < options.recall_values.size(); ++i) {
      if (rank < options.recall_values[i]) ++hits[i];
    }
  }
  // numpy: recalls / num_queries * 100 (in this order; an empty query set gives NaN there).
  for (const int64_t h : hits) {
    result.recalls.push_back(static_cast<double>(h) / static_cast<double>(result.num_queries) * 100.0);
  }
  return result;
}

VprRecallResult EvaluateVprRecall(const DescriptorSource& database,
                                  const DescriptorSource& queries,
                                  const VprDataset& dataset,
                                  const VprRecallOptions& options,
                                  SearchStats* stats) {
  if (!options.Check()) MEGALOC_THROW(InvalidArgument, "invalid VPR recall options (see the log above)");
  if (database.NumRows() != static_cast<int64_t>(dataset.database.size()) ||
      queries.NumRows() != static_cast<int64_t>(dataset.queries.size())) {
    MEGALOC_THROW(InvalidArgument, "VPR recall: " << database.NumRows() << " database and "
                                                  << queries.NumRows()
                                                  << " query descriptors for a dataset of "
                                                  << dataset.database.size() << " database and "
                                                  << dataset.queries.size() << " query images");
  }
  if (database.NumRows() > 0 && queries.NumRows() > 0 && database.Dim() != queries.Dim()) {
    MEGALOC_THROW(InvalidArgument, "VPR recall: database descriptors have " << database.Dim()
                                       << " dimensions, query descriptors " << queries.Dim());
  }
  SearchOptions search;
  search.num_neighbors = options.recall_values.back();
  search.min_score = -std::numeric_limits<float>::infinity();  // rank the whole database
  search.memory_limit = options.search_memory_limit;
  search.num_threads = options.num_threads;
  search.backend = SearchBackend::kExact;
  search.symmetric = false;
  SearchResult predictions;
  if (database.NumRows() > 0 && queries.NumRows() > 0) {
    predictions = Search(queries, database, search, nullptr, nullptr, stats);
  } else {
    predictions.num_queries = queries.NumRows();
    predictions.k = 0;
  }
  return ComputeVprRecall(predictions,
                          FindVprPositives(dataset.database, dataset.queries,
                                           options.positive_dist_threshold),
                          database.NumRows(), options);
}

std::string FormatVprRecalls(const VprRecallResult& result) {
  std::ostringstream out;
  for (size_t i = 0; i < result.recalls.size(); ++i) {
    char value[64];
    std::snprintf(value, sizeof(value), "%.1f", result.recalls[i]);
    out << (i ? ", " : "") << "R@" << result.recall_values[i] << ": " << value;
  }
  return out.str();
}

}  // namespace megaloc
