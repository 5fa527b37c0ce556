#include "megaloc/train/datasets.h"

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

#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/string_utils.h"

namespace megaloc {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kInvalidPoint3DId = std::numeric_limits<uint64_t>::max();

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

// Splits one CSV line (no embedded newlines; double quotes honoured).
std::vector<std::string> SplitCsvLine(const std::string& line) {
  std::vector<std::string> fields;
  std::string cur;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cur += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cur += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.push_back(cur);
      cur.clear();
    } else if (c != '\r') {
      cur += c;
    }
  }
  fields.push_back(cur);
  return fields;
}

struct Csv {
  std::string path;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;

  int Column(const std::string& name) const {
    for (size_t i = 0; i < header.size(); ++i) {
      if (Trim(header[i]) == name) return static_cast<int>(i);
    }
    MEGALOC_THROW(FormatError, path << ": missing column '" << name << "'");
  }
};

Csv ReadCsv(const std::string& path) {
  std::ifstream in(path);
  if (!in) MEGALOC_THROW(IoError, path << ": cannot open file");
  Csv csv;
  csv.path = path;
  std::string line;
  if (!std::getline(in, line)) MEGALOC_THROW(FormatError, path << ": empty CSV file (no header)");
  csv.header = SplitCsvLine(line);
  int line_no = 1;
  while (std::getline(in, line)) {
    ++line_no;
    if (Trim(line).empty()) continue;
    csv.rows.push_back(SplitCsvLine(line));
    if (csv.rows.back().size() != csv.header.size()) {
      MEGALOC_THROW(FormatError, path << ": line " << line_no << " has "
                                      << csv.rows.back().size() << " fields, the header has "
                                      << csv.header.size());
    }
  }
  return csv;
}

double ParseDouble(const std::string& text, const std::string& context) {
  try {
    size_t pos = 0;
    const double v = std::stod(Trim(text), &pos);
    if (pos != Trim(text).size()) throw std::invalid_argument("trailing characters");
    return v;
  } catch (const std::exception&) {
    MEGALOC_THROW(FormatError, context << ": '" << text << "' is not a number");
  }
}

