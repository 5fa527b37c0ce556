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
using namespace datasets_internal;

// =============================================================================================
// MSLS + CliqueMining

bool CliqueMiningOptions::Check() const {
  CHECK_OPTION_GT(num_batches, 0);
  CHECK_OPTION_GE(sampled_similar_places, 0);
  CHECK_OPTION_GT(same_place_threshold_m, 0.0);
  return true;
}

MslsDataset LoadMsls(const std::string& root, const std::vector<std::string>& exclude_cities) {
  const std::string train_val = JoinPaths(root, "train_val");
  if (!DirectoryExists(train_val)) MEGALOC_THROW(IoError, train_val << ": MSLS train_val folder missing");
  MslsDataset ds;
  for (const std::string& city : ListSubdirectories(train_val)) {
    if (std::find(exclude_cities.begin(), exclude_cities.end(), city) != exclude_cities.end()) continue;
    const int city_index = static_cast<int>(ds.cities.size());
    std::map<int64_t, int> cluster_of;  // unique_cluster -> global cluster index
    bool any = false;
    for (const std::string sub : {"query", "database"}) {
      const std::string dir = JoinPaths(JoinPaths(train_val, city), sub);
      if (!DirectoryExists(dir)) continue;
      any = true;
      const CsvTable raw = ReadCsvFile(JoinPaths(dir, "raw.csv"));
      const CsvTable post = ReadCsvFile(JoinPaths(dir, "postprocessed.csv"));
      const int raw_key = raw.Column("key"), raw_pano = raw.Column("pano");
      std::unordered_map<std::string, bool> is_pano;
      for (const CsvRow& raw_row : raw.rows) {
        const std::vector<std::string>& row = raw_row.fields;
        const std::string v = ToLower(Trim(row[raw_pano]));
        is_pano[Trim(row[raw_key])] = (v == "true" || v == "1" || v == "1.0");
      }
      const int k = post.Column("key"), e = post.Column("easting"), n = post.Column("northing"),
                u = post.Column("unique_cluster");
      for (size_t r = 0; r < post.rows.size(); ++r) {
        const std::vector<std::string>& row = post.rows[r].fields;
        const std::string key = Trim(row[k]);
        auto it = is_pano.find(key);
        if (it == is_pano.end()) {
          MEGALOC_THROW(FormatError, post.path << ": key " << key << " is not in raw.csv");
        }
        if (it->second) continue;
        const std::string ctx = post.path + ":" + std::to_string(post.rows[r].line);
        MslsImage img;
        img.path = JoinPaths(JoinPaths(dir, "images"), key + ".jpg");
        img.easting = ParseDouble(row[e], ctx);
        img.northing = ParseDouble(row[n], ctx);
        const int64_t uc = ParseInt(row[u], ctx);
        auto cit = cluster_of.find(uc);
        if (cit == cluster_of.end()) {
          MslsCluster cl;
          cl.city = city_index;
          cl.unique_cluster = uc;
          cit = cluster_of.emplace(uc, static_cast<int>(ds.clusters.size())).first;
          ds.clusters.push_back(cl);
        }
        img.cluster = cit->second;
        ds.clusters[img.cluster].images.push_back(static_cast<int>(ds.images.size()));
        ds.images.push_back(img);
      }
    }
    if (!any) continue;
    ds.cities.push_back(city);
    std::vector<int> clusters;
    for (const auto& [uc, idx] : cluster_of) clusters.push_back(idx);
    ds.city_clusters.push_back(clusters);
  }
  if (ds.images.empty()) MEGALOC_THROW(IoError, train_val << ": no MSLS training images found");
  return ds;
}

std::vector<std::string> MslsRepresentativeImages(const MslsDataset& dataset, uint64_t seed) {
  std::vector<std::string> out;
  out.reserve(dataset.clusters.size());
  for (size_t c = 0; c < dataset.clusters.size(); ++c) {
    std::mt19937_64 rng = MakeRng(seed, kStreamMslsBuild, c, 1);
    const auto& imgs = dataset.clusters[c].images;
    std::uniform_int_distribution<size_t> dist(0, imgs.size() - 1);
    out.push_back(dataset.images[imgs[dist(rng)]].path);
  }
  return out;
}

