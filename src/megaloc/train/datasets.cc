#include "megaloc/train/datasets.h"
#include "megaloc/train/datasets_internal.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <numeric>
#include <set>
#include <sstream>
#include <unordered_map>

#include <Eigen/Core>
#include <Eigen/SVD>

#include "megaloc/util/csv.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/string_utils.h"

namespace megaloc {

namespace fs = std::filesystem;

namespace datasets_internal {


uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// Files directly in (or, if recursive, below) `dir` whose lower-case extension is in `exts`, sorted.
std::vector<std::string> ListFiles(const std::string& dir, bool recursive,
                                   const std::vector<std::string>& exts) {
  std::vector<std::string> files;
  std::error_code ec;
  auto accept = [&](const fs::directory_entry& e) {
    if (!e.is_regular_file()) return;
    const std::string ext = ToLower(e.path().extension().string());
    if (std::find(exts.begin(), exts.end(), ext) != exts.end()) files.push_back(e.path().string());
  };
  if (recursive) {
    for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      accept(*it);
    }
  } else {
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) accept(*it);
  }
  if (ec) MEGALOC_THROW(IoError, dir << ": cannot list directory (" << ec.message() << ")");
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<std::string> ListSubdirectories(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_directory()) names.push_back(it->path().filename().string());
  }
  if (ec) MEGALOC_THROW(IoError, dir << ": cannot list directory (" << ec.message() << ")");
  std::sort(names.begin(), names.end());
  return names;
}

double ParseDouble(const std::string& text, const std::string& context) {
  double value = 0.0;
  if (!megaloc::ParseDouble(Trim(text), &value)) MEGALOC_THROW(FormatError, context << ": '" << text << "' is not a number");
  return value;
}

int64_t ParseInt(const std::string& text, const std::string& context) {
  int64_t value = 0;
  if (ParseInt64(Trim(text), &value)) return value;
  // MSLS stores some integer columns as floats ("12.0").
  const double d = ParseDouble(text, context);
  if (d != std::floor(d) || !(std::fabs(d) < 9.2e18)) {
    MEGALOC_THROW(FormatError, context << ": '" << text << "' is not an integer");
  }
  return static_cast<int64_t>(d);
}

// Draws k distinct indices of [0, n) (partial Fisher-Yates).
std::vector<int> SampleWithoutReplacement(int n, int k, std::mt19937_64& rng) {
  std::vector<int> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  for (int i = 0; i < k && i < n; ++i) {
    std::uniform_int_distribution<int> dist(i, n - 1);
    std::swap(idx[i], idx[dist(rng)]);
  }
  idx.resize(std::min(n, k));
  return idx;
}

// Sequential weighted draw of k distinct indices with probabilities proportional to w
// (numpy.random.choice(replace=False, p=w) semantics). Entries with weight 0 are never drawn.
std::vector<int> WeightedSampleWithoutReplacement(std::vector<double> w, int k, std::mt19937_64& rng) {
  std::vector<int> out;
  for (int draw = 0; draw < k; ++draw) {
    const double total = std::accumulate(w.begin(), w.end(), 0.0);
    if (!(total > 0)) break;
    std::uniform_real_distribution<double> dist(0.0, total);
    double r = dist(rng);
    int chosen = -1;
    for (size_t i = 0; i < w.size(); ++i) {
      if (w[i] <= 0) continue;
      chosen = static_cast<int>(i);
      if (r < w[i]) break;
      r -= w[i];
    }
    out.push_back(chosen);
    w[chosen] = 0.0;
  }
  return out;
}

// Greedily builds disjoint groups of k items that pairwise satisfy `ok`, at most `max_groups`,
// trying seeds in a random order. `candidates(i)` lists the items compatible with i (excluding i).
std::vector<std::vector<int>> BuildDisjointCliques(
    int n, int k, int max_groups, std::mt19937_64& rng,
    const std::function<std::vector<int>(int)>& candidates,
    const std::function<bool(int, int)>& ok) {
  std::vector<std::vector<int>> groups;
  std::vector<char> used(n, 0);
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  for (int seed : order) {
    if (static_cast<int>(groups.size()) >= max_groups) break;
    if (used[seed]) continue;
    std::vector<int> cand;
    for (int j : candidates(seed)) {
      if (!used[j] && j != seed) cand.push_back(j);
    }
    if (static_cast<int>(cand.size()) < k - 1) continue;
    std::shuffle(cand.begin(), cand.end(), rng);
    std::vector<int> chosen = {seed};
    for (int j : cand) {
      bool all = true;
      for (int c : chosen) {
        if (!ok(c, j)) {
          all = false;
          break;
        }
      }
      if (all) chosen.push_back(j);
      if (static_cast<int>(chosen.size()) == k) break;
    }
    if (static_cast<int>(chosen.size()) < k) continue;
    for (int c : chosen) used[c] = 1;
    groups.push_back(chosen);
  }
  return groups;
}


uint64_t NameHash(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

}  // namespace datasets_internal

using datasets_internal::SplitMix64;

bool SamplerOptions::Check() const {
  CHECK_OPTION_GT(places_per_batch, 1);
  CHECK_OPTION_GT(images_per_place, 1);
  return true;
}

std::mt19937_64 MakeRng(uint64_t seed, uint64_t stream, uint64_t a, uint64_t b) {
  uint64_t h = SplitMix64(seed);
  h = SplitMix64(h ^ stream);
  h = SplitMix64(h ^ a);
  h = SplitMix64(h ^ b);
  std::seed_seq seq{static_cast<uint32_t>(h), static_cast<uint32_t>(h >> 32)};
  return std::mt19937_64(seq);
}

}  // namespace megaloc