int64_t ParseInt(const std::string& text, const std::string& context) {
  try {
    size_t pos = 0;
    const long long v = std::stoll(Trim(text), &pos);
    if (pos != Trim(text).size()) throw std::invalid_argument("trailing characters");
    return v;
  } catch (const std::exception&) {
    // MSLS stores some integer columns as floats ("12.0").
    const double d = ParseDouble(text, context);
    if (d != std::floor(d)) MEGALOC_THROW(FormatError, context << ": '" << text << "' is not an integer");
    return static_cast<int64_t>(d);
  }
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

uint64_t NameHash(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

}  // namespace

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

// =============================================================================================
// GSV-Cities

const std::vector<std::string>& GsvCitiesTrainCities() {
  static const std::vector<std::string> kCities = {
      "Bangkok", "BuenosAires", "LosAngeles", "MexicoCity", "OSL",     "Rome",
      "Barcelona", "Chicago",   "Madrid",     "Miami",      "Phoenix", "TRT",
      "Boston",  "Lisbon",      "Medellin",   "Minneapolis", "PRG",    "WashingtonDC",
      "Brussels", "London",     "Melbourne",  "Osaka",      "PRS"};
  return kCities;
}

GsvCitiesDataset LoadGsvCities(const std::string& root, const std::vector<std::string>& cities_in,
                               int min_images_per_place) {
  const std::vector<std::string>& cities = cities_in.empty() ? GsvCitiesTrainCities() : cities_in;
  if (!DirectoryExists(root)) MEGALOC_THROW(IoError, root << ": GSV-Cities root does not exist");
  GsvCitiesDataset ds;
  for (size_t ci = 0; ci < cities.size(); ++ci) {
    const std::string csv_path = JoinPaths(JoinPaths(root, "Dataframes"), cities[ci] + ".csv");
    const Csv csv = ReadCsv(csv_path);
    const int col_city = csv.Column("city_id");
    if (csv.rows.empty()) MEGALOC_THROW(FormatError, csv_path << ": no rows");
    const std::string city_id = Trim(csv.rows[0][col_city]);
    const std::string image_dir = JoinPaths(JoinPaths(root, "Images"), city_id);
    if (!DirectoryExists(image_dir)) {
      MEGALOC_THROW(IoError, image_dir << ": image folder of city " << cities[ci] << " missing");
    }
    std::map<int64_t, std::vector<std::string>> by_place;
    for (const std::string& file : ListFiles(image_dir, false, {".jpg", ".jpeg", ".png"})) {
      const std::string stem = fs::path(file).stem().string();
      // Split with maxsplit 7: city_id, place_id, year, month, northdeg, lat, lon, panoid.
      std::vector<std::string> parts;
      size_t start = 0;
      while (parts.size() < 7) {
        const size_t pos = stem.find('_', start);
        if (pos == std::string::npos) break;
        parts.push_back(stem.substr(start, pos - start));
        start = pos + 1;
      }
      parts.push_back(stem.substr(start));
      if (parts.size() != 8) {
        MEGALOC_THROW(FormatError, file << ": not a GSV-Cities file name "
                                        "(city_place_year_month_northdeg_lat_lon_panoid)");
      }
      by_place[ParseInt(parts[1], file)].push_back(file);
    }
    std::vector<GsvPlace> places;
    for (auto& [place_id, files] : by_place) {
      if (static_cast<int>(files.size()) < min_images_per_place) {
        ++ds.num_dropped_places;
        continue;
      }
      GsvPlace p;
      p.label = place_id + static_cast<int64_t>(ci) * 100000;
      p.images = files;
      ds.num_images += static_cast<int64_t>(files.size());
      places.push_back(std::move(p));
    }
    ds.cities.push_back(cities[ci]);
    ds.places.push_back(std::move(places));
  }
  return ds;
}

namespace {

class GsvCitiesSampler : public PlaceSampler {
 public:
  GsvCitiesSampler(GsvCitiesDataset ds, const SamplerOptions& options)
      : ds_(std::move(ds)), options_(options) {
    for (size_t c = 0; c < ds_.places.size(); ++c) {
      for (size_t p = 0; p < ds_.places[c].size(); ++p) {
        MEGALOC_CHECK_MSG(static_cast<int>(ds_.places[c][p].images.size()) >= options_.images_per_place,
                          "GSV place with fewer images than images_per_place");
      }
      num_places_ += ds_.places[c].size();
    }
    batches_per_epoch_ = num_places_ / options_.places_per_batch;
    if (batches_per_epoch_ == 0) {
      MEGALOC_THROW(InvalidArgument, "GSV-Cities: " << num_places_ << " places with >= "
                                                    << options_.images_per_place
                                                    << " images, fewer than places_per_batch = "
                                                    << options_.places_per_batch);
    }
  }
  std::string Name() const override { return "gsv"; }
  std::string Summary() const override {
    std::ostringstream s;
    s << "GSV-Cities: " << ds_.cities.size() << " cities, " << num_places_ << " places, "
      << ds_.num_images << " images, " << batches_per_epoch_ << " batches/epoch";
    return s.str();
  }
  std::vector<SubBatchSpec> Sample(int64_t iteration) const override {
    const int64_t epoch = iteration / batches_per_epoch_;
    const int64_t batch = iteration % batches_per_epoch_;
    std::shared_ptr<const std::vector<std::pair<int, int>>> order = Order(epoch);
    SubBatchSpec sb;
    sb.source = Name();
    for (int p = 0; p < options_.places_per_batch; ++p) {
      const auto [c, i] = (*order)[batch * options_.places_per_batch + p];
      const GsvPlace& place = ds_.places[c][i];
      std::mt19937_64 rng = MakeRng(options_.seed, kStreamGsvImages, iteration, p);
      for (int k : SampleWithoutReplacement(static_cast<int>(place.images.size()),
                                            options_.images_per_place, rng)) {
        ImageRef ref;
        ref.path = place.images[k];
        sb.images.push_back(ref);
        sb.labels.push_back(place.label);
      }
    }
    return {sb};
  }

 private:
  // "cities in list order, places shuffled within each city" for one epoch (cached).
  std::shared_ptr<const std::vector<std::pair<int, int>>> Order(int64_t epoch) const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (cached_order_ && cached_epoch_ == epoch) return cached_order_;
    auto order = std::make_shared<std::vector<std::pair<int, int>>>();
    order->reserve(num_places_);
    for (size_t c = 0; c < ds_.places.size(); ++c) {
      std::vector<int> idx(ds_.places[c].size());
      std::iota(idx.begin(), idx.end(), 0);
      std::mt19937_64 rng = MakeRng(options_.seed, kStreamGsvOrder, epoch, c);
      std::shuffle(idx.begin(), idx.end(), rng);
      for (int i : idx) order->emplace_back(static_cast<int>(c), i);
    }
    cached_order_ = order;
    cached_epoch_ = epoch;
    return cached_order_;
  }

  GsvCitiesDataset ds_;
  SamplerOptions options_;
  int64_t num_places_ = 0;
  int64_t batches_per_epoch_ = 0;
  mutable std::mutex mutex_;
  mutable std::shared_ptr<const std::vector<std::pair<int, int>>> cached_order_;
  mutable int64_t cached_epoch_ = -1;
};

}  // namespace

