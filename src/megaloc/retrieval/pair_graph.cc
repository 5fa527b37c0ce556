#include "megaloc/retrieval/pair_graph.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <regex>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "megaloc/retrieval/position_priors.h"
#include "megaloc/retrieval/search_internal.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/timer.h"

namespace megaloc {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

class UnionFind {
 public:
  explicit UnionFind(int64_t n) : parent_(n) { std::iota(parent_.begin(), parent_.end(), 0); }
  int64_t Find(int64_t x) {
    while (parent_[x] != x) {
      parent_[x] = parent_[parent_[x]];
      x = parent_[x];
    }
    return x;
  }
  // True if a and b were in different sets.
  bool Union(int64_t a, int64_t b) {
    a = Find(a);
    b = Find(b);
    if (a == b) return false;
    if (b < a) std::swap(a, b);
    parent_[b] = a;
    return true;
  }

 private:
  std::vector<int64_t> parent_;
};

// A set of EdgeKeys (open addressing, linear probing): the pair graph's de-duplication inserts one
// key per retrieved pair (500 000 at 10k images, k = 50), where std::unordered_set's node per key
// cost more than the retrieval's top-k.
class EdgeKeySet {
 public:
  // Inserts `key` (never kEmpty); true if it was not there.
  bool insert(uint64_t key) {
    if (4 * (size_ + 1) > 3 * slots_.size()) Grow();
    const size_t mask = slots_.size() - 1;
    for (size_t i = Hash(key) & mask;; i = (i + 1) & mask) {
      if (slots_[i] == key) return false;
      if (slots_[i] == kEmpty) {
        slots_[i] = key;
        ++size_;
        return true;
      }
    }
  }
  bool contains(uint64_t key) const {
    if (slots_.empty()) return false;
    const size_t mask = slots_.size() - 1;
    for (size_t i = Hash(key) & mask;; i = (i + 1) & mask) {
      if (slots_[i] == key) return true;
      if (slots_[i] == kEmpty) return false;
    }
  }
  size_t size() const { return size_; }
  template <typename Fn>
  void ForEach(Fn fn) const {
    for (uint64_t key : slots_) {
      if (key != kEmpty) fn(key);
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t Hash(uint64_t key) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return key;
  }
  void Grow() {
    std::vector<uint64_t> old = std::move(slots_);
    slots_.assign(old.empty() ? 1024 : 2 * old.size(), kEmpty);
    size_ = 0;
    for (uint64_t key : old) {
      if (key != kEmpty) insert(key);
    }
  }
  std::vector<uint64_t> slots_;
  size_t size_ = 0;
};

std::unordered_map<std::string, int64_t> IndexOfNames(const std::vector<std::string>& names) {
  std::unordered_map<std::string, int64_t> index;
  index.reserve(names.size() * 2);
  for (size_t i = 0; i < names.size(); ++i) {
    if (!index.emplace(names[i], static_cast<int64_t>(i)).second) {
      MEGALOC_THROW(InvalidArgument, "Duplicate image name '" << names[i] << "' in a pair graph");
    }
  }
  return index;
}

int64_t IndexOf(const std::unordered_map<std::string, int64_t>& index, const std::string& name) {
  auto it = index.find(name);
  if (it == index.end()) {
    MEGALOC_THROW(InvalidArgument, "Pair names image '" << name << "', which has no descriptor");
  }
  return it->second;
}

uint64_t EdgeKey(int64_t a, int64_t b) {
  if (a > b) std::swap(a, b);
  return (static_cast<uint64_t>(a) << 32) | static_cast<uint64_t>(b);
}

// The two images of an EdgeKey, lower index first.
std::pair<int64_t, int64_t> EdgeEnds(uint64_t key) {
  return {static_cast<int64_t>(key >> 32), static_cast<int64_t>(key & 0xffffffffu)};
}

// Statistics of the graph on n nodes whose unique edges are `keys` (EdgeKey).
PairGraphStats DescribeEdgeKeys(int64_t n, const EdgeKeySet& keys) {
  PairGraphStats stats;
  stats.num_images = n;
  stats.num_pairs = static_cast<int64_t>(keys.size());
  stats.num_components = n;
  std::vector<char> touched(n, 0);
  UnionFind uf(n);
  keys.ForEach([&](uint64_t key) {
    const auto [a, b] = EdgeEnds(key);
    touched[a] = touched[b] = 1;
    if (uf.Union(a, b)) --stats.num_components;
  });
  for (char t : touched) stats.num_isolated += t ? 0 : 1;
  stats.mean_degree = n > 0 ? 2.0 * static_cast<double>(stats.num_pairs) / n : 0.0;
  return stats;
}

// Rows of a source picked by index (for re-searching a few queries).
class SubsetSource : public DescriptorSource {
 public:
  SubsetSource(const DescriptorSource& source, const std::vector<int64_t>& rows)
      : source_(source), rows_(rows) {}
  int64_t NumRows() const override { return static_cast<int64_t>(rows_.size()); }
  int Dim() const override { return source_.Dim(); }
  void ReadRows(int64_t begin, int64_t count, float* out) const override {
    const int dim = source_.Dim();
    for (int64_t r = 0; r < count; ++r) {
      const float* resident = source_.ResidentRows(rows_[begin + r]);
      if (resident != nullptr) {
        std::memcpy(out + r * dim, resident, sizeof(float) * dim);
      } else {
        source_.ReadRows(rows_[begin + r], 1, out + r * dim);
      }
    }
  }

