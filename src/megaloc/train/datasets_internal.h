#pragma once

// Helpers shared by the dataset readers of datasets.h (one .cc per dataset: gsv_cities.cc, msls.cc,
// megascenes.cc, scannet.cc, sfxl.cc; common ones in datasets.cc). Internal: not installed.

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace megaloc {
namespace datasets_internal {

uint64_t SplitMix64(uint64_t x);

// Files directly in (or, if recursive, below) `dir` whose lower-case extension is in `exts`, sorted.
std::vector<std::string> ListFiles(const std::string& dir, bool recursive, const std::vector<std::string>& exts);
// Names of the sub-directories of `dir`, sorted.
std::vector<std::string> ListSubdirectories(const std::string& dir);

// Numbers of dataset CSV / text files; FormatError naming `context` (file and row) otherwise.
double ParseDouble(const std::string& text, const std::string& context);
int64_t ParseInt(const std::string& text, const std::string& context);

// Draws k distinct indices of [0, n) (partial Fisher-Yates).
std::vector<int> SampleWithoutReplacement(int n, int k, std::mt19937_64& rng);
// Sequential weighted draw of k distinct indices with probabilities proportional to w.
std::vector<int> WeightedSampleWithoutReplacement(std::vector<double> w, int k, std::mt19937_64& rng);
// Greedily builds disjoint groups of k items that pairwise satisfy `ok`, at most `max_groups`,
// trying seeds in a random order. `candidates(i)` lists the items compatible with i (excluding i).
std::vector<std::vector<int>> BuildDisjointCliques(
    int n, int k, int max_groups, std::mt19937_64& rng,
    const std::function<std::vector<int>(int)>& candidates,
    const std::function<bool(int, int)>& ok);

// Random streams of MakeRng (datasets.h), one per use.
enum Stream : uint64_t {
  kStreamGsvOrder = 1,
  kStreamGsvImages = 2,
  kStreamMslsBuild = 3,
  kStreamMslsEpoch = 4,
  kStreamMslsImages = 5,
  kStreamQuadruplets = 6,
  kStreamEigenLateral = 7,
  kStreamEigenFrontal = 8,
  kStreamBuild = 9,
};

// FNV-1a hash of a name.
uint64_t NameHash(const std::string& s);

}  // namespace datasets_internal
}  // namespace megaloc
