#pragma once

// Pair graphs for structure-from-motion: one pair list that combines global-descriptor retrieval
// (hloc's pairs_from_retrieval), sequential neighbours (video), loop closures, position priors
// (COLMAP's spatial matcher) and a connectivity guarantee.
//
// The graph has one node per image (the images with a descriptor) and one undirected edge per
// unordered pair {a, b}, a != b. Retrieval edges follow hloc (retrieval.h); every other source only
// adds pairs that are not in the list yet (in either orientation), so the list never repeats a pair
// that retrieval did not repeat itself (`unique` removes the retrieval duplicates too).
//
// Connectivity (`connect`): the components of the graph are joined by the fewest and best pairs:
// the maximum spanning forest, over descriptor similarities, of the graph whose nodes are the
// components and whose edge weight between two components is the highest similarity between an
// image of one and an image of the other (Kruskal on the best inter-component edges). It is computed
// Borůvka-style with the blocked exact search (search.h) and the component label as the self mask,
// so no N x N matrix is ever held: each round, every component takes its best external pair, which
// at least halves the number of components; the best `connect_candidates` external neighbours of
// every image are kept between rounds, so most rounds need no new search.

#include <cstdint>
#include <string>
#include <vector>

#include "megaloc/retrieval/pairs_io.h"
#include "megaloc/retrieval/search.h"

namespace megaloc {

class PositionPriors;

// ---------------------------------------------------------------------------------------------------
// Graph statistics and components

struct PairGraphStats {
  int64_t num_images = 0;      // nodes
  int64_t num_pairs = 0;       // unique unordered pairs (edges)
  int64_t num_components = 0;  // connected components (an image in no pair is one on its own)
  int64_t num_isolated = 0;    // images in no pair
  double mean_degree = 0.0;    // 2 * num_pairs / num_images (0 without images)
};

// Component label of every image: labels[i] in [0, num_components), numbered in the order of
// first appearance in `names`. `names` must be unique; a pair naming an image that is not in
// `names` throws InvalidArgument. Self pairs are ignored.
std::vector<int64_t> ConnectedComponents(const std::vector<std::string>& names,
                                         const std::vector<ImagePair>& pairs,
                                         int64_t* num_components = nullptr);

// Nodes, edges, components and mean degree of the graph (same rules as ConnectedComponents).
PairGraphStats DescribePairGraph(const std::vector<std::string>& names,
                                 const std::vector<ImagePair>& pairs);

// ---------------------------------------------------------------------------------------------------
// Sequences (video captures)

struct SequenceOptions {
  // Pair every frame with the next `overlap` frames of its sequence (0 = off), like COLMAP's
  // sequential matcher (SequentialMatching.overlap).
  int overlap = 0;
  // Images are grouped into sequences by folder (the name up to the last '/'; images at the root
  // form one sequence) unless `pattern` is set: an ECMAScript regular expression searched in the
  // name; images with the same text for its first capture group (the whole match if it has no
  // group) form one sequence, and images it does not match are in no sequence. Frames are ordered
  // by name (byte order) within a sequence.
  std::string pattern;
  // Loop closure: retrieval skips images of the same sequence that are `loop_closure` frames apart
  // or less (they are left to the sequential pairs), and still retrieves across sequences and from
  // frames further apart. 0 = off.
  int loop_closure = 0;

  bool Check() const;
};

// Sequence membership of every name: sequence[i] = sequence index (-1 = in no sequence) and
// frame[i] = position of the name in its sequence (sorted by name). Throws InvalidArgument for a
// malformed pattern.
struct SequenceLayout {
  std::vector<int64_t> sequence;
  std::vector<int64_t> frame;
  int64_t num_sequences = 0;
  int64_t num_unassigned = 0;  // names in no sequence (pattern did not match)