 private:
  const DescriptorSource& source_;
  const std::vector<int64_t>& rows_;
};

// The exact search of external candidates (connect, bridge cover): the best `t` images outside the
// query's own group, every score (no min_score).
SearchOptions CandidateSearch(const ConnectOptions& options, int64_t t) {
  SearchOptions search;
  search.num_neighbors = static_cast<int>(t);
  search.min_score = kNegInf;
  search.memory_limit = options.memory_limit;
  search.num_threads = options.num_threads;
  return search;
}

// Edge order of the spanning forest: higher score first, then the lower (min, max) index pair.
struct Edge {
  float score = kNegInf;
  int64_t a = -1;  // the image of the component that chose the edge
  int64_t b = -1;
  bool Valid() const { return a >= 0; }
};
bool BetterEdge(const Edge& x, const Edge& y) {
  if (!y.Valid()) return x.Valid();
  if (!x.Valid()) return false;
  if (x.score != y.score) return x.score > y.score;
  const auto kx = std::minmax(x.a, x.b);
  const auto ky = std::minmax(y.a, y.b);
  return kx < ky;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// Components and statistics

std::vector<int64_t> ConnectedComponents(const std::vector<std::string>& names,
                                         const std::vector<ImagePair>& pairs,
                                         int64_t* num_components) {
  const auto index = IndexOfNames(names);
  const int64_t n = static_cast<int64_t>(names.size());
  UnionFind uf(n);
  for (const ImagePair& p : pairs) uf.Union(IndexOf(index, p.name1), IndexOf(index, p.name2));
  std::vector<int64_t> labels(n, -1);
  std::unordered_map<int64_t, int64_t> label_of_root;
  for (int64_t i = 0; i < n; ++i) {
    auto [it, inserted] =
        label_of_root.emplace(uf.Find(i), static_cast<int64_t>(label_of_root.size()));
    labels[i] = it->second;
  }
  if (num_components != nullptr) *num_components = static_cast<int64_t>(label_of_root.size());
  return labels;
}

PairGraphStats DescribePairGraph(const std::vector<std::string>& names,
                                 const std::vector<ImagePair>& pairs) {
  PairGraphStats stats;
  const auto index = IndexOfNames(names);
  stats.num_images = static_cast<int64_t>(names.size());
  EdgeKeySet edges;
  std::vector<char> touched(names.size(), 0);
  UnionFind uf(stats.num_images);
  stats.num_components = stats.num_images;
  for (const ImagePair& p : pairs) {
    const int64_t a = IndexOf(index, p.name1);
    const int64_t b = IndexOf(index, p.name2);
    if (a == b) continue;
    if (edges.insert(EdgeKey(a, b))) {
      touched[a] = touched[b] = 1;
      if (uf.Union(a, b)) --stats.num_components;
    }
  }
  stats.num_pairs = static_cast<int64_t>(edges.size());
  for (char t : touched) stats.num_isolated += t ? 0 : 1;
  stats.mean_degree =
      stats.num_images > 0 ? 2.0 * static_cast<double>(stats.num_pairs) / stats.num_images : 0.0;
  return stats;
}

// ---------------------------------------------------------------------------------------------------
// Sequences

bool SequenceOptions::Check() const {
  CHECK_OPTION_GE(overlap, 0);
  CHECK_OPTION_GE(loop_closure, 0);
  return true;
}

SequenceLayout ComputeSequenceLayout(const std::vector<std::string>& names,
                                     const std::string& pattern) {
  const int64_t n = static_cast<int64_t>(names.size());
  SequenceLayout layout;
  layout.sequence.assign(n, -1);
  layout.frame.assign(n, -1);
  std::regex regex;
  if (!pattern.empty()) {
    try {
      regex = std::regex(pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      MEGALOC_THROW(InvalidArgument, "Invalid sequence pattern '" << pattern << "': " << e.what());
    }
  }
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return names[a] < names[b]; });
  std::unordered_map<std::string, int64_t> sequence_of_key;
  std::vector<int64_t> frames_so_far;
  for (int64_t i : order) {
    const std::string& name = names[i];
    std::string key;
    if (pattern.empty()) {
      const size_t slash = name.find_last_of('/');
      key = slash == std::string::npos ? "" : name.substr(0, slash);
    } else {
      std::smatch match;
      if (!std::regex_search(name, match, regex)) {
        ++layout.num_unassigned;
        continue;
      }
      key = match.size() > 1 && match[1].matched ? match[1].str() : match[0].str();
    }
    auto [it, inserted] = sequence_of_key.emplace(key, static_cast<int64_t>(sequence_of_key.size()));
    if (inserted) frames_so_far.push_back(0);
    layout.sequence[i] = it->second;
    layout.frame[i] = frames_so_far[it->second]++;
  }
  layout.num_sequences = static_cast<int64_t>(sequence_of_key.size());
  return layout;
}

namespace {

// Sequential pairs as index pairs (earlier, later), sequences in index order.
std::vector<std::pair<int64_t, int64_t>> SequentialIndexPairs(const SequenceLayout& layout,
                                                              int overlap) {
  std::vector<std::pair<int64_t, int64_t>> pairs;
  if (overlap <= 0) return pairs;
  std::vector<std::vector<int64_t>> members(layout.num_sequences);
  for (size_t i = 0; i < layout.sequence.size(); ++i) {
    if (layout.sequence[i] >= 0) members[layout.sequence[i]].push_back(static_cast<int64_t>(i));
  }
  for (auto& m : members) {
    std::sort(m.begin(), m.end(),
              [&](int64_t a, int64_t b) { return layout.frame[a] < layout.frame[b]; });
    for (size_t f = 0; f < m.size(); ++f) {
      for (size_t g = f + 1; g < m.size() && g <= f + static_cast<size_t>(overlap); ++g) {
        pairs.emplace_back(m[f], m[g]);
      }
    }
  }
  return pairs;
}

}  // namespace

std::vector<ImagePair> SequentialPairs(const std::vector<std::string>& names,
                                       const SequenceOptions& options) {
  MEGALOC_CHECK_MSG(options.Check(), "Invalid sequence options (see the log)");
  IndexOfNames(names);  // uniqueness
  const SequenceLayout layout = ComputeSequenceLayout(names, options.pattern);
  std::vector<ImagePair> pairs;
  for (const auto& [a, b] : SequentialIndexPairs(layout, options.overlap)) {
    pairs.push_back({names[a], names[b]});
  }
  return pairs;
}

// ---------------------------------------------------------------------------------------------------
// Connectivity

bool ConnectOptions::Check() const {
  CHECK_OPTION_GE(num_candidates, 1);
  CHECK_OPTION_GT(memory_limit, 0);
  CHECK_OPTION(num_threads == -1 || num_threads > 0);
  return true;
}

std::vector<ScoredImagePair> ConnectPairGraph(const std::vector<std::string>& names,
                                              const DescriptorSource& descriptors,
                                              const std::vector<ImagePair>& pairs,
                                              const ConnectOptions& options,
                                              ConnectStats* stats) {
  MEGALOC_CHECK_MSG(options.Check(), "Invalid connect options (see the log)");
  MEGALOC_CHECK_MSG(static_cast<int64_t>(names.size()) == descriptors.NumRows(),
                    names.size() << " names for " << descriptors.NumRows() << " descriptors");
  Timer timer;
  ConnectStats local;
  const auto index = IndexOfNames(names);
  const int64_t n = static_cast<int64_t>(names.size());
  UnionFind uf(n);
  int64_t components = n;
  for (const ImagePair& p : pairs) {
    if (uf.Union(IndexOf(index, p.name1), IndexOf(index, p.name2))) --components;
  }
  local.components_before = components;
  std::vector<ScoredImagePair> added;
  if (components <= 1) {
    local.components_after = components;
    local.seconds = timer.ElapsedSeconds();
    if (stats != nullptr) *stats = local;
    return added;
  }

  // Per image: its best external neighbours (as of the last search of that image), best first.
  const int64_t t = std::min<int64_t>(options.num_candidates, n - 1);
  std::vector<int64_t> labels(n * t, -1);
  std::vector<float> scores(n * t, kNegInf);
  std::vector<int64_t> size(n, 0), next(n, 0);
  std::vector<char> complete(n, 0);  // the list held every external image at search time
  const SearchOptions search = CandidateSearch(options, t);

  auto search_rows = [&](const std::vector<int64_t>& rows) {
    std::vector<int64_t> db_ids(n);
    for (int64_t j = 0; j < n; ++j) db_ids[j] = uf.Find(j);
    SearchResult result;
    if (static_cast<int64_t>(rows.size()) == n) {
      result = Search(descriptors, descriptors, search, &db_ids, &db_ids);
    } else {
      std::vector<int64_t> query_ids(rows.size());
      for (size_t r = 0; r < rows.size(); ++r) query_ids[r] = db_ids[rows[r]];
      SubsetSource queries(descriptors, rows);
      result = Search(queries, descriptors, search, &query_ids, &db_ids);
    }
    ++local.num_searches;
    local.num_searched_rows += static_cast<int64_t>(rows.size());
    for (size_t r = 0; r < rows.size(); ++r) {
      const int64_t i = rows[r];
      const int64_t valid = result.NumValid(static_cast<int64_t>(r));
      for (int64_t c = 0; c < t; ++c) {
        labels[i * t + c] = c < valid ? result.Label(static_cast<int64_t>(r), c) : -1;
        scores[i * t + c] = c < valid ? result.Score(static_cast<int64_t>(r), c) : kNegInf;
      }
      size[i] = valid;
      next[i] = 0;
      complete[i] = valid < t;
    }
  };
  // The first still-external cached neighbour of i (invalid edge if the cache is used up).
  auto front = [&](int64_t i) {
    const int64_t root = uf.Find(i);
    while (next[i] < size[i] && uf.Find(labels[i * t + next[i]]) == root) ++next[i];
    Edge e;
    if (next[i] < size[i]) e = Edge{scores[i * t + next[i]], i, labels[i * t + next[i]]};
    return e;
  };

  std::vector<int64_t> all(n);
  std::iota(all.begin(), all.end(), 0);
  search_rows(all);
  std::vector<Edge> best(n);
  while (components > 1) {
    ++local.num_rounds;
    std::fill(best.begin(), best.end(), Edge{});
    std::vector<int64_t> exhausted;
    for (int64_t i = 0; i < n; ++i) {
      const Edge e = front(i);
      if (e.Valid()) {
        Edge& b = best[uf.Find(i)];
        if (BetterEdge(e, b)) b = e;
      } else if (!complete[i]) {
        exhausted.push_back(i);
      }
    }
    // An image whose cached neighbours all joined its component can only matter if its best
    // external neighbour (at most its last cached score) may beat its component's best.
    std::vector<int64_t> rows;
    for (int64_t i : exhausted) {
      const Edge& b = best[uf.Find(i)];
      if (!b.Valid() || !(b.score > scores[i * t + t - 1])) rows.push_back(i);
    }
    if (!rows.empty()) {
      search_rows(rows);
      for (int64_t i : rows) {
        const Edge e = front(i);
        Edge& b = best[uf.Find(i)];
        if (BetterEdge(e, b)) b = e;
      }
    }
    std::vector<Edge> chosen;
    for (int64_t r = 0; r < n; ++r) {
      if (best[r].Valid()) chosen.push_back(best[r]);
    }
    std::sort(chosen.begin(), chosen.end(), BetterEdge);
    int64_t joined = 0;
    for (const Edge& e : chosen) {
      if (!uf.Union(e.a, e.b)) continue;  // both components picked the same edge
      added.push_back({{names[e.a], names[e.b]}, e.score});
      --components;
      ++joined;
    }
    if (joined == 0) break;  // only NaN similarities left between the components
  }
  local.components_after = components;
  local.num_added = static_cast<int64_t>(added.size());
  local.seconds = timer.ElapsedSeconds();
  if (stats != nullptr) *stats = local;
  return added;
}

// ---------------------------------------------------------------------------------------------------
// Bridges

namespace {

// Unique undirected edges (EdgeKeys) as adjacency lists in one array (CSR).
struct Adjacency {
  std::vector<int64_t> offsets;  // n + 1
  std::vector<int64_t> targets;
};

Adjacency BuildAdjacency(int64_t n, const EdgeKeySet& keys) {
  Adjacency adj;
  adj.offsets.assign(n + 1, 0);
  keys.ForEach([&](uint64_t key) {
    const auto [a, b] = EdgeEnds(key);
    ++adj.offsets[a + 1];
    ++adj.offsets[b + 1];
  });
  for (int64_t i = 0; i < n; ++i) adj.offsets[i + 1] += adj.offsets[i];
  adj.targets.resize(adj.offsets[n]);
  std::vector<int64_t> fill(adj.offsets.begin(), adj.offsets.end() - 1);
  keys.ForEach([&](uint64_t key) {
    const auto [a, b] = EdgeEnds(key);
    adj.targets[fill[a]++] = b;
    adj.targets[fill[b]++] = a;
  });
  return adj;
}

// Bridges (parent, child) by Tarjan's low-link, with an explicit stack (a video's chain of 100k
// frames would overflow the call stack). The edges are unique, so the tree edge back to the parent
// is recognised by its endpoint.
std::vector<std::pair<int64_t, int64_t>> BridgeIndices(int64_t n, const Adjacency& adj) {
  std::vector<int64_t> tin(n, -1), low(n, 0), parent(n, -1), cursor(n, 0);
  std::vector<std::pair<int64_t, int64_t>> bridges;
  std::vector<int64_t> stack;
  int64_t clock = 0;
  for (int64_t s = 0; s < n; ++s) {
    if (tin[s] >= 0) continue;
    tin[s] = low[s] = clock++;
    cursor[s] = adj.offsets[s];
    stack.push_back(s);
    while (!stack.empty()) {
      const int64_t v = stack.back();
      if (cursor[v] < adj.offsets[v + 1]) {
        const int64_t w = adj.targets[cursor[v]++];
        if (w == parent[v]) continue;
        if (tin[w] >= 0) {
          low[v] = std::min(low[v], tin[w]);
        } else {
          parent[w] = v;
          tin[w] = low[w] = clock++;
          cursor[w] = adj.offsets[w];
          stack.push_back(w);
        }
      } else {
        stack.pop_back();
        const int64_t p = parent[v];
        if (p >= 0) {
          low[p] = std::min(low[p], low[v]);
          if (low[v] > tin[p]) bridges.emplace_back(p, v);
        }
      }
    }
  }
  return bridges;
}

// The unique edges of `pairs` over `index` (self pairs ignored).
EdgeKeySet EdgeKeysOf(const std::unordered_map<std::string, int64_t>& index,
                      const std::vector<ImagePair>& pairs) {
  EdgeKeySet keys;
  for (const ImagePair& p : pairs) {
    const int64_t a = IndexOf(index, p.name1), b = IndexOf(index, p.name2);
    if (a != b) keys.insert(EdgeKey(a, b));
  }
  return keys;
}

}  // namespace

std::vector<ImagePair> FindBridges(const std::vector<std::string>& names,
                                   const std::vector<ImagePair>& pairs) {
  const auto index = IndexOfNames(names);
  const int64_t n = static_cast<int64_t>(names.size());
  std::vector<ImagePair> out;
  for (const auto& [a, b] : BridgeIndices(n, BuildAdjacency(n, EdgeKeysOf(index, pairs)))) {
    out.push_back({std::min(names[a], names[b]), std::max(names[a], names[b])});
  }
  std::sort(out.begin(), out.end(), [](const ImagePair& x, const ImagePair& y) {
    return std::tie(x.name1, x.name2) < std::tie(y.name1, y.name2);
  });
  return out;
}

namespace {

// CoverBridges on the unique edges `keys` (EdgeKeys over `names`); BuildPairGraph passes its own.
std::vector<ScoredImagePair> CoverBridgesOfKeys(const std::vector<std::string>& names,
                                                const DescriptorSource& descriptors,
                                                const EdgeKeySet& keys,
                                                const ConnectOptions& options,
                                                BridgeCoverStats* stats) {
  Timer timer;
  BridgeCoverStats local;
  const int64_t n = static_cast<int64_t>(names.size());
  const auto bridges = BridgeIndices(n, BuildAdjacency(n, keys));
  local.bridges_before = local.bridges_after = static_cast<int64_t>(bridges.size());
  std::vector<ScoredImagePair> added;
  if (!bridges.empty()) {
    // 2-edge-connected groups: the components of the graph without its bridges.
    EdgeKeySet bridge_keys;
    for (const auto& [a, b] : bridges) bridge_keys.insert(EdgeKey(a, b));
    UnionFind groups(n);
    keys.ForEach([&](uint64_t key) {
      if (!bridge_keys.contains(key)) groups.Union(EdgeEnds(key).first, EdgeEnds(key).second);
    });
    std::vector<int64_t> node(n);  // tree node of every image (the root image of its group)
    for (int64_t i = 0; i < n; ++i) node[i] = groups.Find(i);
    // The bridge tree of every component, rooted (breadth first): parent and depth per node.
    EdgeKeySet tree_keys;
    for (const auto& [a, b] : bridges) tree_keys.insert(EdgeKey(node[a], node[b]));
    const Adjacency tree = BuildAdjacency(n, tree_keys);
    std::vector<int64_t> tree_parent(n, -1), depth(n, -1), root(n, -1);
    for (int64_t s = 0; s < n; ++s) {
      if (node[s] != s || depth[s] >= 0) continue;
      depth[s] = 0;
      root[s] = s;
      std::vector<int64_t> queue = {s};
      for (size_t q = 0; q < queue.size(); ++q) {
        const int64_t v = queue[q];
        for (int64_t e = tree.offsets[v]; e < tree.offsets[v + 1]; ++e) {
          const int64_t w = tree.targets[e];
          if (depth[w] >= 0) continue;
          depth[w] = depth[v] + 1;
          tree_parent[w] = v;
          root[w] = s;
          queue.push_back(w);
        }
      }
    }
    // Covered bridges merge tree nodes into the group of their topmost node: top(v) is that node,
    // and the bridge above a top (to its tree parent) is still uncovered.
    std::vector<int64_t> up(n);
    std::iota(up.begin(), up.end(), 0);
    auto top = [&](int64_t v) {
      while (up[v] != v) {
        up[v] = up[up[v]];
        v = up[v];
      }
      return v;
    };
    int64_t uncovered = static_cast<int64_t>(bridges.size());
    auto cover = [&](int64_t a, int64_t b) {
      a = top(a);
      b = top(b);
      while (a != b) {
        if (depth[a] < depth[b]) std::swap(a, b);
        const int64_t p = top(tree_parent[a]);
        up[a] = p;
        a = p;
        --uncovered;
      }
    };

    constexpr int64_t kLeafRounds = 2;
    // A leaf group has one pair leaving it (its uncovered bridge): one more candidate makes up for it.
    const int64_t t = std::min<int64_t>(options.num_candidates + 1, n - 1);
    const SearchOptions search = CandidateSearch(options, t);
    while (uncovered > 0) {
      // Leaf groups: one uncovered bridge (their own to the parent, or a root with one child left).
      std::vector<int64_t> group_degree(n, 0);
      for (const auto& [a, b] : bridges) {
        const int64_t child = depth[node[a]] > depth[node[b]] ? node[a] : node[b];
        if (top(child) != child) continue;  // covered
        ++group_degree[child];
        ++group_degree[top(tree_parent[child])];
      }
      // After kLeafRounds, every group with an uncovered bridge searches: a long chain (a video's
      // sequential pairs) would otherwise advance from its two ends a few frames per round.
      const bool leaves_only = local.num_rounds < kLeafRounds;
      std::vector<int64_t> rows;
      std::vector<int64_t> ids(n);  // group of every image (the search's self mask)
      std::vector<char> in_leaf(n, 0);
      for (int64_t i = 0; i < n; ++i) {
        ids[i] = top(node[i]);
        const int64_t degree = group_degree[ids[i]];
        in_leaf[i] = degree == 1;
        if (degree == 1 || (!leaves_only && degree > 0)) rows.push_back(i);
      }
      std::vector<int64_t> query_ids(rows.size());
      for (size_t r = 0; r < rows.size(); ++r) query_ids[r] = ids[rows[r]];
      const SearchResult result =
          Search(SubsetSource(descriptors, rows), descriptors, search, &query_ids, &ids);
      ++local.num_rounds;
      local.num_searched_rows += static_cast<int64_t>(rows.size());
      std::vector<Edge> candidates;
      for (size_t r = 0; r < rows.size(); ++r) {
        for (int64_t c = 0; c < result.NumValid(static_cast<int64_t>(r)); ++c) {
          candidates.push_back(Edge{result.Score(static_cast<int64_t>(r), c), rows[r],
                                    result.Label(static_cast<int64_t>(r), c)});
        }
      }
      std::sort(candidates.begin(), candidates.end(), BetterEdge);
      int64_t taken = 0;
      for (bool leaf_to_leaf : {true, false}) {
        for (const Edge& e : candidates) {
          if (leaf_to_leaf && !(in_leaf[e.a] && in_leaf[e.b])) continue;
          const int64_t a = node[e.a], b = node[e.b];
          if (root[a] != root[b] || top(a) == top(b) || keys.contains(EdgeKey(e.a, e.b))) continue;
          cover(a, b);
          added.push_back({{names[e.a], names[e.b]}, e.score});
          ++taken;
        }
      }
      if (taken == 0) break;  // no usable pair left (NaN scores, other components only)
    }
    local.bridges_after = uncovered;
  }
  local.num_added = static_cast<int64_t>(added.size());
  local.seconds = timer.ElapsedSeconds();
  if (stats != nullptr) *stats = local;
  return added;
}

}  // namespace

std::vector<ScoredImagePair> CoverBridges(const std::vector<std::string>& names,
                                          const DescriptorSource& descriptors,
                                          const std::vector<ImagePair>& pairs,
                                          const ConnectOptions& options,
                                          BridgeCoverStats* stats) {
  MEGALOC_CHECK_MSG(options.Check(), "Invalid connect options (see the log)");
  MEGALOC_CHECK_MSG(static_cast<int64_t>(names.size()) == descriptors.NumRows(),
                    names.size() << " names for " << descriptors.NumRows() << " descriptors");
  return CoverBridgesOfKeys(names, descriptors, EdgeKeysOf(IndexOfNames(names), pairs), options, stats);
}

// ---------------------------------------------------------------------------------------------------
// Query expansion

bool QueryExpansionOptions::Check() const {
  CHECK_OPTION_GE(qe_num, 0);
  CHECK_OPTION_GE(dba_num, 0);
  CHECK_OPTION(std::isfinite(qe_alpha) && qe_alpha >= 0.0f);
  CHECK_OPTION(std::isfinite(dba_alpha) && dba_alpha >= 0.0f);
  return true;
}

void ThrowIfInvalid(const QueryExpansionOptions& options) {
  if (options.qe_num < 0 || options.dba_num < 0) {
    MEGALOC_THROW(InvalidArgument, "--qe_num and --dba_num must be >= 0");
  }
  for (const auto& [name, alpha] : {std::pair<const char*, double>{"qe_alpha", options.qe_alpha},
                                     std::pair<const char*, double>{"dba_alpha", options.dba_alpha}}) {
    if (!std::isfinite(alpha) || alpha < 0) {
      MEGALOC_THROW(InvalidArgument, "--" << name << " must be a finite number >= 0, not " << alpha);
    }
  }
}

DescriptorMatrix ExpandDescriptors(const DescriptorSource& queries,
                                   const DescriptorSource& db,
                                   const SearchResult& neighbors,
                                   int num,
                                   float alpha) {
  MEGALOC_CHECK_EQ(neighbors.num_queries, queries.NumRows());
  const int dim = queries.Dim();
  DescriptorMatrix out(queries.NumRows(), dim);
  std::vector<float> row(dim);
  for (int64_t i = 0; i < queries.NumRows(); ++i) {
    float* o = out.data() + i * dim;
    queries.ReadRows(i, 1, o);
    const int64_t valid = std::min<int64_t>(neighbors.NumValid(i), num);
    for (int64_t r = 0; r < valid; ++r) {
      const float s = neighbors.Score(i, r);
      const float w = s > 0.0f ? std::pow(s, alpha) : 0.0f;
      if (w == 0.0f) continue;
      db.ReadRows(neighbors.Label(i, r), 1, row.data());
      for (int d = 0; d < dim; ++d) o[d] += w * row[d];
    }
    double norm = 0.0;
    for (int d = 0; d < dim; ++d) norm += static_cast<double>(o[d]) * o[d];
    if (norm > 0.0) {
      const float inv = static_cast<float>(1.0 / std::sqrt(norm));
      for (int d = 0; d < dim; ++d) o[d] *= inv;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// The combined list

bool PairGraphOptions::Check() const {
  CHECK_OPTION_GE(search.num_neighbors, 0);
  SearchOptions s = search;
  s.num_neighbors = std::max(1, search.num_neighbors);
  CHECK_OPTION(s.Check());
  CHECK_OPTION(sequence.Check());
  CHECK_OPTION(std::isfinite(max_distance));
  CHECK_OPTION_GE(spatial_k, 0);
  CHECK_OPTION(expansion.Check());
  CHECK_OPTION(connect_options.Check());
  return true;
}

std::string PairSourceToString(PairSource source) {
  switch (source) {
    case PairSource::kRetrieval:
      return "retrieval";
    case PairSource::kSequential:
      return "sequential";
    case PairSource::kSpatial:
      return "spatial";
    case PairSource::kConnect:
      return "connect";
    case PairSource::kBridge:
      return "bridge";
  }
  return "unknown";
}

namespace {

// Rows of `source` in the order given by `order` (row i = source row order[i]).
class OrderedSource : public DescriptorSource {
 public:
  OrderedSource(const DescriptorSource& source, const std::vector<int64_t>& order)
      : source_(source), order_(order) {}
  int64_t NumRows() const override { return static_cast<int64_t>(order_.size()); }
  int Dim() const override { return source_.Dim(); }
  void ReadRows(int64_t begin, int64_t count, float* out) const override {
    // Consecutive runs of source rows are read with one call.
    const int dim = source_.Dim();
    int64_t r = 0;
    while (r < count) {
      int64_t run = 1;
      while (r + run < count && order_[begin + r + run] == order_[begin + r] + run) ++run;
      const float* resident = source_.ResidentRows(order_[begin + r]);
      if (resident != nullptr) {
        std::memcpy(out + r * dim, resident, sizeof(float) * run * dim);
      } else {
        source_.ReadRows(order_[begin + r], run, out + r * dim);
      }
      r += run;
    }
  }

 private:
  const DescriptorSource& source_;
  const std::vector<int64_t>& order_;
};

}  // namespace

PairGraphResult BuildPairGraph(const std::vector<std::string>& names,
                               const DescriptorSource& descriptors,
                               const PositionPriors* priors,
                               const PairGraphOptions& options) {
  internal::ThrowIfNotFinite("min_score", options.search.min_score, /*allow_negative_infinity=*/true);
  internal::ThrowIfNotFinite("max_distance", options.max_distance);
  internal::ThrowIfNotFinite("qe_alpha", options.expansion.qe_alpha);
  internal::ThrowIfNotFinite("dba_alpha", options.expansion.dba_alpha);
  MEGALOC_CHECK_MSG(options.Check(), "Invalid pair graph options (see the log)");
  MEGALOC_CHECK_MSG(static_cast<int64_t>(names.size()) == descriptors.NumRows(),
                    names.size() << " names for " << descriptors.NumRows() << " descriptors");
  if ((options.max_distance >= 0.0 || options.spatial_k > 0) && priors == nullptr) {
    MEGALOC_THROW(InvalidArgument, "max_distance and spatial_k need position priors");
  }
  for (const std::string& name : names) CheckPairName(name);
  PairGraphResult out;
  const int64_t n = static_cast<int64_t>(names.size());

  // Everything runs in byte-sorted name order (hloc's query order, deterministic ties).
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return names[a] < names[b]; });
  std::vector<std::string> sorted(n);
  for (int64_t i = 0; i < n; ++i) sorted[i] = names[order[i]];
  IndexOfNames(sorted);  // uniqueness
  bool identity = true;
  for (int64_t i = 0; i < n && identity; ++i) identity = order[i] == i;
  OrderedSource ordered(descriptors, order);
  const DescriptorSource& x = identity ? descriptors : static_cast<const DescriptorSource&>(ordered);
  out.sequences = ComputeSequenceLayout(sorted, options.sequence.pattern);
  if (priors != nullptr) {
    for (const std::string& name : sorted) out.num_with_prior += priors->Find(name) ? 1 : 0;
  }

  std::vector<ScoredImagePair>& pairs = out.pairs;
  EdgeKeySet present;
  auto add = [&](int64_t a, int64_t b, float score, PairSource source, bool check_present) {
    if (a == b) return false;
    const bool is_new = present.insert(EdgeKey(a, b));
    if (check_present && !is_new) return false;
    pairs.push_back({{sorted[a], sorted[b]}, score});
    out.sources.push_back(source);
    return true;
  };

  // 1. Retrieval (optionally on DBA/αQE-expanded descriptors).
  const int k = static_cast<int>(std::min<int64_t>(options.search.num_neighbors, n));
  if (k > 0 && n > 1) {
    std::vector<int64_t> ids(n);
    std::iota(ids.begin(), ids.end(), 0);
    SearchOptions neighbor_search = options.search;
    neighbor_search.min_score = kNegInf;
    DescriptorMatrix augmented, expanded;
    std::unique_ptr<MatrixDescriptorSource> db_source, query_source;
    const DescriptorSource* db = &x;
    if (options.expansion.dba_num > 0) {
      neighbor_search.num_neighbors = options.expansion.dba_num;
      const SearchResult nn = Search(x, x, neighbor_search, &ids, &ids);
      augmented = ExpandDescriptors(x, x, nn, options.expansion.dba_num, options.expansion.dba_alpha);
      db_source = std::make_unique<MatrixDescriptorSource>(augmented);
      db = db_source.get();
    }
    const DescriptorSource* queries = db;
    if (options.expansion.qe_num > 0) {
      neighbor_search.num_neighbors = options.expansion.qe_num;
      const SearchResult nn = Search(*db, *db, neighbor_search, &ids, &ids);
      expanded = ExpandDescriptors(*db, *db, nn, options.expansion.qe_num, options.expansion.qe_alpha);
      query_source = std::make_unique<MatrixDescriptorSource>(expanded);
      queries = query_source.get();
    }
    // Loop closure: at most 2 * loop_closure results of a query are near frames of its sequence,
    // so retrieving that many more and skipping them is exact.
    const int64_t lc = options.sequence.loop_closure;
    SearchOptions search = options.search;
    search.num_neighbors = static_cast<int>(std::min<int64_t>(k + 2 * lc, n));
    const SearchResult result = Search(*queries, *db, search, &ids, &ids, &out.search);
    for (int64_t i = 0; i < n; ++i) {
      int64_t taken = 0;
      for (int64_t r = 0; r < result.NumValid(i) && taken < k; ++r) {
        const int64_t j = result.Label(i, r);
        if (lc > 0 && out.sequences.Near(i, j, lc)) {
          ++out.num_dropped_by_loop_closure;
          continue;
        }
        ++taken;
        if (options.max_distance >= 0.0) {
          const double d = PriorDistance(*priors, sorted[i], sorted[j]);
          if (d > options.max_distance) {
            ++out.num_dropped_by_distance;
            continue;
          }
        }
        if (add(i, j, result.Score(i, r), PairSource::kRetrieval, options.unique)) ++out.num_retrieval;
      }
    }
  }

  // 2. Sequential neighbours, 3. spatial neighbours: only pairs not in the list yet.
  const float kNoScore = std::numeric_limits<float>::quiet_NaN();
  for (const auto& [a, b] : SequentialIndexPairs(out.sequences, options.sequence.overlap)) {
    if (add(a, b, kNoScore, PairSource::kSequential, true)) ++out.num_sequential;
  }
  if (options.spatial_k > 0) {
    std::unordered_map<std::string, int64_t> index;
    for (int64_t i = 0; i < n; ++i) index.emplace(sorted[i], i);
    for (const ImagePair& p : SpatialPairs(sorted, *priors, options.spatial_k, options.max_distance)) {
      if (add(index.at(p.name1), index.at(p.name2), kNoScore, PairSource::kSpatial, true)) {
        ++out.num_spatial;
      }
    }
  }

  // 4. Connectivity, 5. bridges.
  out.before_connect = DescribeEdgeKeys(n, present);
  if ((options.connect || options.cover_bridges) && n > 1) {
    ConnectOptions connect = options.connect_options;
    connect.memory_limit = options.search.memory_limit;
    connect.num_threads = options.search.num_threads;
    std::unordered_map<std::string, int64_t> index;
    for (int64_t i = 0; i < n; ++i) index.emplace(sorted[i], i);
    std::vector<ImagePair> plain;
    plain.reserve(pairs.size());
    for (const auto& p : pairs) plain.push_back(p.pair);
    auto append = [&](const std::vector<ScoredImagePair>& extra, PairSource source) {
      for (const ScoredImagePair& p : extra) {
        pairs.push_back(p);
        out.sources.push_back(source);
        present.insert(EdgeKey(index.at(p.pair.name1), index.at(p.pair.name2)));
      }
      return static_cast<int64_t>(extra.size());
    };
    out.num_connect = append(ConnectPairGraph(sorted, x, plain, connect, &out.connect), PairSource::kConnect);
    if (options.cover_bridges) {
      // The graph's own key set (every source and the connecting pairs): no second list of names.
      out.num_bridge = append(CoverBridgesOfKeys(sorted, x, present, connect, &out.bridges), PairSource::kBridge);
    }
    out.after = DescribeEdgeKeys(n, present);
  } else {
    out.after = out.before_connect;
    out.connect.components_before = out.connect.components_after = out.before_connect.num_components;
  }
  return out;
}

}  // namespace megaloc
