// Approximate search through FAISS (only compiled when MEGALOC_FAISS_ENABLED).

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "megaloc/retrieval/search_internal.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/timer.h"

namespace megaloc {
namespace internal {
namespace {

constexpr int64_t kAddBlock = 16384;   // database rows converted/added per faiss add()
constexpr int64_t kQueryBlock = 4096;  // queries per faiss search()

}  // namespace

SearchResult FaissSearch(const DescriptorSource& queries,
                         const DescriptorSource& db,
                         const SearchOptions& options,
                         const std::vector<int64_t>* query_ids,
                         const std::vector<int64_t>* db_ids,
                         SearchStats* stats) {
  Timer total_timer;
  const int64_t nq = queries.NumRows();
  const int64_t nb = db.NumRows();
  const int dim = queries.Dim();
  SearchStats local;
  SearchResult result = PaddedSearchResult(nq, nb, options, &local);
  const int64_t k = result.k;
  if (nq == 0 || k == 0) {
    if (stats) *stats = local;
    return result;
  }
#ifdef _OPENMP
  if (options.num_threads > 0) omp_set_num_threads(options.num_threads);
#endif

  // Build the index (it keeps its own float32 copy of the database).
  Timer build_timer;
  std::unique_ptr<faiss::Index> quantizer;
  std::unique_ptr<faiss::Index> index;
  std::vector<float> block;
  if (options.backend == SearchBackend::kFaissIvf) {
    int64_t nlist = options.ivf_num_lists;
    if (nlist <= 0) {
      nlist = static_cast<int64_t>(4.0 * std::sqrt(static_cast<double>(nb)));
      nlist = std::min<int64_t>(nlist, nb / 39);
    }
    nlist = std::max<int64_t>(1, std::min<int64_t>(nlist, nb));
    quantizer = std::make_unique<faiss::IndexFlatIP>(dim);
    auto ivf = std::make_unique<faiss::IndexIVFFlat>(quantizer.get(), dim, nlist,
                                                     faiss::METRIC_INNER_PRODUCT);
    ivf->nprobe = std::min<int64_t>(options.ivf_num_probes, nlist);
    // Train on an evenly strided sample of at most 256 points per list.
    const int64_t num_train = std::min<int64_t>(nb, nlist * 256);
    std::vector<float> train(num_train * dim);
    const double stride = static_cast<double>(nb) / num_train;
    for (int64_t i = 0; i < num_train; ++i) {
      db.ReadRows(static_cast<int64_t>(i * stride), 1, train.data() + i * dim);
    }
    ivf->train(num_train, train.data());
    index = std::move(ivf);
  } else {
    auto hnsw = std::make_unique<faiss::IndexHNSWFlat>(dim, options.hnsw_m,
                                                       faiss::METRIC_INNER_PRODUCT);
    hnsw->hnsw.efConstruction = options.hnsw_ef_construction;
    hnsw->hnsw.efSearch = std::max<int>(options.hnsw_ef_search, static_cast<int>(k) + 1);
    index = std::move(hnsw);
  }
  for (int64_t b0 = 0; b0 < nb; b0 += kAddBlock) {
    const int64_t count = std::min(kAddBlock, nb - b0);
    const float* rows = db.ResidentRows(b0);
    if (rows == nullptr) {
      block.resize(count * dim);
      db.ReadRows(b0, count, block.data());
      rows = block.data();
    }
    index->add(count, rows);
  }
  local.build_seconds = build_timer.ElapsedSeconds();

  // Search k + 1 (one slot may be the query itself), then filter and re-sort by the contract.
  const bool use_ids = query_ids != nullptr && db_ids != nullptr;
  const int64_t k_search = std::min<int64_t>(nb, k + (use_ids ? 1 : 0));
  std::vector<float> qbuf;
  std::vector<float> distances;
  std::vector<int64_t> labels;  // faiss::idx_t (Index::idx_t before faiss 1.7.4) is int64_t
  for (int64_t q0 = 0; q0 < nq; q0 += kQueryBlock) {
    const int64_t count = std::min(kQueryBlock, nq - q0);
    const float* qrows = queries.ResidentRows(q0);
    if (qrows == nullptr) {
      qbuf.resize(count * dim);
      queries.ReadRows(q0, count, qbuf.data());
      qrows = qbuf.data();
    }
    distances.resize(count * k_search);
    labels.resize(count * k_search);
    Timer search_timer;
    index->search(count, qrows, k_search, distances.data(), labels.data());
    local.gemm_seconds += search_timer.ElapsedSeconds();
    for (int64_t i = 0; i < count; ++i) {
      std::vector<std::pair<float, int64_t>> kept;
      for (int64_t r = 0; r < k_search; ++r) {
        const int64_t label = labels[i * k_search + r];
        const float score = distances[i * k_search + r];
        if (label < 0 || !(score >= options.min_score)) continue;
        if (use_ids && (*db_ids)[label] == (*query_ids)[q0 + i]) continue;
        kept.emplace_back(score, label);
      }
      std::sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) {
        return a.first > b.first || (a.first == b.first && a.second < b.second);
      });
      const int64_t n = std::min<int64_t>(k, kept.size());
      for (int64_t r = 0; r < n; ++r) {
        result.labels[(q0 + i) * k + r] = kept[r].second;
        result.scores[(q0 + i) * k + r] = kept[r].first;
      }
    }
  }
  local.working_bytes = static_cast<int64_t>(nb) * dim * 4;
  local.num_db_passes = 1;
  local.total_seconds = total_timer.ElapsedSeconds();
  if (stats) *stats = local;
  return result;
}

}  // namespace internal
}  // namespace megaloc
