#pragma once

// Internal: backends of Search() that live in their own translation units.

#include <cstdint>
#include <vector>

#include "megaloc/retrieval/search.h"

namespace megaloc {
namespace internal {

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
