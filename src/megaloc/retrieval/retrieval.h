#pragma once

// Public entry point of megaloc's retrieval module (library megaloc_retrieval, no torch):
//
//  * megaloc/retrieval/search.h      exact blocked top-k by inner product (bounded memory, streaming
//                                    databases), optional FAISS IVF/HNSW backends, search contract.
//  * megaloc/retrieval/pairs_io.h    pair-list writer/reader (hloc + COLMAP format), unique pairs,
//                                    sequential-neighbour pairs, merging.
//  * megaloc/retrieval/pairs_from_retrieval.h
//                                    hloc's pairs_from_retrieval on named descriptors: in memory
//                                    (RetrievePairs) or from hloc HDF5 files (PairsFromRetrieval).

#include "megaloc/retrieval/pairs_from_retrieval.h"
#include "megaloc/retrieval/pairs_io.h"
#include "megaloc/retrieval/search.h"