std::unique_ptr<PlaceSampler> MakeGsvCitiesSampler(GsvCitiesDataset dataset,
                                                   const SamplerOptions& options) {
  return std::make_unique<GsvCitiesSampler>(std::move(dataset), options);
}

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
      const Csv raw = ReadCsv(JoinPaths(dir, "raw.csv"));
      const Csv post = ReadCsv(JoinPaths(dir, "postprocessed.csv"));
      const int raw_key = raw.Column("key"), raw_pano = raw.Column("pano");
      std::unordered_map<std::string, bool> is_pano;
      for (const auto& row : raw.rows) {
        const std::string v = ToLower(Trim(row[raw_pano]));
        is_pano[Trim(row[raw_key])] = (v == "true" || v == "1" || v == "1.0");
      }
      const int k = post.Column("key"), e = post.Column("easting"), n = post.Column("northing"),
                u = post.Column("unique_cluster");
      for (size_t r = 0; r < post.rows.size(); ++r) {
        const auto& row = post.rows[r];
        const std::string key = Trim(row[k]);
        auto it = is_pano.find(key);
        if (it == is_pano.end()) {
          MEGALOC_THROW(FormatError, post.path << ": key " << key << " is not in raw.csv");
        }
        if (it->second) continue;
        const std::string ctx = post.path + " row " + std::to_string(r + 1);
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

// =============================================================================================
// COLMAP binary reader / writer

namespace {

class BinaryReader {
 public:
  explicit BinaryReader(const std::string& path) : path_(path) {
    data_ = ReadFileToString(path);
  }
  template <typename T>
  T Read() {
    if (pos_ + sizeof(T) > data_.size()) {
      MEGALOC_THROW(FormatError, path_ << ": truncated COLMAP binary file (at byte " << pos_ << " of "
                                       << data_.size() << ")");
    }
    T v;
    std::memcpy(&v, data_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string ReadString() {
    const size_t end = data_.find('\0', pos_);
    if (end == std::string::npos) {
      MEGALOC_THROW(FormatError, path_ << ": truncated COLMAP binary file (unterminated name)");
    }
    std::string s = data_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return s;
  }
  void CheckCount(uint64_t count, size_t min_bytes_each) const {
    if (count > (data_.size() - pos_) / std::max<size_t>(1, min_bytes_each)) {
      MEGALOC_THROW(FormatError, path_ << ": count " << count << " exceeds the file size (corrupt file)");
    }
  }
  void CheckEnd() const {
    if (pos_ != data_.size()) {
      MEGALOC_THROW(FormatError, path_ << ": " << (data_.size() - pos_) << " trailing bytes");
    }
  }

 private:
  std::string path_;
  std::string data_;
  size_t pos_ = 0;
};

class BinaryWriter {
 public:
  template <typename T>
  void Write(const T& v) {
    out_.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  void WriteString(const std::string& s) { out_.append(s.c_str(), s.size() + 1); }
  const std::string& data() const { return out_; }

 private:
  std::string out_;
};

int CameraModelNumParams(int32_t model_id) {
  // COLMAP camera models 0..10: SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV,
  // OPENCV_FISHEYE, FULL_OPENCV, FOV, SIMPLE_RADIAL_FISHEYE, RADIAL_FISHEYE, THIN_PRISM_FISHEYE.
  static const int kParams[] = {3, 4, 4, 5, 8, 8, 12, 5, 4, 5, 12};
  if (model_id < 0 || model_id > 10) return -1;
  return kParams[model_id];
}

}  // namespace

std::vector<ColmapCamera> ReadColmapCamerasBinary(const std::string& path) {
  BinaryReader r(path);
  const uint64_t n = r.Read<uint64_t>();
  r.CheckCount(n, 24);
  std::vector<ColmapCamera> cams(n);
  for (auto& c : cams) {
    c.camera_id = r.Read<uint32_t>();
    c.model_id = r.Read<int32_t>();
    c.width = r.Read<uint64_t>();
    c.height = r.Read<uint64_t>();
    const int np = CameraModelNumParams(c.model_id);
    if (np < 0) MEGALOC_THROW(FormatError, path << ": unknown camera model id " << c.model_id);
    c.params.resize(np);
    for (double& p : c.params) p = r.Read<double>();
  }
  r.CheckEnd();
  return cams;
}

std::vector<ColmapImage> ReadColmapImagesBinary(const std::string& path) {
  BinaryReader r(path);
  const uint64_t n = r.Read<uint64_t>();
  r.CheckCount(n, 4 + 56 + 4 + 1 + 8);
  std::vector<ColmapImage> images(n);
  for (auto& im : images) {
    im.image_id = r.Read<uint32_t>();
    for (double& q : im.qvec) q = r.Read<double>();
    for (double& t : im.tvec) t = r.Read<double>();
    im.camera_id = r.Read<uint32_t>();
    im.name = r.ReadString();
    im.num_points2D = r.Read<uint64_t>();
    r.CheckCount(im.num_points2D, 24);
    for (uint64_t k = 0; k < im.num_points2D; ++k) {
      r.Read<double>();
      r.Read<double>();
      const uint64_t id = r.Read<uint64_t>();
      if (id != kInvalidPoint3DId) im.point3D_ids.push_back(id);
    }
    std::sort(im.point3D_ids.begin(), im.point3D_ids.end());
    im.point3D_ids.erase(std::unique(im.point3D_ids.begin(), im.point3D_ids.end()),
                         im.point3D_ids.end());
  }
  r.CheckEnd();
  return images;
}

std::vector<ColmapPoint3D> ReadColmapPoints3DBinary(const std::string& path) {
  BinaryReader r(path);
  const uint64_t n = r.Read<uint64_t>();
  r.CheckCount(n, 8 + 24 + 3 + 8 + 8);
  std::vector<ColmapPoint3D> points(n);
  for (auto& p : points) {
    p.point3D_id = r.Read<uint64_t>();
    for (double& x : p.xyz) x = r.Read<double>();
    r.Read<uint8_t>();
    r.Read<uint8_t>();
    r.Read<uint8_t>();
    r.Read<double>();
    p.track_length = r.Read<uint64_t>();
    r.CheckCount(p.track_length, 8);
    for (uint64_t k = 0; k < p.track_length; ++k) {
      r.Read<uint32_t>();
      r.Read<uint32_t>();
    }
  }
  r.CheckEnd();
  return points;
}

void WriteColmapCamerasBinary(const std::string& path, const std::vector<ColmapCamera>& cameras) {
  BinaryWriter w;
  w.Write<uint64_t>(cameras.size());
  for (const auto& c : cameras) {
    w.Write(c.camera_id);
    w.Write(c.model_id);
    w.Write(c.width);
    w.Write(c.height);
    for (double p : c.params) w.Write(p);
  }
  WriteFileAtomically(path, w.data());
}

void WriteColmapImagesBinary(const std::string& path, const std::vector<ColmapImage>& images,
                             const std::vector<std::vector<uint64_t>>& observations) {
  MEGALOC_CHECK_EQ(images.size(), observations.size());
  BinaryWriter w;
  w.Write<uint64_t>(images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    const auto& im = images[i];
    w.Write(im.image_id);
    for (double q : im.qvec) w.Write(q);
    for (double t : im.tvec) w.Write(t);
    w.Write(im.camera_id);
    w.WriteString(im.name);
    w.Write<uint64_t>(observations[i].size());
    for (size_t k = 0; k < observations[i].size(); ++k) {
      w.Write<double>(static_cast<double>(k));
      w.Write<double>(0.5);
      w.Write<uint64_t>(observations[i][k]);
    }
  }
  WriteFileAtomically(path, w.data());
}

void WriteColmapPoints3DBinary(const std::string& path, const std::vector<ColmapPoint3D>& points,
                               const std::vector<std::vector<std::pair<uint32_t, uint32_t>>>& tracks) {
  MEGALOC_CHECK_EQ(points.size(), tracks.size());
  BinaryWriter w;
  w.Write<uint64_t>(points.size());
  for (size_t i = 0; i < points.size(); ++i) {
    w.Write(points[i].point3D_id);
    for (double x : points[i].xyz) w.Write(x);
    w.Write<uint8_t>(128);
    w.Write<uint8_t>(128);
    w.Write<uint8_t>(128);
    w.Write<double>(0.5);
    w.Write<uint64_t>(tracks[i].size());
    for (const auto& [im, pt] : tracks[i]) {
      w.Write(im);
      w.Write(pt);
    }
  }
  WriteFileAtomically(path, w.data());
}

// =============================================================================================
// MegaScenes

OverlapDenominator OverlapDenominatorFromString(const std::string& name) {
  if (name == "min") return OverlapDenominator::kMin;
  if (name == "union") return OverlapDenominator::kUnion;
  if (name == "num_points") return OverlapDenominator::kNumPoints;
  MEGALOC_THROW(InvalidArgument, "unknown overlap denominator '" << name
                                                                 << "' (min, union, num_points)");
}

double PointOverlap(const std::vector<uint64_t>& a, const std::vector<uint64_t>& b,
                    OverlapDenominator denominator, uint64_t num_points) {
  size_t i = 0, j = 0, inter = 0;
  while (i < a.size() && j < b.size()) {
    if (a[i] < b[j]) {
      ++i;
    } else if (b[j] < a[i]) {
      ++j;
    } else {
      ++inter;
      ++i;
      ++j;
    }
  }
  double denom = 0;
  switch (denominator) {
    case OverlapDenominator::kMin: denom = static_cast<double>(std::min(a.size(), b.size())); break;
    case OverlapDenominator::kUnion: denom = static_cast<double>(a.size() + b.size() - inter); break;
    case OverlapDenominator::kNumPoints: denom = static_cast<double>(num_points); break;
  }
  return denom > 0 ? static_cast<double>(inter) / denom : 0.0;
}

bool MegaScenesOptions::Check() const {
  CHECK_OPTION_GT(min_overlap, 0.0);
  CHECK_OPTION_LE(min_overlap, 1.0);
  CHECK_OPTION_GT(max_quadruplets_per_model, 0);
  CHECK_OPTION(overlap_denominator == "min" || overlap_denominator == "union" ||
               overlap_denominator == "num_points");
  return true;
}

GroupedQuadruplets LoadMegaScenes(const std::string& root, const MegaScenesOptions& options,
                                  int images_per_place, uint64_t seed) {
  const OverlapDenominator denom = OverlapDenominatorFromString(options.overlap_denominator);
  const std::string rec = JoinPaths(root, "reconstruct");
  if (!DirectoryExists(rec)) MEGALOC_THROW(IoError, rec << ": MegaScenes reconstruct folder missing");
  GroupedQuadruplets out;
  for (const std::string& aaa : ListSubdirectories(rec)) {
    for (const std::string& bbb : ListSubdirectories(JoinPaths(rec, aaa))) {
      const std::string scene = aaa + bbb;
      const std::string sparses = JoinPaths(JoinPaths(JoinPaths(rec, aaa), bbb), "sparses");
      if (!DirectoryExists(sparses)) continue;
      const std::string image_root = JoinPaths(JoinPaths(JoinPaths(root, "images"), aaa), bbb);
      int group = -1;
      for (const std::string& k : ListSubdirectories(sparses)) {
        const std::string model = JoinPaths(sparses, k);
        if (!FileExists(JoinPaths(model, "images.bin"))) continue;
        ReadColmapCamerasBinary(JoinPaths(model, "cameras.bin"));  // validates the model
        std::vector<ColmapImage> images = ReadColmapImagesBinary(JoinPaths(model, "images.bin"));
        const uint64_t num_points = ReadColmapPoints3DBinary(JoinPaths(model, "points3D.bin")).size();
        std::vector<int> valid;
        for (size_t i = 0; i < images.size(); ++i) {
          if (images[i].point3D_ids.empty()) continue;
          if (options.skip_missing_images && !FileExists(JoinPaths(image_root, images[i].name))) continue;
          valid.push_back(static_cast<int>(i));
        }
        // Inverted index point -> valid images.
        std::unordered_map<uint64_t, std::vector<int>> observers;
        for (int v = 0; v < static_cast<int>(valid.size()); ++v) {
          for (uint64_t id : images[valid[v]].point3D_ids) observers[id].push_back(v);
        }
        auto ok = [&](int a, int b) {
          return PointOverlap(images[valid[a]].point3D_ids, images[valid[b]].point3D_ids, denom,
                              num_points) >= options.min_overlap;
        };
        auto candidates = [&](int a) {
          std::set<int> seen;
          for (uint64_t id : images[valid[a]].point3D_ids) {
            for (int b : observers[id]) seen.insert(b);
          }
          std::vector<int> c;
          for (int b : seen) {
            if (b != a && ok(a, b)) c.push_back(b);
          }
          return c;
        };
        std::mt19937_64 rng = MakeRng(seed, kStreamBuild, NameHash(model));
        for (const auto& q : BuildDisjointCliques(static_cast<int>(valid.size()), images_per_place,
                                                  options.max_quadruplets_per_model, rng,
                                                  candidates, ok)) {
          if (group < 0) {
            group = static_cast<int>(out.groups.size());
            out.groups.push_back(scene);
            out.by_group.emplace_back();
          }
          Quadruplet quad;
          quad.group = group;
          for (int v : q) quad.images.push_back(JoinPaths(image_root, images[valid[v]].name));
          out.by_group[group].push_back(static_cast<int>(out.quadruplets.size()));
          out.quadruplets.push_back(std::move(quad));
        }
      }
    }
  }
  return out;
}

// =============================================================================================
// ScanNet

bool ScanNetOptions::Check() const {
  CHECK_OPTION_GT(max_distance_m, 0.0);
  CHECK_OPTION_GT(max_angle_deg, 0.0);
  CHECK_OPTION(angle == "rotation" || angle == "optical_axis");
  CHECK_OPTION_GT(frame_stride, 0);
  CHECK_OPTION_GT(max_quadruplets_per_scan, 0);
  return true;
}

double CameraAngleDeg(const std::array<double, 9>& r1, const std::array<double, 9>& r2,
                      const std::string& rule) {
  double c = 0;
  if (rule == "rotation") {
    double tr = 0;  // tr(R1^T R2) = sum_ij R1_ij R2_ij
    for (int i = 0; i < 9; ++i) tr += r1[i] * r2[i];
    c = (tr - 1.0) / 2.0;
  } else if (rule == "optical_axis") {
    // Camera z axis in world coordinates = third column of the camera->world rotation.
    double n1 = 0, n2 = 0;
    for (int i = 0; i < 3; ++i) {
      c += r1[i * 3 + 2] * r2[i * 3 + 2];
      n1 += r1[i * 3 + 2] * r1[i * 3 + 2];
      n2 += r2[i * 3 + 2] * r2[i * 3 + 2];
    }
    c /= std::sqrt(n1 * n2);
  } else {
    MEGALOC_THROW(InvalidArgument, "unknown ScanNet angle rule '" << rule << "' (rotation, optical_axis)");
  }
  c = std::max(-1.0, std::min(1.0, c));
  return std::acos(c) * 180.0 / M_PI;
}

GroupedQuadruplets LoadScanNet(const std::string& root, const ScanNetOptions& options,
                               int images_per_place, uint64_t seed) {
  const std::string scans = JoinPaths(root, "scans");
  if (!DirectoryExists(scans)) MEGALOC_THROW(IoError, scans << ": ScanNet scans folder missing");
  std::vector<std::string> scan_names;
  if (!options.split_file.empty()) {
    std::istringstream in(ReadFileToString(options.split_file));
    std::string line;
    while (std::getline(in, line)) {
      if (!Trim(line).empty()) scan_names.push_back(Trim(line));
    }
  } else {
    scan_names = ListSubdirectories(scans);
  }
  GroupedQuadruplets out;
  std::map<std::string, int> group_of;
  for (const std::string& scan : scan_names) {
    const std::string dir = JoinPaths(scans, scan);
    const std::string pose_dir = JoinPaths(dir, "pose");
    if (!DirectoryExists(pose_dir)) {
      MEGALOC_THROW(IoError, pose_dir << ": missing (export the .sens file with SensReader "
                                         "--export_poses --export_color_images)");
    }
    struct Frame {
      std::string image;
      std::array<double, 9> r;
      std::array<double, 3> t;
    };
    std::vector<std::pair<int64_t, std::string>> pose_files;
    for (const std::string& f : ListFiles(pose_dir, false, {".txt"})) {
      const std::string stem = fs::path(f).stem().string();
      pose_files.emplace_back(ParseInt(stem, f), f);
    }
    std::sort(pose_files.begin(), pose_files.end());
    std::vector<Frame> frames;
    for (size_t i = 0; i < pose_files.size(); i += options.frame_stride) {
      const auto& [index, f] = pose_files[i];
      std::istringstream in(ReadFileToString(f));
      std::vector<double> m;
      std::string tok;
      while (in >> tok) {
        const std::string low = ToLower(tok);
        if (low == "-inf" || low == "inf" || low == "nan" || low == "-nan") {
          m.push_back(std::numeric_limits<double>::quiet_NaN());
        } else {
          m.push_back(ParseDouble(tok, f));
        }
      }
      if (m.size() != 16) MEGALOC_THROW(FormatError, f << ": expected a 4x4 matrix, got " << m.size() << " values");
      bool finite = true;
      for (double v : m) finite &= std::isfinite(v);
      if (!finite) continue;  // invalid tracking
      const std::string image = JoinPaths(JoinPaths(dir, "color"), std::to_string(index) + ".jpg");
      if (!FileExists(image)) MEGALOC_THROW(IoError, image << ": missing colour frame for " << f);
      Frame fr;
      fr.image = image;
      for (int r = 0; r < 3; ++r) {
        for (int c = 0; c < 3; ++c) fr.r[r * 3 + c] = m[r * 4 + c];
        fr.t[r] = m[r * 4 + 3];
      }
      frames.push_back(fr);
    }
    auto ok = [&](int a, int b) {
      double d2 = 0;
      for (int k = 0; k < 3; ++k) d2 += (frames[a].t[k] - frames[b].t[k]) * (frames[a].t[k] - frames[b].t[k]);
      return std::sqrt(d2) < options.max_distance_m &&
             CameraAngleDeg(frames[a].r, frames[b].r, options.angle) < options.max_angle_deg;
    };
    const int n = static_cast<int>(frames.size());
    auto candidates = [&](int a) {
      std::vector<int> c;
      for (int b = 0; b < n; ++b) {
        if (b != a && ok(a, b)) c.push_back(b);
      }
      return c;
    };
    std::mt19937_64 rng = MakeRng(seed, kStreamBuild, NameHash(scan));
    const auto quads = BuildDisjointCliques(n, images_per_place, options.max_quadruplets_per_scan,
                                            rng, candidates, ok);
    if (quads.empty()) continue;
    const std::string scene = scan.substr(0, scan.rfind('_'));  // scene0000_01 -> scene0000
    auto it = group_of.find(scene);
    if (it == group_of.end()) {
      it = group_of.emplace(scene, static_cast<int>(out.groups.size())).first;
      out.groups.push_back(scene);
      out.by_group.emplace_back();
    }
    for (const auto& q : quads) {
      Quadruplet quad;
      quad.group = it->second;
      for (int v : q) quad.images.push_back(frames[v].image);
      out.by_group[it->second].push_back(static_cast<int>(out.quadruplets.size()));
      out.quadruplets.push_back(std::move(quad));
    }
  }
  return out;
}

namespace {

class QuadrupletSampler : public PlaceSampler {
 public:
  QuadrupletSampler(std::string name, GroupedQuadruplets data, const SamplerOptions& options)
      : name_(std::move(name)), data_(std::move(data)), options_(options) {
    if (static_cast<int>(data_.groups.size()) < options_.places_per_batch) {
      MEGALOC_THROW(InvalidArgument, name_ << ": " << data_.groups.size()
                                           << " classes with a valid quadruplet, fewer than "
                                              "places_per_batch = "
                                           << options_.places_per_batch);
    }
    for (const auto& q : data_.quadruplets) {
      MEGALOC_CHECK_EQ(static_cast<int>(q.images.size()), options_.images_per_place);
    }
  }
  std::string Name() const override { return name_; }
  std::string Summary() const override {
    std::ostringstream s;
    s << name_ << ": " << data_.groups.size() << " classes, " << data_.quadruplets.size()
      << " disjoint quadruplets";
    return s.str();
  }
  std::vector<SubBatchSpec> Sample(int64_t iteration) const override {
    std::mt19937_64 rng = MakeRng(options_.seed, kStreamQuadruplets, NameHash(name_), iteration);
    SubBatchSpec sb;
    sb.source = name_;
    for (int g : SampleWithoutReplacement(static_cast<int>(data_.groups.size()),
                                          options_.places_per_batch, rng)) {
      const auto& list = data_.by_group[g];
      std::uniform_int_distribution<size_t> dist(0, list.size() - 1);
      const Quadruplet& q = data_.quadruplets[list[dist(rng)]];
      for (const std::string& path : q.images) {
        ImageRef ref;
        ref.path = path;
        sb.images.push_back(ref);
        sb.labels.push_back(g);
      }
    }
    return {sb};
  }

 private:
  std::string name_;
  GroupedQuadruplets data_;
  SamplerOptions options_;
};

}  // namespace

std::unique_ptr<PlaceSampler> MakeQuadrupletSampler(const std::string& name, GroupedQuadruplets data,
                                                    const SamplerOptions& options) {
  return std::make_unique<QuadrupletSampler>(name, std::move(data), options);
}

// =============================================================================================
// SF-XL + EigenPlaces

SfxlPanorama ParseSfxlName(const std::string& path) {
  const std::string name = fs::path(path).filename().string();
  const std::vector<std::string> f = Split(name, '@');
  if (f.size() < 11) {
    MEGALOC_THROW(FormatError, path << ": not an SF-XL file name (@E@N@zone@letter@lat@lon@pano@tile@"
                                       "heading@pitch@...)");
  }
  SfxlPanorama p;
  p.path = path;
  p.easting = ParseDouble(f[1], path);
  p.northing = ParseDouble(f[2], path);
  p.heading_deg = ParseDouble(f[9], path);
  return p;
}

bool EigenPlacesOptions::Check() const {
  CHECK_OPTION_GT(cell_size_m, 0.0);
  CHECK_OPTION_GT(groups_per_axis, 0);
  CHECK_OPTION_GT(focal_distance_m, 0.0);
  CHECK_OPTION_GT(min_images_per_class, 0);
  CHECK_OPTION_GT(iterations_per_group, 0);
  return true;
}

EigenPlacesDataset BuildEigenPlaces(std::vector<SfxlPanorama> panoramas,
                                    const EigenPlacesOptions& options) {
  EigenPlacesDataset ds;
  ds.panoramas = std::move(panoramas);
  const double M = options.cell_size_m;
  const int N = options.groups_per_axis;
  std::map<std::pair<int64_t, int64_t>, std::vector<int>> cells;
  for (size_t i = 0; i < ds.panoramas.size(); ++i) {
    const int64_t ce = static_cast<int64_t>(std::floor(ds.panoramas[i].easting / M));
    const int64_t cn = static_cast<int64_t>(std::floor(ds.panoramas[i].northing / M));
    cells[{ce, cn}].push_back(static_cast<int>(i));
  }
  ds.groups.assign(N * N, {});
  auto mod = [](int64_t a, int64_t b) { return ((a % b) + b) % b; };
  for (const auto& [cell, members] : cells) {
    if (static_cast<int>(members.size()) < options.min_images_per_class) continue;
    const int ge = static_cast<int>(mod(cell.first, N));
    const int gn = static_cast<int>(mod(cell.second, N));
    EigenPlacesClass cls;
    cls.panoramas = members;
    double mu[2] = {0, 0};
    for (int m : members) {
      mu[0] += ds.panoramas[m].easting;
      mu[1] += ds.panoramas[m].northing;
    }
    mu[0] /= members.size();
    mu[1] /= members.size();
    Eigen::MatrixXd x(2, members.size());  // (utm - mu)^T
    for (size_t j = 0; j < members.size(); ++j) {
      x(0, j) = ds.panoramas[members[j]].easting - mu[0];
      x(1, j) = ds.panoramas[members[j]].northing - mu[1];
    }
    Eigen::JacobiSVD<Eigen::MatrixXd> svd(x, Eigen::ComputeThinU);
    const Eigen::Vector2d u1 = svd.matrixU().col(1);  // second principal axis (across the street)
    cls.focal_lateral[0] = mu[0] + options.focal_distance_m * u1(0);
    cls.focal_lateral[1] = mu[1] + options.focal_distance_m * u1(1);
    // Frontal: the same axis rotated by +90 degrees (EigenPlaces' rotate_2d_vector(.., 90)), i.e.
    // along the street. (Which side is arbitrary, as the sign of the SVD's axis.)
    cls.focal_frontal[0] = mu[0] - options.focal_distance_m * u1(1);
    cls.focal_frontal[1] = mu[1] + options.focal_distance_m * u1(0);
    ds.groups[ge * N + gn].push_back(std::move(cls));
  }
  return ds;
}

EigenPlacesDataset LoadSfxlEigenPlaces(const std::string& root, const EigenPlacesOptions& options) {
  const std::string dir = JoinPaths(JoinPaths(JoinPaths(root, "raw"), "train"), "panoramas");
  if (!DirectoryExists(dir)) MEGALOC_THROW(IoError, dir << ": SF-XL panorama folder missing");
  std::vector<SfxlPanorama> panos;
  for (const std::string& f : ListFiles(dir, true, {".jpg", ".jpeg", ".png"})) {
    panos.push_back(ParseSfxlName(f));
  }
  if (panos.empty()) MEGALOC_THROW(IoError, dir << ": no panoramas");
  return BuildEigenPlaces(std::move(panos), options);
}

double BearingDeg(const double from[2], const double to[2]) {
  double b = std::atan2(to[0] - from[0], to[1] - from[1]) * 180.0 / M_PI;
  b = std::fmod(b, 360.0);
  if (b < 0) b += 360.0;
  return b;
}

int PanoramaCropX0(double bearing_deg, double heading_deg, int width, int crop_width) {
  const int crop_off = static_cast<int>(bearing_deg / 360.0 * width) % width;
  double h = std::fmod(180.0 - heading_deg, 360.0);
  if (h < 0) h += 360.0;
  const int yaw_off = static_cast<int>(h / 360.0 * width);
  return static_cast<int>((((static_cast<int64_t>(yaw_off) + crop_off - crop_width / 2) % width) + width) % width);
}

namespace {

class EigenPlacesSampler : public PlaceSampler {
 public:
  EigenPlacesSampler(EigenPlacesDataset ds, const EigenPlacesOptions& eigen,
                     const SamplerOptions& options)
      : ds_(std::move(ds)), eigen_(eigen), options_(options) {
    for (size_t g = 0; g < ds_.groups.size(); ++g) {
      if (static_cast<int>(ds_.groups[g].size()) >= options_.places_per_batch) usable_.push_back(g);
    }
    if (usable_.empty()) {
      MEGALOC_THROW(InvalidArgument, "SF-XL/EigenPlaces: no group has places_per_batch = "
                                         << options_.places_per_batch << " classes with >= "
                                         << eigen_.min_images_per_class << " panoramas");
    }
    for (const auto& g : ds_.groups) {
      for (const auto& c : g) {
        MEGALOC_CHECK_GE(static_cast<int>(c.panoramas.size()), options_.images_per_place);
      }
    }
  }
  std::string Name() const override { return "sfxl"; }
  int NumSubBatches() const override { return 2; }
  std::string Summary() const override {
    size_t classes = 0;
    for (const auto& g : ds_.groups) classes += g.size();
    std::ostringstream s;
    s << "SF-XL/EigenPlaces: " << ds_.panoramas.size() << " panoramas, " << classes << " classes, "
      << usable_.size() << " usable groups";
    return s.str();
  }
  int GroupOf(int64_t iteration) const {
    return static_cast<int>(usable_[(iteration / eigen_.iterations_per_group) % usable_.size()]);
  }
  std::vector<SubBatchSpec> Sample(int64_t iteration) const override {
    const auto& group = ds_.groups[GroupOf(iteration)];
    std::vector<SubBatchSpec> out;
    for (int lateral = 1; lateral >= 0; --lateral) {
      std::mt19937_64 rng =
          MakeRng(options_.seed, lateral ? kStreamEigenLateral : kStreamEigenFrontal, iteration);
      SubBatchSpec sb;
      sb.source = lateral ? "sfxl_lateral" : "sfxl_frontal";
      for (int c : SampleWithoutReplacement(static_cast<int>(group.size()), options_.places_per_batch, rng)) {
        const EigenPlacesClass& cls = group[c];
        const double* focal = lateral ? cls.focal_lateral : cls.focal_frontal;
        for (int k : SampleWithoutReplacement(static_cast<int>(cls.panoramas.size()),
                                              options_.images_per_place, rng)) {
          const SfxlPanorama& p = ds_.panoramas[cls.panoramas[k]];
          const double o[2] = {p.easting, p.northing};
          ImageRef ref;
          ref.path = p.path;
          ref.panorama_crop = true;
          ref.crop_bearing_deg = BearingDeg(o, focal);
          ref.pano_heading_deg = p.heading_deg;
          sb.images.push_back(ref);
          sb.labels.push_back(c);
        }
      }
      out.push_back(std::move(sb));
    }
    return out;
  }

 private:
  EigenPlacesDataset ds_;
  EigenPlacesOptions eigen_;
  SamplerOptions options_;
  std::vector<size_t> usable_;
};

}  // namespace

std::unique_ptr<PlaceSampler> MakeEigenPlacesSampler(EigenPlacesDataset dataset,
                                                     const EigenPlacesOptions& eigen,
                                                     const SamplerOptions& options) {
  return std::make_unique<EigenPlacesSampler>(std::move(dataset), eigen, options);
}

}  // namespace megaloc