namespace {

// First maximal clique (Bron-Kerbosch with pivoting) of size >= min_size, or empty.
bool FindClique(const std::vector<std::vector<char>>& adj, std::vector<int>& r, std::vector<int> p,
                std::vector<int> x, int min_size, std::vector<int>* out) {
  if (p.empty() && x.empty()) {
    if (static_cast<int>(r.size()) >= min_size) {
      *out = r;
      return true;
    }
    return false;
  }
  if (static_cast<int>(r.size() + p.size()) < min_size) return false;
  int pivot = !p.empty() ? p[0] : x[0];
  size_t best = 0;
  for (const auto* set : {&p, &x}) {
    for (int u : *set) {
      size_t cnt = 0;
      for (int v : p) cnt += adj[u][v];
      if (cnt > best) {
        best = cnt;
        pivot = u;
      }
    }
  }
  std::vector<int> todo;
  for (int v : p) {
    if (!adj[pivot][v]) todo.push_back(v);
  }
  for (int v : todo) {
    std::vector<int> p2, x2;
    for (int w : p) {
      if (adj[v][w]) p2.push_back(w);
    }
    for (int w : x) {
      if (adj[v][w]) x2.push_back(w);
    }
    r.push_back(v);
    if (FindClique(adj, r, p2, x2, min_size, out)) return true;
    r.pop_back();
    p.erase(std::find(p.begin(), p.end(), v));
    x.push_back(v);
  }
  return false;
}

class MslsCliqueSampler : public PlaceSampler {
 public:
  MslsCliqueSampler(MslsDataset ds, std::vector<float> desc, int dim,
                    const CliqueMiningOptions& clique, const SamplerOptions& options)
      : ds_(std::move(ds)), desc_(std::move(desc)), dim_(dim), clique_(clique), options_(options) {
    MEGALOC_CHECK_EQ(desc_.size(), ds_.clusters.size() * static_cast<size_t>(dim_));
    for (int b = 0; b < clique_.num_batches; ++b) batches_.push_back(BuildBatch(b));
  }
  std::string Name() const override { return "msls"; }
  std::string Summary() const override {
    std::ostringstream s;
    s << "MSLS: " << ds_.cities.size() << " cities, " << ds_.clusters.size() << " clusters, "
      << ds_.images.size() << " images, " << batches_.size() << " CliqueMining batches";
    return s.str();
  }
  std::vector<SubBatchSpec> Sample(int64_t iteration) const override {
    const int64_t n = static_cast<int64_t>(batches_.size());
    const int64_t epoch = iteration / n;
    std::vector<int> perm(n);
    std::iota(perm.begin(), perm.end(), 0);
    std::mt19937_64 rng = MakeRng(options_.seed, kStreamMslsEpoch, epoch);
    std::shuffle(perm.begin(), perm.end(), rng);
    return {batches_[perm[iteration % n]]};
  }

