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