  // True if a and b are in the same sequence and at most `distance` frames apart.
  bool Near(int64_t a, int64_t b, int64_t distance) const {
    return sequence[a] >= 0 && sequence[a] == sequence[b] &&
           (frame[a] > frame[b] ? frame[a] - frame[b] : frame[b] - frame[a]) <= distance;
  }
};
SequenceLayout ComputeSequenceLayout(const std::vector<std::string>& names,
                                     const std::string& pattern);

// Sequential pairs: every frame with the next `overlap` frames of its sequence, oriented (earlier,
// later), each unordered pair once, sequences in order of their first name, frames in name order.
// One implementation for `megaloc pairs` and `megaloc colmap_matcher`.
std::vector<ImagePair> SequentialPairs(const std::vector<std::string>& names,
                                       const SequenceOptions& options);

// ---------------------------------------------------------------------------------------------------
// Connectivity

struct ConnectOptions {
  // External neighbours kept per image between Borůvka rounds (more = fewer searches in later
  // rounds, 12 bytes more per image each).
  int num_candidates = 8;
  // Working memory and threads of the searches (search.h).
  int64_t memory_limit = int64_t{256} << 20;
  int num_threads = -1;

  bool Check() const;
};

struct ConnectStats {
  int64_t components_before = 0;
  int64_t components_after = 0;
  int64_t num_added = 0;          // pairs added (components_before - components_after)
  int64_t num_rounds = 0;         // Borůvka rounds
  int64_t num_searches = 0;       // exact searches run (the first covers every image)
  int64_t num_searched_rows = 0;  // query rows over all searches
  double seconds = 0.0;
};

// The pairs that join the components of the graph (names, pairs) into one: the maximum spanning
// forest over similarities (see the top of this file), components_before - 1 pairs, each oriented
// (image of the component that chose it, its best external neighbour), in the order they were
// added, with their similarity. Rows of `descriptors` correspond to `names`. min_score does not
// apply: every image with a descriptor ends up in one component (NaN scores are never used: an
// image whose every score is NaN stays on its own).
std::vector<ScoredImagePair> ConnectPairGraph(const std::vector<std::string>& names,
                                              const DescriptorSource& descriptors,
                                              const std::vector<ImagePair>& pairs,
                                              const ConnectOptions& options,
                                              ConnectStats* stats = nullptr);

// ---------------------------------------------------------------------------------------------------
// Bridges
//
// A bridge is a pair whose loss splits its component: every pair of a k = 1 retrieval list or of a
// sequential chain, every pair `connect` adds. When COLMAP's geometric verification rejects a bridge
// (too few inliers), the reconstruction breaks there, or the image at its end is never registered.
// Covering every bridge by a cycle leaves a 2-edge-connected graph: any single pair may fail and each
// component stays connected.

// The bridges of the graph (names, pairs) as (name1, name2) with name1 < name2 in byte order,
// sorted. Self pairs and repeats are ignored; names must be unique and every pair's images named.
std::vector<ImagePair> FindBridges(const std::vector<std::string>& names,
                                   const std::vector<ImagePair>& pairs);

struct BridgeCoverStats {
  int64_t bridges_before = 0;     // bridges of the input graph
  int64_t bridges_after = 0;      // left: only where no usable pair exists (NaN scores, one image)
  int64_t num_added = 0;          // pairs added
  int64_t num_rounds = 0;         // searches (leaf groups' images, from round 3 all uncovered groups')
  int64_t num_searched_rows = 0;  // query rows over all searches
  double seconds = 0.0;
};

// Pairs that cover every bridge of the graph (names, pairs), most similar first: the bridges and the
// 2-edge-connected groups they join form a tree per component; each round, the images of the leaf
// groups of that tree search their `num_candidates` best images outside their group, and candidates
// are taken best first when they close a cycle over at least one bridge still uncovered (the bridges
// on the tree path between the two groups; the groups on it merge): first those between two leaf
// groups (one such pair covers the bridges of both leaves: for a tree with L leaves, as few as
// ceil(L / 2) pairs), then the others. Leaves are where covering must start (a leaf's bridge is
// covered only by a pair leaving the leaf), so the first two rounds never search the images of a
// graph's well-connected core; from the third round on, every group with an uncovered bridge
// searches (a long chain is covered in one such round instead of a few links per round). Pairs are
// (searching image, candidate) with their similarity, in the order they were taken. Components are
// not joined here (ConnectPairGraph first).
std::vector<ScoredImagePair> CoverBridges(const std::vector<std::string>& names,
                                          const DescriptorSource& descriptors,
                                          const std::vector<ImagePair>& pairs,
                                          const ConnectOptions& options,
                                          BridgeCoverStats* stats = nullptr);

// ---------------------------------------------------------------------------------------------------
// Query expansion

struct QueryExpansionOptions {
  // αQE (Radenović et al., "Fine-tuning CNN Image Retrieval with No Human Annotation", TPAMI 2018):
  // each query is replaced by the L2-normalised sum of itself and its `qe_num` best database
  // descriptors weighted by score^qe_alpha (negative scores weigh 0), and retrieval runs again.
  // qe_num = 0 = off.
  int qe_num = 0;
  float qe_alpha = 3.0f;
  // Database-side augmentation (DBA, same paper): every database descriptor is replaced the same way
  // by its `dba_num` best database neighbours before retrieval (and before αQE). 0 = off.
  int dba_num = 0;
  float dba_alpha = 3.0f;

