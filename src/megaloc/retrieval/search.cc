#include "megaloc/retrieval/search.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <unordered_set>
#include <vector>

#include <cblas.h>
#include <dlfcn.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "megaloc/retrieval/search_internal.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/string_utils.h"
#include "megaloc/util/timer.h"

// OpenBLAS-specific thread control and core detection; weak so that another CBLAS also links
// (then they are no-ops).
#pragma weak openblas_set_num_threads
#pragma weak openblas_get_corename
extern "C" char* openblas_get_corename();

namespace megaloc {
namespace {

constexpr int64_t kMinDbBlock = 1024;  // below this many columns per sgemm, prefer smaller query blocks
constexpr int64_t kSymmetricMaxBlock = 2048;  // block rows of the self-retrieval engine

struct Candidate {
  float score;
  int64_t label;
};

// True if a ranks before b: higher score first, then lower label.
inline bool Better(const Candidate& a, const Candidate& b) {
  return a.score > b.score || (a.score == b.score && a.label < b.label);
}

// Fixed-capacity heap whose top is the worst kept candidate.
struct HeapRef {
  Candidate* data;
  int64_t* size;
  int64_t capacity;

  void SiftDown(int64_t i) {
    const int64_t n = *size;
    while (true) {
      const int64_t left = 2 * i + 1;
      if (left >= n) break;
      int64_t worst = left;
      const int64_t right = left + 1;
      if (right < n && Better(data[worst], data[right])) worst = right;
      if (Better(data[worst], data[i])) break;  // data[i] is already worse than both children
      std::swap(data[i], data[worst]);
      i = worst;
    }
  }

  void SiftUp(int64_t i) {
    while (i > 0) {
      const int64_t parent = (i - 1) / 2;
      if (!Better(data[parent], data[i])) break;  // parent is worse or equal: heap holds
      std::swap(data[i], data[parent]);
      i = parent;
    }
  }

