#pragma once

// k-nearest-neighbour search of global descriptors by inner product (MegaLoc descriptors are
// L2-normalised, so the inner product is the cosine similarity and hloc's retrieval score).
//
// Search contract (in the spirit of faiss/Index.h `Index::search`):
//   Given nq query vectors and nb database vectors of dimension d, a search returns, for every query
//   i, nq * k results laid out row-major: labels[i * k + j] is the database row index of the j-th
//   best match of query i and scores[i * k + j] its inner product, j = 0 .. k-1, in
//     * descending score,
//     * ties (bit-identical float scores) broken by ascending database row index.
//   When fewer than k database rows qualify (nb < k, excluded rows, scores below min_score), the
//   remaining slots are padded with label -1 and score -infinity; valid results always come first.
//   k = SearchOptions::num_neighbors is *clamped* to nb (hloc's torch.topk crashes there); the
//   returned SearchResult::k is the clamped value.
//   A database row j is skipped for query i when
//     * query_ids and db_ids are given and query_ids[i] == db_ids[j] (hloc's self mask: callers
//       map image names to ids, so that equality of names = equality of ids), or
//     * its score < min_score (hloc semantics: a score equal to min_score is kept; NaN is skipped).
//   Exact search (SearchBackend::kExact) streams query blocks x database blocks through one
//   cblas_sgemm each and keeps a running top-k per query: the full nq x nb similarity matrix is never
//   materialised, and peak memory is bounded by SearchOptions::memory_limit (plus the caller's own
//   data and O(nq * k) for the results). Self-retrieval (queries and database are the same source)
//   multiplies only the upper block triangle of the symmetric similarity matrix.
//
// Databases larger than RAM: the database is a DescriptorSource that can be read block by block
// (e.g. HdfDescriptorSource in pairs_from_retrieval.h reads float16/float32 hloc HDF5 files one block
// at a time), so only one block is ever resident in float32.

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <Eigen/Core>

namespace megaloc {

// Row-major float32 matrix of descriptors, one descriptor per row.
using DescriptorMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// A matrix of descriptors that can be read in blocks of consecutive rows. Implementations must be
// safe to call ReadRows on from one thread at a time (the engine never calls it concurrently).
class DescriptorSource {
 public:
  virtual ~DescriptorSource() = default;

  virtual int64_t NumRows() const = 0;
  virtual int Dim() const = 0;

  // Copies rows [begin, begin + count) as float32 into `out` (count x Dim(), row-major).
  virtual void ReadRows(int64_t begin, int64_t count, float* out) const = 0;

  // If the rows are resident in memory as row-major float32, a pointer to row `begin` (the engine
  // then skips the copy); nullptr otherwise (default).
  virtual const float* ResidentRows(int64_t begin) const { return nullptr; }
};

// A DescriptorSource viewing caller-owned row-major float32 memory (no copy). The memory must
// outlive the source.
class MatrixDescriptorSource : public DescriptorSource {
 public:
  MatrixDescriptorSource(const float* data, int64_t num_rows, int dim);
  explicit MatrixDescriptorSource(const DescriptorMatrix& matrix);

  int64_t NumRows() const override { return num_rows_; }
  int Dim() const override { return dim_; }
  void ReadRows(int64_t begin, int64_t count, float* out) const override;
  const float* ResidentRows(int64_t begin) const override;

 private:
  const float* data_;
  int64_t num_rows_;
  int dim_;
};

// A DescriptorSource whose rows are produced on demand by a callback (synthetic data, custom
// storage). generator(begin, count, out) must fill count x dim floats.
class CallbackDescriptorSource : public DescriptorSource {
 public:
  using Generator = std::function<void(int64_t begin, int64_t count, float* out)>;
  CallbackDescriptorSource(int64_t num_rows, int dim, Generator generator);

  int64_t NumRows() const override { return num_rows_; }
  int Dim() const override { return dim_; }
  void ReadRows(int64_t begin, int64_t count, float* out) const override;

 private:
  int64_t num_rows_;
  int dim_;
  Generator generator_;
};

enum class SearchBackend {
  kExact,      // blocked sgemm + running top-k: exact, bounded memory (default)
  kFaissIvf,   // faiss IndexIVFFlat (inner product): approximate, the database is held in RAM
  kFaissHnsw,  // faiss IndexHNSWFlat (inner product): approximate, the database is held in RAM
};

// "exact" / "faiss_ivf" / "faiss_hnsw".
std::string SearchBackendToString(SearchBackend backend);
// Throws InvalidArgument on an unknown name (the message lists the valid ones).
SearchBackend SearchBackendFromString(const std::string& name);
// True if this build has FAISS (compiled with MEGALOC_FAISS_ENABLED).
bool IsFaissAvailable();

struct SearchOptions {
  // Number of neighbours k per query (clamped to the database size). hloc's --num_matched.
  int num_neighbors = 50;

  // Results with score < min_score are dropped (a score equal to min_score is kept). hloc uses 0.
  // Use -std::numeric_limits<float>::infinity() to keep every finite score. NaN and +infinity are
  // refused (InvalidArgument naming min_score).
  float min_score = 0.0f;

  // Budget in bytes for the engine's working buffers (query block, database block, similarity
  // block, per-query heaps). The exact engine picks block sizes so that these fit; the minimum
  // usable budget is a few descriptors (one query row + one database row + the heaps).
  int64_t memory_limit = int64_t{1} << 30;  // 1 GiB

