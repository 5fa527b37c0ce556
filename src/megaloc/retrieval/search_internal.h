#pragma once

// Internal: backends of Search() that live in their own translation units.

#include <cstdint>
#include <string>
#include <vector>

#include "megaloc/retrieval/search.h"

namespace megaloc {
namespace internal {

// Throws InvalidArgument "Invalid option <name>: <value> (must be a finite number...)" when `value`
// is NaN or infinite (-infinity passes when allow_negative_infinity). The entry points call this
// before Check(), so a non-finite floating-point option is one plain error line rather than a
// logged "Check failed" followed by a generic exception.
void ThrowIfNotFinite(const std::string& name, double value, bool allow_negative_infinity = false);

// Retrieval GEMM routing (search.cc). Width in bits of the widest vectors the sgemm kernels of an
// OpenBLAS core (openblas_get_corename()) use: 512 (SkylakeX, Cooperlake, SapphireRapids), 256
// (Haswell, Zen, SandyBridge, the Bulldozer family), 128 for the SSE cores and unknown names.
int OpenBlasCoreVectorBits(const std::string& core);
// The same for this CPU, usable by the OS: 512 (AVX-512 F/BW/DQ/VL), 256 (AVX2 + FMA) or 128.
int CpuVectorBits();
// True when oneDNN's sgemm should replace OpenBLAS's: an OpenBLAS core (non-empty) with narrower
// kernels than the CPU's vectors.
bool PreferDnnlSgemm(const std::string& core, int cpu_vector_bits);

// The padded result every backend starts from: k = min(num_neighbors, nb) columns, labels -1 and
// scores -infinity; `stats` gets the query and database counts.
SearchResult PaddedSearchResult(int64_t num_queries,
                                int64_t num_db,
                                const SearchOptions& options,
                                SearchStats* stats);

#ifdef MEGALOC_FAISS_ENABLED
// kFaissIvf / kFaissHnsw (faiss_search.cc). Same contract as Search().
SearchResult FaissSearch(const DescriptorSource& queries,
                         const DescriptorSource& db,
                         const SearchOptions& options,
                         const std::vector<int64_t>* query_ids,
                         const std::vector<int64_t>* db_ids,
                         SearchStats* stats);
#endif

}  // namespace internal
}  // namespace megaloc