  void Push(const Candidate& c) {
    if (*size < capacity) {
      data[*size] = c;
      ++*size;
      SiftUp(*size - 1);
    } else if (Better(c, data[0])) {
      data[0] = c;
      SiftDown(0);
    }
  }
};

// oneDNN's row-major sgemm (libdnnl, a LibTorch dependency), looked up at run time.
using DnnlSgemmFn = int (*)(char transa, char transb, int64_t m, int64_t n, int64_t k, float alpha,
                            const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                            float* c, int64_t ldc);

struct GemmBackend {
  DnnlSgemmFn dnnl = nullptr;
  std::string name;
};

}  // namespace

namespace internal {

int OpenBlasCoreVectorBits(const std::string& core) {
  // OpenBLAS 0.3.x DYNAMIC_ARCH x86-64 cores, by the widest vectors their sgemm kernels use.
  for (const char* wide : {"SkylakeX", "Cooperlake", "SapphireRapids"}) {
    if (core == wide) return 512;
  }
  for (const char* avx : {"Haswell", "Zen", "SandyBridge", "Bulldozer", "Piledriver", "Steamroller",
                          "Excavator"}) {
    if (core == avx) return 256;
  }
  return 128;  // Prescott, Core2, Nehalem, Atom, ..., "Generic": SSE kernels
}

int CpuVectorBits() {
  // libgcc's cpu model checks both the CPUID bits and that the OS saves the register state (XGETBV).
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
    return 512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 256;
  return 128;
}

bool PreferDnnlSgemm(const std::string& core, int cpu_vector_bits) {
  if (core.empty()) return false;  // not OpenBLAS: trust the BLAS the system linked
  return OpenBlasCoreVectorBits(core) < cpu_vector_bits;
}

}  // namespace internal

namespace {

// MEGALOC_RETRIEVAL_GEMM = blas | dnnl | auto (default): auto takes oneDNN when the BLAS is an
// OpenBLAS whose detected core uses narrower vectors than this CPU has, and libdnnl can be loaded.
// OpenBLAS 0.3.21 falls back to such cores on CPUs newer than itself: generic SSE kernels on Intel
// Emerald Rapids ("Prescott", ~5x below the machine's sgemm rate), AVX2 kernels on AMD Zen 5
// ("Haswell", half the rate of the AVX-512 kernels on the same CPU).
const GemmBackend& RetrievalGemm() {
  static const GemmBackend backend = [] {
    GemmBackend b;
    const std::string core = openblas_get_corename != nullptr ? openblas_get_corename() : "";
    const char* env = std::getenv("MEGALOC_RETRIEVAL_GEMM");
    const std::string mode = env != nullptr ? env : "auto";
    const int cpu_bits = internal::CpuVectorBits();
    const bool want_dnnl = mode == "dnnl" || (mode != "blas" && internal::PreferDnnlSgemm(core, cpu_bits));
    if (want_dnnl) {
      void* symbol = dlsym(RTLD_DEFAULT, "dnnl_sgemm");
      if (symbol == nullptr) {
        // Debian names the library by its full version (libdnnl.so.2 in bookworm, libdnnl.so.3.6
        // in trixie, libdnnl.so.3.12 in unstable; libdnnl.so only with the -dev package).
        // dnnl_sgemm has the same signature in oneDNN 2.x and 3.x.
        std::vector<std::string> candidates = {"libdnnl.so.3", "libdnnl.so.2", "libdnnl.so"};
        for (int minor = 40; minor >= 0; --minor) candidates.push_back("libdnnl.so.3." + std::to_string(minor));
        for (const std::string& name : candidates) {
          void* handle = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
          if (handle == nullptr) continue;
          symbol = dlsym(handle, "dnnl_sgemm");
          if (symbol != nullptr) break;
          dlclose(handle);
        }
      }
      b.dnnl = reinterpret_cast<DnnlSgemmFn>(symbol);
    }
    const std::string blas = core.empty() ? "CBLAS" : "OpenBLAS " + core;
    std::string why;
    if (!core.empty() && internal::OpenBlasCoreVectorBits(core) < cpu_bits) {
      why = ": " + std::to_string(internal::OpenBlasCoreVectorBits(core)) + "-bit kernels on a CPU with " +
            std::to_string(cpu_bits) + "-bit vectors";
    }
    b.name = b.dnnl != nullptr ? "oneDNN dnnl_sgemm (" + blas + " bypassed" + why + ")" : blas;
    return b;
  }();
  return backend;
}

// Row-major C (m x n) = A (m x k) * B (n x k)^T.
void SgemmAbt(int64_t m, int64_t n, int64_t k, const float* a, const float* b, float* c) {
  const GemmBackend& backend = RetrievalGemm();
  if (backend.dnnl != nullptr) {
    backend.dnnl('N', 'T', m, n, k, 1.0f, a, k, b, k, 0.0f, c, n);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), 1.0f, a, static_cast<int>(k), b, static_cast<int>(k), 0.0f, c,
              static_cast<int>(n));
}

void SetBlasThreads(int num_threads) {
  if (num_threads > 0 && openblas_set_num_threads != nullptr) {
    openblas_set_num_threads(num_threads);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// Sources

MatrixDescriptorSource::MatrixDescriptorSource(const float* data, int64_t num_rows, int dim)
    : data_(data), num_rows_(num_rows), dim_(dim) {
  MEGALOC_CHECK_GE(num_rows, 0);
  MEGALOC_CHECK_GT(dim, 0);
  MEGALOC_CHECK(data != nullptr || num_rows == 0);
}

MatrixDescriptorSource::MatrixDescriptorSource(const DescriptorMatrix& matrix)
    : data_(matrix.data()), num_rows_(matrix.rows()), dim_(static_cast<int>(matrix.cols())) {
  MEGALOC_CHECK_MSG(matrix.cols() > 0, "Descriptor matrix has no columns");
}

void MatrixDescriptorSource::ReadRows(int64_t begin, int64_t count, float* out) const {
  MEGALOC_CHECK(begin >= 0 && count >= 0 && begin + count <= num_rows_);
  std::memcpy(out, data_ + begin * dim_, sizeof(float) * count * dim_);
}

const float* MatrixDescriptorSource::ResidentRows(int64_t begin) const {
  return data_ + begin * dim_;
}

CallbackDescriptorSource::CallbackDescriptorSource(int64_t num_rows, int dim, Generator generator)
    : num_rows_(num_rows), dim_(dim), generator_(std::move(generator)) {
  MEGALOC_CHECK_GE(num_rows, 0);
  MEGALOC_CHECK_GT(dim, 0);
  MEGALOC_CHECK(static_cast<bool>(generator_));
}

void CallbackDescriptorSource::ReadRows(int64_t begin, int64_t count, float* out) const {
  MEGALOC_CHECK(begin >= 0 && count >= 0 && begin + count <= num_rows_);
  generator_(begin, count, out);
}

// ---------------------------------------------------------------------------------------------------
// Options

std::string SearchBackendToString(SearchBackend backend) {
  switch (backend) {
    case SearchBackend::kExact:
      return "exact";
    case SearchBackend::kFaissIvf:
      return "faiss_ivf";
    case SearchBackend::kFaissHnsw:
      return "faiss_hnsw";
  }
  return "unknown";
}

SearchBackend SearchBackendFromString(const std::string& name) {
  if (name == "exact") return SearchBackend::kExact;
  if (name == "faiss_ivf") return SearchBackend::kFaissIvf;
  if (name == "faiss_hnsw") return SearchBackend::kFaissHnsw;
  MEGALOC_THROW(InvalidArgument,
                "Unknown retrieval backend '" << name << "' (valid: exact, faiss_ivf, faiss_hnsw)");
}

bool IsFaissAvailable() {
#ifdef MEGALOC_FAISS_ENABLED
  return true;
#else
  return false;
#endif
}

namespace internal {

void ThrowIfNotFinite(const std::string& name, double value, bool allow_negative_infinity) {
  if (std::isfinite(value) || (allow_negative_infinity && value < 0.0 && std::isinf(value))) return;
  MEGALOC_THROW(InvalidArgument, "Invalid option " << name << ": " << value << " (must be a finite number"
                                                   << (allow_negative_infinity ? " or -inf" : "")
                                                   << ")");
}

}  // namespace internal

bool SearchOptions::Check() const {
  CHECK_OPTION_GT(num_neighbors, 0);
  CHECK_OPTION(!std::isnan(min_score) && min_score < std::numeric_limits<float>::infinity());
  CHECK_OPTION_GT(memory_limit, 0);
  CHECK_OPTION(num_threads == -1 || num_threads > 0);
  CHECK_OPTION_GE(max_query_block, 0);
  CHECK_OPTION_GE(max_db_block, 0);
  CHECK_OPTION(ivf_num_lists == -1 || ivf_num_lists > 0);
  CHECK_OPTION_GT(ivf_num_probes, 0);
  CHECK_OPTION_GE(hnsw_m, 2);
  CHECK_OPTION_GT(hnsw_ef_construction, 0);
  CHECK_OPTION_GT(hnsw_ef_search, 0);
  return true;
}

int64_t SearchResult::NumValid(int64_t query) const {
  int64_t n = 0;
  while (n < k && labels[query * k + n] >= 0) ++n;
  return n;
}

// ---------------------------------------------------------------------------------------------------
// Exact engine

namespace {

void BlockSizesImpl(int64_t num_queries,
                    int64_t num_db,
                    int dim,
                    bool queries_resident,
                    bool db_resident,
                    const SearchOptions& options,
                    int64_t* query_block,
                    int64_t* db_block,
                    int64_t* working_bytes) {
  const int64_t k = std::max<int64_t>(1, std::min<int64_t>(options.num_neighbors, num_db));
  const int64_t q_row = queries_resident ? 0 : int64_t{4} * dim;
  const int64_t db_row = db_resident ? 0 : int64_t{4} * dim;
  const int64_t heap_row = k * static_cast<int64_t>(sizeof(Candidate)) + 8;
  const int64_t budget = options.memory_limit;
  const int64_t nq = std::max<int64_t>(1, num_queries);
  const int64_t nb = std::max<int64_t>(1, num_db);

  int64_t bq = nq;
  if (options.max_query_block > 0) bq = std::min(bq, options.max_query_block);
  // Query blocks shrink until the database block reaches kMinDbBlock rows, or half of what a
  // one-row query block would leave it when the budget cannot hold kMinDbBlock database rows at all
  // (large dimension, small budget): shrinking them further would multiply the database passes
  // (every query block streams the whole database) for a database block barely larger.
  const int64_t one_row = q_row + heap_row;
  const int64_t reachable = one_row < budget ? (budget - one_row) / (db_row + 4) : 0;
  const int64_t target = std::max<int64_t>(1, std::min({nb, kMinDbBlock, reachable / 2}));
  int64_t bd = 0;
  while (true) {
    const int64_t fixed = bq * (q_row + heap_row);
    const int64_t per_db_row = db_row + bq * 4;
    bd = fixed < budget ? (budget - fixed) / per_db_row : 0;
    if (bd >= target || bq == 1) break;
    bq = std::max<int64_t>(1, bq / 2);
  }
  bd = std::min(bd, nb);
  if (options.max_db_block > 0) bd = std::min(bd, options.max_db_block);
  const int64_t needed_min = q_row + heap_row + db_row + 4;
  MEGALOC_CHECK_MSG(bd >= 1, "memory_limit of " << budget << " bytes is too small for descriptors of dimension "
                                                << dim << " and k = " << k << " (needs at least "
                                                << needed_min << " bytes)");
  *query_block = bq;
  *db_block = bd;
  *working_bytes = bq * (q_row + heap_row) + bd * db_row + bq * bd * 4;
}

}  // namespace

namespace internal {

SearchResult PaddedSearchResult(int64_t num_queries,
                                int64_t num_db,
                                const SearchOptions& options,
                                SearchStats* stats) {
  SearchResult result;
  result.num_queries = num_queries;
  result.k = std::min<int64_t>(options.num_neighbors, num_db);
  result.labels.assign(num_queries * result.k, -1);
  result.scores.assign(num_queries * result.k, -std::numeric_limits<float>::infinity());
  stats->num_queries = num_queries;
  stats->num_db = num_db;
  return result;
}

}  // namespace internal

namespace {

SearchResult ExactSearch(const DescriptorSource& queries,
                         const DescriptorSource& db,
                         const SearchOptions& options,
                         const std::vector<int64_t>* query_ids,
                         const std::vector<int64_t>* db_ids,
                         SearchStats* stats) {
  Timer total_timer;
  const int64_t nq = queries.NumRows();
  const int64_t nb = db.NumRows();
  const int dim = queries.Dim();
  SearchStats local_stats;
  SearchResult result = internal::PaddedSearchResult(nq, nb, options, &local_stats);
  const int64_t k = result.k;
  if (nq == 0 || k == 0) {
    local_stats.total_seconds = total_timer.ElapsedSeconds();
    if (stats) *stats = local_stats;
    return result;
  }

  const bool queries_resident = queries.ResidentRows(0) != nullptr;
  const bool db_resident = db.ResidentRows(0) != nullptr;
  int64_t bq = 0, bd = 0, working = 0;
  BlockSizesImpl(nq, nb, dim, queries_resident, db_resident, options, &bq, &bd, &working);
  local_stats.query_block = bq;
  local_stats.db_block = bd;
  local_stats.working_bytes = working;

  SetBlasThreads(options.num_threads);

  std::vector<float> query_buffer(queries_resident ? 0 : bq * dim);
  std::vector<float> db_buffer(db_resident ? 0 : bd * dim);
  std::vector<float> sims(bq * bd);
  std::vector<Candidate> heaps(bq * k);
  std::vector<int64_t> heap_sizes(bq);
  const float min_score = options.min_score;
  const bool use_ids = query_ids != nullptr && db_ids != nullptr;

#ifdef _OPENMP
  const int omp_threads = options.num_threads > 0 ? options.num_threads : omp_get_max_threads();
#endif

  for (int64_t q0 = 0; q0 < nq; q0 += bq) {
    const int64_t q_count = std::min(bq, nq - q0);
    Timer read_timer;
    const float* q_data = queries.ResidentRows(q0);
    if (q_data == nullptr) {
      queries.ReadRows(q0, q_count, query_buffer.data());
      q_data = query_buffer.data();
    }
    local_stats.read_seconds += read_timer.ElapsedSeconds();
    std::fill(heap_sizes.begin(), heap_sizes.end(), 0);
    ++local_stats.num_db_passes;

    for (int64_t d0 = 0; d0 < nb; d0 += bd) {
      const int64_t d_count = std::min(bd, nb - d0);
      read_timer.Restart();
      const float* d_data = db.ResidentRows(d0);
      if (d_data == nullptr) {
        db.ReadRows(d0, d_count, db_buffer.data());
        d_data = db_buffer.data();
      }
      local_stats.read_seconds += read_timer.ElapsedSeconds();

      Timer gemm_timer;
      SgemmAbt(q_count, d_count, dim, q_data, d_data, sims.data());
      local_stats.gemm_seconds += gemm_timer.ElapsedSeconds();
      local_stats.gemm_flops += 2.0 * q_count * d_count * dim;

      Timer topk_timer;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(omp_threads) if (q_count * d_count > 65536)
#endif
      for (int64_t i = 0; i < q_count; ++i) {
        HeapRef heap{heaps.data() + i * k, heap_sizes.data() + i, k};
        const float* row = sims.data() + i * d_count;
        const int64_t self_id = use_ids ? (*query_ids)[q0 + i] : 0;
        for (int64_t j = 0; j < d_count; ++j) {
          const float s = row[j];
          if (!(s >= min_score)) continue;  // also drops NaN
          if (*heap.size == k && s < heap.data[0].score) continue;
          const int64_t label = d0 + j;
          if (use_ids && (*db_ids)[label] == self_id) continue;
          heap.Push(Candidate{s, label});
        }
      }
      local_stats.topk_seconds += topk_timer.ElapsedSeconds();
    }

    // Sort each heap best-first into the result rows.
    for (int64_t i = 0; i < q_count; ++i) {
      Candidate* begin = heaps.data() + i * k;
      const int64_t size = heap_sizes[i];
      std::sort(begin, begin + size, Better);
      for (int64_t r = 0; r < size; ++r) {
        result.labels[(q0 + i) * k + r] = begin[r].label;
        result.scores[(q0 + i) * k + r] = begin[r].score;
      }
    }
  }
  local_stats.total_seconds = total_timer.ElapsedSeconds();
  if (stats) *stats = local_stats;
  return result;
}

// Self-retrieval (queries and database are the same source, SfM mode): the similarity matrix is
// symmetric, so only block pairs (I, J >= I) are multiplied; block (I, J) feeds the heaps of the
// rows of I (row-wise) and of the rows of J (column-wise). About half the FLOPs of ExactSearch,
// same results (the heap keeps the top-k of a strict total order, independent of insertion order).
SearchResult SymmetricSearch(const DescriptorSource& x,
                             const SearchOptions& options,
                             const std::vector<int64_t>* ids,
                             SearchStats* stats) {
  Timer total_timer;
  const int64_t n = x.NumRows();
  const int dim = x.Dim();
  SearchResult result;
  result.num_queries = n;
  result.k = std::min<int64_t>(options.num_neighbors, n);
  const int64_t k = result.k;
  result.labels.assign(n * k, -1);
  result.scores.assign(n * k, -std::numeric_limits<float>::infinity());
  SearchStats local_stats;
  local_stats.num_queries = n;
  local_stats.num_db = n;
  if (n == 0) {
    if (stats) *stats = local_stats;
    return result;
  }
  const bool resident = x.ResidentRows(0) != nullptr;
  const int64_t row_bytes = resident ? 0 : int64_t{4} * dim;
  const int64_t heap_bytes = n * (k * static_cast<int64_t>(sizeof(Candidate)) + 8);
  const int64_t budget = options.memory_limit - heap_bytes;
  // Square blocks: two blocks of rows + a b x b similarity block and its transpose; b capped at
  // kSymmetricMaxBlock so that the skipped lower triangle is a large share of the matrix.
  int64_t b = std::min<int64_t>(n, kSymmetricMaxBlock);
  if (options.max_query_block > 0) b = std::min(b, options.max_query_block);
  if (options.max_db_block > 0) b = std::min(b, options.max_db_block);
  while (b > 1 && 2 * b * row_bytes + b * b * 8 > budget) b = b * 3 / 4;
  MEGALOC_CHECK_MSG(budget > 0 && 2 * b * row_bytes + b * b * 8 <= budget,
                    "memory_limit of " << options.memory_limit
                                       << " bytes is too small for self-retrieval of " << n
                                       << " descriptors of dimension " << dim << " with k = " << k
                                       << " (the per-query heaps alone need " << heap_bytes
                                       << " bytes)");
  local_stats.query_block = b;
  local_stats.db_block = b;
  local_stats.working_bytes = heap_bytes + 2 * b * row_bytes + b * b * 8;
  SetBlasThreads(options.num_threads);

  std::vector<float> buffer_i(resident ? 0 : b * dim);
  std::vector<float> buffer_j(resident ? 0 : b * dim);
  std::vector<float> sims(b * b);
  std::vector<float> sims_t(b * b);
  std::vector<Candidate> heaps(n * k);
  std::vector<int64_t> heap_sizes(n, 0);
  const float min_score = options.min_score;
#ifdef _OPENMP
  const int omp_threads = options.num_threads > 0 ? options.num_threads : omp_get_max_threads();
#endif
  auto excluded = [&](int64_t a, int64_t c) {
    return ids != nullptr ? (*ids)[a] == (*ids)[c] : false;
  };

  for (int64_t i0 = 0; i0 < n; i0 += b) {
    const int64_t ci = std::min(b, n - i0);
    Timer read_timer;
    const float* data_i = x.ResidentRows(i0);
    if (data_i == nullptr) {
      x.ReadRows(i0, ci, buffer_i.data());
      data_i = buffer_i.data();
    }
    local_stats.read_seconds += read_timer.ElapsedSeconds();
    ++local_stats.num_db_passes;
    for (int64_t j0 = i0; j0 < n; j0 += b) {
      const int64_t cj = std::min(b, n - j0);
      read_timer.Restart();
      const float* data_j = data_i;
      if (j0 != i0) {
        data_j = x.ResidentRows(j0);
        if (data_j == nullptr) {
          x.ReadRows(j0, cj, buffer_j.data());
          data_j = buffer_j.data();
        }
      }
      local_stats.read_seconds += read_timer.ElapsedSeconds();
      Timer gemm_timer;
      if (j0 == i0 && RetrievalGemm().dnnl != nullptr) {
        SgemmAbt(ci, ci, dim, data_i, data_i, sims.data());  // oneDNN has no syrk
        local_stats.gemm_flops += 2.0 * ci * ci * dim;
      } else if (j0 == i0) {
        // Diagonal block: only its upper triangle (ssyrk), mirrored below.
        local_stats.gemm_flops += 1.0 * ci * (ci + 1) * dim;
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, static_cast<int>(ci), dim, 1.0f,
                    data_i, dim, 0.0f, sims.data(), static_cast<int>(ci));
        for (int64_t r = 1; r < ci; ++r) {
          for (int64_t c = 0; c < r; ++c) sims[r * ci + c] = sims[c * ci + r];
        }
      } else {
        SgemmAbt(ci, cj, dim, data_i, data_j, sims.data());
        local_stats.gemm_flops += 2.0 * ci * cj * dim;
      }
      local_stats.gemm_seconds += gemm_timer.ElapsedSeconds();
      Timer topk_timer;
      // Rows of block I.
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(omp_threads) if (ci * cj > 65536)
#endif
      for (int64_t i = 0; i < ci; ++i) {
        HeapRef heap{heaps.data() + (i0 + i) * k, heap_sizes.data() + (i0 + i), k};
        const float* row = sims.data() + i * cj;
        for (int64_t j = 0; j < cj; ++j) {
          const float s = row[j];
          if (!(s >= min_score)) continue;
          if (*heap.size == k && s < heap.data[0].score) continue;
          if (excluded(i0 + i, j0 + j)) continue;
          heap.Push(Candidate{s, j0 + j});
        }
      }
      // Rows of block J (the transposed block), off-diagonal block pairs only.
      if (j0 != i0) {
        // Cache-blocked transpose so that the column scans below are contiguous.
        constexpr int64_t kTile = 32;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(omp_threads) if (ci * cj > 65536)
#endif
        for (int64_t jt = 0; jt < cj; jt += kTile) {
          for (int64_t it = 0; it < ci; it += kTile) {
            for (int64_t j = jt; j < std::min(jt + kTile, cj); ++j) {
              for (int64_t i = it; i < std::min(it + kTile, ci); ++i) {
                sims_t[j * ci + i] = sims[i * cj + j];
              }
            }
          }
        }
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(omp_threads) if (ci * cj > 65536)
#endif
        for (int64_t j = 0; j < cj; ++j) {
          HeapRef heap{heaps.data() + (j0 + j) * k, heap_sizes.data() + (j0 + j), k};
          const float* column = sims_t.data() + j * ci;
          for (int64_t i = 0; i < ci; ++i) {
            const float s = column[i];
            if (!(s >= min_score)) continue;
            if (*heap.size == k && s < heap.data[0].score) continue;
            if (excluded(j0 + j, i0 + i)) continue;
            heap.Push(Candidate{s, i0 + i});
          }
        }
      }
      local_stats.topk_seconds += topk_timer.ElapsedSeconds();
    }
  }
  for (int64_t q = 0; q < n; ++q) {
    Candidate* begin = heaps.data() + q * k;
    std::sort(begin, begin + heap_sizes[q], Better);
    for (int64_t r = 0; r < heap_sizes[q]; ++r) {
      result.labels[q * k + r] = begin[r].label;
      result.scores[q * k + r] = begin[r].score;
    }
  }
  local_stats.total_seconds = total_timer.ElapsedSeconds();
  if (stats) *stats = local_stats;
  return result;
}

}  // namespace

void ExactBlockSizes(int64_t num_queries,
                     int64_t num_db,
                     int dim,
                     const SearchOptions& options,
                     int64_t* query_block,
                     int64_t* db_block,
                     int64_t* working_bytes) {
  BlockSizesImpl(num_queries, num_db, dim, false, false, options, query_block, db_block,
                 working_bytes);
}

SearchResult Search(const DescriptorSource& queries,
                    const DescriptorSource& db,
                    const SearchOptions& options,
                    const std::vector<int64_t>* query_ids,
                    const std::vector<int64_t>* db_ids,
                    SearchStats* stats) {
  internal::ThrowIfNotFinite("min_score", options.min_score, /*allow_negative_infinity=*/true);
  MEGALOC_CHECK_MSG(options.Check(), "Invalid search options (see the log for the reason)");
  MEGALOC_CHECK_MSG((query_ids == nullptr) == (db_ids == nullptr),
                    "query_ids and db_ids must be given together");
  if (query_ids != nullptr) {
    MEGALOC_CHECK_EQ(static_cast<int64_t>(query_ids->size()), queries.NumRows());
    MEGALOC_CHECK_EQ(static_cast<int64_t>(db_ids->size()), db.NumRows());
  }
  if (queries.NumRows() > 0 && db.NumRows() > 0) {
    MEGALOC_CHECK_MSG(queries.Dim() == db.Dim(), "Query descriptors have dimension "
                                                     << queries.Dim() << " but database descriptors "
                                                     << db.Dim());
  }
  switch (options.backend) {
    case SearchBackend::kExact:
      // The symmetric engine keeps the heaps of all queries; beyond half the budget, block queries.
      if (&queries == &db && options.symmetric &&
          queries.NumRows() * (std::min<int64_t>(options.num_neighbors, db.NumRows()) *
                                   static_cast<int64_t>(sizeof(Candidate)) + 8) <=
              options.memory_limit / 2 &&
          (query_ids == db_ids || (query_ids != nullptr && *query_ids == *db_ids))) {
        return SymmetricSearch(queries, options, query_ids, stats);
      }
      return ExactSearch(queries, db, options, query_ids, db_ids, stats);
    case SearchBackend::kFaissIvf:
    case SearchBackend::kFaissHnsw:
#ifdef MEGALOC_FAISS_ENABLED
      SetBlasThreads(options.num_threads);
      return internal::FaissSearch(queries, db, options, query_ids, db_ids, stats);
#else
      throw std::runtime_error("The retrieval backend '" + SearchBackendToString(options.backend) +
                               "' requires FAISS support, but megaloc was built without FAISS "
                               "(install libfaiss-dev and reconfigure with -DMEGALOC_FAISS_ENABLED=ON)");
#endif
  }
  MEGALOC_THROW(InvalidArgument, "Unknown retrieval backend");
}

SearchResult Search(const DescriptorMatrix& queries,
                    const DescriptorMatrix& db,
                    const SearchOptions& options,
                    const std::vector<int64_t>* query_ids,
                    const std::vector<int64_t>* db_ids,
                    SearchStats* stats) {
  const int dim = static_cast<int>(std::max(queries.cols(), db.cols()));
  MEGALOC_CHECK_MSG(queries.cols() == db.cols() || queries.rows() == 0 || db.rows() == 0,
                    "Query descriptors have dimension " << queries.cols()
                                                        << " but database descriptors "
                                                        << db.cols());
  MatrixDescriptorSource q(queries.data(), queries.rows(), std::max(dim, 1));
  if (queries.data() == db.data() && queries.rows() == db.rows()) {
    return Search(q, q, options, query_ids, db_ids, stats);  // self-retrieval
  }
  MatrixDescriptorSource d(db.data(), db.rows(), std::max(dim, 1));
  return Search(q, d, options, query_ids, db_ids, stats);
}

std::string RetrievalGemmBackend() { return RetrievalGemm().name; }

double RecallAtK(const SearchResult& exact, const SearchResult& approx) {
  MEGALOC_CHECK_EQ(exact.num_queries, approx.num_queries);
  double sum = 0.0;
  int64_t counted = 0;
  for (int64_t i = 0; i < exact.num_queries; ++i) {
    const int64_t n = exact.NumValid(i);
    if (n == 0) continue;
    std::unordered_set<int64_t> truth(exact.labels.begin() + i * exact.k,
                                      exact.labels.begin() + i * exact.k + n);
    int64_t hits = 0;
    for (int64_t r = 0; r < approx.NumValid(i); ++r) hits += truth.count(approx.Label(i, r));
    sum += static_cast<double>(hits) / n;
    ++counted;
  }
  return counted == 0 ? 1.0 : sum / counted;
}

int64_t ParseByteSize(const std::string& text) {
  const std::string t = Trim(text);
  size_t pos = 0;
  double value = 0.0;
  try {
    value = std::stod(t, &pos);
  } catch (const std::exception&) {
    MEGALOC_THROW(InvalidArgument, "Invalid byte size '" << text << "' (examples: 4096, 512MB, 2GiB)");
  }
  std::string unit = ToLower(Trim(t.substr(pos)));
  double scale = 1.0;
  if (unit.empty() || unit == "b") {
    scale = 1.0;
  } else {
    const char c = unit[0];
    int power = c == 'k' ? 1 : c == 'm' ? 2 : c == 'g' ? 3 : c == 't' ? 4 : 0;
    std::string rest = unit.substr(1);
    if (power == 0 || !(rest.empty() || rest == "b" || rest == "i" || rest == "ib")) {
      MEGALOC_THROW(InvalidArgument,
                    "Invalid byte size '" << text << "' (units: B, K/KiB, M/MiB, G/GiB, T/TiB = powers "
                                          << "of 1024; kB, MB, GB, TB = powers of 1000)");
    }
    const double base = rest == "b" ? 1000.0 : 1024.0;
    scale = std::pow(base, power);
  }
  if (!(value > 0.0) || !std::isfinite(value * scale) || value * scale > 9.0e18) {
    MEGALOC_THROW(InvalidArgument, "Invalid byte size '" << text << "' (must be positive)");
  }
  return static_cast<int64_t>(value * scale);
}

}  // namespace megaloc