  bool Enabled() const { return qe_num > 0 || dba_num > 0; }
  bool Check() const;
};

// Front ends: throws InvalidArgument naming the command-line option (--qe_num, --dba_num, --qe_alpha,
// --dba_alpha) of the first bad value (a negative count; a negative or non-finite alpha).
void ThrowIfInvalid(const QueryExpansionOptions& options);

// The αQE/DBA weighted combination: row i of the result is normalise(x_i + sum_r w_ir x_{l_ir}) over
// the valid neighbours l_ir of row i in `neighbors` (labels into `db`), w = max(score, 0)^alpha,
// using at most `num` of them. `queries` gives x_i. Exposed for tests; returns num_queries x dim.
DescriptorMatrix ExpandDescriptors(const DescriptorSource& queries,
                                   const DescriptorSource& db,
                                   const SearchResult& neighbors,
                                   int num,
                                   float alpha);

// ---------------------------------------------------------------------------------------------------
// The combined pair list (SfM: every image is a query and a database image)

struct PairGraphOptions {
  // Retrieval top-k: num_neighbors (0 = no retrieval pairs), min_score, memory, threads, backend.
  SearchOptions search;
  // Write each unordered pair once (first orientation), as COLMAP de-duplicates.
  bool unique = false;
  SequenceOptions sequence;
  // Position priors (needs `priors`): drop retrieval pairs whose images are more than
  // max_distance metres apart (< 0 = off; NaN and infinities are refused; pairs with an image
  // without a prior are kept), and add the spatial_k nearest images by position of every image that
  // has a prior (0 = off).
  double max_distance = -1.0;
  int spatial_k = 0;
  QueryExpansionOptions expansion;
  // Join all components (ConnectPairGraph; its memory_limit and num_threads are taken from `search`).
  bool connect = false;
  ConnectOptions connect_options;
  // After `connect`, cover every bridge (CoverBridges; same memory, threads and candidates): any one
  // pair may fail verification and the graph stays connected. Implies connect.
  bool cover_bridges = false;

  bool Check() const;
};

// Where each pair came from.
enum class PairSource { kRetrieval, kSequential, kSpatial, kConnect, kBridge };

struct PairGraphResult {
  std::vector<ScoredImagePair> pairs;  // output order: retrieval, sequential, spatial, connect, bridge
  std::vector<PairSource> sources;     // one per pair
  int64_t num_retrieval = 0;           // pairs kept from each source (after de-duplication)
  int64_t num_sequential = 0;
  int64_t num_spatial = 0;
  int64_t num_connect = 0;
  int64_t num_bridge = 0;
  int64_t num_dropped_by_distance = 0;      // retrieval pairs farther than max_distance
  int64_t num_dropped_by_loop_closure = 0;  // retrieval results within loop_closure frames
  int64_t num_with_prior = 0;               // images with a position prior
  SequenceLayout sequences;
  PairGraphStats before_connect;  // graph of every source but connect and bridge
  PairGraphStats after;           // the final graph
  ConnectStats connect;
  BridgeCoverStats bridges;
  SearchStats search;             // the final retrieval search
};

// The combined list for `names` (unique, no whitespace) with descriptors `descriptors` (row i =
// names[i]) and optional position priors. Retrieval pairs are hloc's: queries in name order, best
// first, both orientations (unless `unique`). Throws InvalidArgument on bad options or when
// max_distance / spatial_k are set without priors.
PairGraphResult BuildPairGraph(const std::vector<std::string>& names,
                               const DescriptorSource& descriptors,
                               const PositionPriors* priors,
                               const PairGraphOptions& options);

// "retrieval" / "sequential" / "spatial" / "connect" / "bridge".
std::string PairSourceToString(PairSource source);

}  // namespace megaloc