 private:
  SubBatchSpec BuildBatch(int b) {
    std::mt19937_64 rng = MakeRng(options_.seed, kStreamMslsBuild, b, 0);
    const int P = options_.places_per_batch, K = options_.images_per_place;
    const double thr = clique_.same_place_threshold_m;
    SubBatchSpec sb;
    sb.source = Name();
    std::vector<char> city_used(ds_.cities.size(), 0);
    std::vector<std::vector<int>> chosen_in_city(ds_.cities.size());
    int places = 0, attempts = 0;
    const int max_attempts = 50 * P + 100;
    while (places < P) {
      if (++attempts > max_attempts) {
        MEGALOC_THROW(InvalidArgument, "MSLS CliqueMining: could not fill a batch of "
                                           << P << " places of " << K
                                           << " images pairwise < " << thr << " m (dataset too small)");
      }
      // City weighted by #clusters among the cities not used yet in this batch (all when exhausted).
      std::vector<double> w(ds_.cities.size(), 0.0);
      bool any_unused = false;
      for (size_t c = 0; c < w.size(); ++c) any_unused |= !city_used[c] && !ds_.city_clusters[c].empty();
      for (size_t c = 0; c < w.size(); ++c) {
        if (!any_unused || !city_used[c]) w[c] = static_cast<double>(ds_.city_clusters[c].size());
      }
      const std::vector<int> pick = WeightedSampleWithoutReplacement(w, 1, rng);
      if (pick.empty()) MEGALOC_THROW(InvalidArgument, "MSLS CliqueMining: no clusters");
      const int city = pick[0];
      city_used[city] = 1;
      const std::vector<int>& clusters = ds_.city_clusters[city];
      std::uniform_int_distribution<size_t> dseed(0, clusters.size() - 1);
      const int seed_cluster = clusters[dseed(rng)];
      // Weights w = max(d) - d where d != 0, else 0.
      std::vector<double> d(clusters.size());
      double dmax = 0;
      for (size_t i = 0; i < clusters.size(); ++i) {
        double s = 0;
        const float* a = &desc_[static_cast<size_t>(seed_cluster) * dim_];
        const float* bb = &desc_[static_cast<size_t>(clusters[i]) * dim_];
        for (int j = 0; j < dim_; ++j) s += (double(a[j]) - bb[j]) * (double(a[j]) - bb[j]);
        d[i] = std::sqrt(s);
        dmax = std::max(dmax, d[i]);
      }
      std::vector<double> cw(clusters.size(), 0.0);
      for (size_t i = 0; i < clusters.size(); ++i) cw[i] = d[i] != 0 ? dmax - d[i] : 0.0;
      std::vector<int> cand = {seed_cluster};
      for (int i : WeightedSampleWithoutReplacement(cw, clique_.sampled_similar_places, rng)) {
        if (clusters[i] != seed_cluster) cand.push_back(clusters[i]);
      }
      // Images of the candidate clusters, minus those within thr of a place already taken.
      std::vector<int> imgs;
      for (int c : cand) {
        for (int i : ds_.clusters[c].images) {
          bool near = false;
          for (int t : chosen_in_city[city]) near |= Dist(i, t) < thr;
          if (!near) imgs.push_back(i);
        }
      }
      const int n = static_cast<int>(imgs.size());
      std::vector<std::vector<char>> adj(n, std::vector<char>(n, 0));
      for (int a = 0; a < n; ++a) {
        for (int c = a + 1; c < n; ++c) adj[a][c] = adj[c][a] = Dist(imgs[a], imgs[c]) < thr;
      }
      while (places < P) {
        std::vector<int> all(n), r, clique;
        std::iota(all.begin(), all.end(), 0);
        if (!FindClique(adj, r, all, {}, K, &clique)) break;
        std::vector<int> members;
        for (int m : SampleWithoutReplacement(static_cast<int>(clique.size()), K, rng)) {
          members.push_back(clique[m]);
        }
        std::vector<char> drop(n, 0);
        for (int m : members) {
          drop[m] = 1;
          for (int v = 0; v < n; ++v) {
            if (adj[m][v]) drop[v] = 1;
          }
        }
        for (int v = 0; v < n; ++v) {
          if (!drop[v]) continue;
          for (int u = 0; u < n; ++u) adj[v][u] = adj[u][v] = 0;
        }
        for (int m : members) {
          ImageRef ref;
          ref.path = ds_.images[imgs[m]].path;
          sb.images.push_back(ref);
          sb.labels.push_back(places);
          chosen_in_city[city].push_back(imgs[m]);
        }
        ++places;
      }
    }
    return sb;
  }

  double Dist(int a, int b) const {
    const double de = ds_.images[a].easting - ds_.images[b].easting;
    const double dn = ds_.images[a].northing - ds_.images[b].northing;
    return std::sqrt(de * de + dn * dn);
  }

  MslsDataset ds_;
  std::vector<float> desc_;
  int dim_;
  CliqueMiningOptions clique_;
  SamplerOptions options_;
  std::vector<SubBatchSpec> batches_;
};

}  // namespace

std::unique_ptr<PlaceSampler> MakeMslsCliqueSampler(MslsDataset dataset,
                                                    std::vector<float> cluster_descriptors, int dim,
                                                    const CliqueMiningOptions& clique,
                                                    const SamplerOptions& options) {
  return std::make_unique<MslsCliqueSampler>(std::move(dataset), std::move(cluster_descriptors), dim,
                                             clique, options);
}

}  // namespace megaloc
