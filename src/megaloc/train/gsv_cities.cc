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
    const CsvTable csv = ReadCsvFile(csv_path);
    const int col_city = csv.Column("city_id");
    if (csv.rows.empty()) MEGALOC_THROW(FormatError, csv_path << ": no rows");
    const std::string city_id = Trim(csv.rows[0].fields[col_city]);
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

}  // namespace megaloc