  // Threads for the GEMM and the top-k merge; -1 = leave the BLAS default (all cores).
  int num_threads = -1;

  SearchBackend backend = SearchBackend::kExact;

  // Self-retrieval (SfM): when `queries` and `db` are the SAME DescriptorSource object (or the
  // matrix overload gets the same matrix) and the ids are identical, compute only the upper block
  // triangle of the symmetric similarity matrix (about half the FLOPs; heaps of all queries are kept
  // at once: num_queries * (16 * k + 8) bytes, counted in memory_limit; when that exceeds half of
  // memory_limit the generic engine is used). Same results.
  bool symmetric = true;

  // Optional cap on the block sizes of the exact engine (0 = derived from memory_limit only).
  // Mostly for tests and benchmarks.
  int64_t max_query_block = 0;
  int64_t max_db_block = 0;

  // kFaissIvf: number of inverted lists (-1 = 4 * sqrt(nb), at most nb / 39) and lists probed per
  // query (more = slower, closer to exact).
  int ivf_num_lists = -1;
  int ivf_num_probes = 32;

  // kFaissHnsw: graph degree M, efConstruction and efSearch (efSearch is raised to >= k + 1).
  int hnsw_m = 32;
  int hnsw_ef_construction = 200;
  int hnsw_ef_search = 256;

  bool Check() const;
};

struct SearchResult {
  int64_t num_queries = 0;
  int64_t k = 0;               // columns of labels/scores: min(num_neighbors, nb)
  std::vector<int64_t> labels;  // num_queries * k, -1 = no result
  std::vector<float> scores;    // num_queries * k, -infinity = no result

  int64_t Label(int64_t query, int64_t rank) const { return labels[query * k + rank]; }
  float Score(int64_t query, int64_t rank) const { return scores[query * k + rank]; }
  // Number of valid (non-padding) results of a query.
  int64_t NumValid(int64_t query) const;
};

struct SearchStats {
  int64_t num_queries = 0;
  int64_t num_db = 0;
  int64_t query_block = 0;       // rows per query block (exact engine)
  int64_t db_block = 0;          // rows per database block (exact engine)
  int64_t num_db_passes = 0;     // how many times the database was streamed
  int64_t working_bytes = 0;     // bytes of the engine's buffers (<= memory_limit for kExact)
  double gemm_seconds = 0.0;     // time in the sgemm (see RetrievalGemmBackend)
  double gemm_flops = 0.0;       // floating-point operations of the exact engine's sgemm/ssyrk calls
  double read_seconds = 0.0;     // time reading/converting blocks (DescriptorSource::ReadRows)
  double topk_seconds = 0.0;     // time maintaining the running top-k
  double build_seconds = 0.0;    // faiss: index construction (train + add)
  double total_seconds = 0.0;
};

// Searches `db` for the k best matches of every row of `queries` (contract at the top of this file).
// `query_ids` / `db_ids` (sizes NumRows() of each, or both null) implement the self mask.
// Throws InvalidArgument on bad options or mismatched dimensions, and std::runtime_error naming the
// missing backend when a FAISS backend is requested in a build without FAISS.
SearchResult Search(const DescriptorSource& queries,
                    const DescriptorSource& db,
                    const SearchOptions& options,
                    const std::vector<int64_t>* query_ids = nullptr,
                    const std::vector<int64_t>* db_ids = nullptr,
                    SearchStats* stats = nullptr);

// Convenience overload on in-memory matrices.
SearchResult Search(const DescriptorMatrix& queries,
                    const DescriptorMatrix& db,
                    const SearchOptions& options,
                    const std::vector<int64_t>* query_ids = nullptr,
                    const std::vector<int64_t>* db_ids = nullptr,
                    SearchStats* stats = nullptr);

// The block sizes the exact engine uses for the given shape and options (exposed for tests/docs).
void ExactBlockSizes(int64_t num_queries,
                     int64_t num_db,
                     int dim,
                     const SearchOptions& options,
                     int64_t* query_block,
                     int64_t* db_block,
                     int64_t* working_bytes);

// The GEMM the exact engine uses, e.g. "OpenBLAS SkylakeX" or "oneDNN dnnl_sgemm (OpenBLAS Haswell
// bypassed: 256-bit kernels on a CPU with 512-bit vectors)": OpenBLAS unless the core it detected
// uses narrower vectors than the CPU has (OpenBLAS 0.3.21 picks SSE kernels on Intel Emerald
// Rapids and AVX2 kernels on AMD Zen 5, CPUs newer than itself) and libdnnl (oneDNN, which picks
// its ISA at run time) can be loaded. Environment MEGALOC_RETRIEVAL_GEMM=blas|dnnl forces one (read
// once).
std::string RetrievalGemmBackend();

// Fraction of results of `approx` found in `exact` (recall@k, averaged over queries; the set of
// valid exact results is the denominator). Both must have the same num_queries.
double RecallAtK(const SearchResult& exact, const SearchResult& approx);

// Parses a byte size: "4096", "512MB", "2GB", "1.5GiB", "64k" (K/M/G/T, decimal kB/MB/GB/TB = 10^3n,
// KiB/MiB/GiB/TiB and bare K/M/G/T = 2^10n). Throws InvalidArgument on a malformed value.
int64_t ParseByteSize(const std::string& text);

}  // namespace megaloc
