#pragma once

// Training data sources of MegaLoc and their place samplers (torch-free).
//
// Every sampler turns an iteration number into one or more sub-batches of P places x K images
// (MegaLoc: 32 x 4) with integer labels. A sub-batch is a pure function of (seed, iteration), so a
// resumed run sees exactly the batches it would have seen without the interruption; the only state
// to save is the iteration counter.
//
// On-disk layouts (see docs/training.md and /work/shared/spec/training.md §3):
//   GSV-Cities   <root>/Dataframes/<City>.csv + <root>/Images/<city_id>/<city_id>_<place_id:07d>_...jpg
//   MSLS         <root>/train_val/<city>/{query,database}/{images/<key>.jpg,raw.csv,postprocessed.csv}
//   MegaScenes   <root>/reconstruct/<AAA>/<BBB>/sparses/<k>/{cameras,images,points3D}.bin
//                <root>/images/<AAA>/<BBB>/<name in images.bin>
//   ScanNet      <root>/scans/sceneXXXX_YY/{color/<i>.jpg,pose/<i>.txt} (SensReader export)
//   SF-XL        <root>/raw/train/panoramas/@E@N@zone@letter@lat@lon@pano@tile@heading@pitch@...jpg
//   validation   <root>/{database,queries}/**/@E@N@...jpg (VPR-datasets-downloader layout)

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "megaloc/colmap/model.h"

namespace megaloc {

// ---------------------------------------------------------------------------------------------
// Common types

// One image of a training sample. For SF-XL panoramas, `panorama_crop` selects a square crop of
// height x height pixels facing `crop_bearing_deg` (see PanoramaCropX0).
struct ImageRef {
  std::string path;
  bool panorama_crop = false;
  double crop_bearing_deg = 0.0;   // bearing from the camera to the class's focal point, [0, 360)
  double pano_heading_deg = 0.0;   // the panorama's heading (file name field 9)
};

// One sub-batch: places_per_batch x images_per_place images, place-major (images of place p are
// [p*K, (p+1)*K)), and one label per image (equal within a place, distinct across places).
struct SubBatchSpec {
  std::string source;
  std::vector<ImageRef> images;
  std::vector<int64_t> labels;
};

struct SamplerOptions {
  // Places per sub-batch (MegaLoc paper: 32; SALAD 60, CliqueMining 30).
  int places_per_batch = 32;
  // Images per place (MegaLoc paper / GSV-Cities: 4).
  int images_per_place = 4;
  // Seed of every random choice of the sampler ([choice]: not published).
  uint64_t seed = 0;

  bool Check() const;
};

// A deterministic random generator for (seed, stream, a, b) (SplitMix64 mixing).
std::mt19937_64 MakeRng(uint64_t seed, uint64_t stream, uint64_t a = 0, uint64_t b = 0);

class PlaceSampler {
 public:
  virtual ~PlaceSampler() = default;
  // "gsv", "msls", "megascenes", "scannet", "sfxl".
  virtual std::string Name() const = 0;
  // Sub-batches produced per iteration (SF-XL: 2, lateral + frontal; others: 1).
  virtual int NumSubBatches() const { return 1; }
  // The sub-batches of `iteration` (thread-safe, deterministic).
  virtual std::vector<SubBatchSpec> Sample(int64_t iteration) const = 0;
  // One-line description for the log (#places, #images, ...).
  virtual std::string Summary() const = 0;
};

// ---------------------------------------------------------------------------------------------
// GSV-Cities (sub-batch 1)

// The 23 training cities of GSV-Cities, in the order SALAD lists them.
const std::vector<std::string>& GsvCitiesTrainCities();

struct GsvPlace {
  int64_t label = 0;                // place_id + city_index * 1e5
  std::vector<std::string> images;  // absolute paths, sorted
};

struct GsvCitiesDataset {
  std::vector<std::string> cities;               // in list order
  std::vector<std::vector<GsvPlace>> places;     // per city: places with >= min_images images
  int64_t num_images = 0;
  int64_t num_dropped_places = 0;                // places with fewer than min_images images
};

// Reads <root>/Dataframes/<City>.csv (for the city_id) and lists <root>/Images/<city_id>/*.jpg,
// grouping files by place_id (file name split on '_' with max 7 splits). Empty `cities` = the 23
// training cities. Throws IoError/FormatError naming the file on a bad layout.
GsvCitiesDataset LoadGsvCities(const std::string& root, const std::vector<std::string>& cities,
                               int min_images_per_place = 4);

// Order "cities in list order, places shuffled within each city", reshuffled every epoch; batch b
// of an epoch = places [b*P, (b+1)*P) of that order (the incomplete last batch is dropped); K images
// per place drawn without replacement.
std::unique_ptr<PlaceSampler> MakeGsvCitiesSampler(GsvCitiesDataset dataset,
                                                   const SamplerOptions& options);

// ---------------------------------------------------------------------------------------------
// MSLS + CliqueMining (sub-batch 2)

struct MslsImage {
  std::string path;
  double easting = 0.0, northing = 0.0;
  int cluster = 0;  // global cluster index (MslsDataset::clusters)
};

struct MslsCluster {
  int city = 0;
  int64_t unique_cluster = 0;  // the id in postprocessed.csv
  std::vector<int> images;     // indices into MslsDataset::images
};

struct MslsDataset {
  std::vector<std::string> cities;
  std::vector<MslsImage> images;
  std::vector<MslsCluster> clusters;
  std::vector<std::vector<int>> city_clusters;  // per city: cluster indices
};

// Reads every <root>/train_val/<city>/ except `exclude_cities`: joins postprocessed.csv with raw.csv
// on `key` for query and database, drops pano == True.
MslsDataset LoadMsls(const std::string& root, const std::vector<std::string>& exclude_cities);

struct CliqueMiningOptions {
  // Precomputed batches (CliqueMining main.py: 4000).
  int num_batches = 4000;
  // Clusters sampled around the seed cluster (CliqueMining: sampled_similar_places = 15).
  int sampled_similar_places = 15;
  // Same-place distance in metres (CliqueMining main.py: 25; dataset default 20).
  double same_place_threshold_m = 25.0;

  bool Check() const;
};

// One representative image per cluster (uniformly drawn with `seed`), in cluster order: the images
// to encode for the cluster descriptors.
std::vector<std::string> MslsRepresentativeImages(const MslsDataset& dataset, uint64_t seed);

// Builds `num_batches` CliqueMining batches offline from per-cluster descriptors
// (row c = descriptor of cluster c, `dim` floats each) and serves them in a per-epoch permutation.
std::unique_ptr<PlaceSampler> MakeMslsCliqueSampler(MslsDataset dataset,
                                                    std::vector<float> cluster_descriptors,
                                                    int dim, const CliqueMiningOptions& clique,
                                                    const SamplerOptions& options);

// ---------------------------------------------------------------------------------------------
// MegaScenes (sub-batch 3)

enum class OverlapDenominator {
  kMin,        // |Pi ∩ Pj| / min(|Pi|, |Pj|)   (default, [choice])
  kUnion,      // |Pi ∩ Pj| / |Pi ∪ Pj|
  kNumPoints,  // |Pi ∩ Pj| / #points3D of the model
};
OverlapDenominator OverlapDenominatorFromString(const std::string& name);

// Shared-point ratio of two sorted id lists.
double PointOverlap(const std::vector<uint64_t>& a, const std::vector<uint64_t>& b,
                    OverlapDenominator denominator, uint64_t num_points);

struct MegaScenesOptions {
  // Minimum pairwise shared-3D-point ratio ([paper]: 1 %).
  double min_overlap = 0.01;
  // Denominator of the ratio ([choice], the paper does not say).
  std::string overlap_denominator = "min";
  // Disjoint quadruplets built per sparse model at load time ([choice]).
  int max_quadruplets_per_model = 64;
  // Skip images whose file is missing under <root>/images/<AAA>/<BBB>/ (pre-resized subsets).
  bool skip_missing_images = true;

  bool Check() const;
};

struct Quadruplet {
  int group = 0;                     // class: scene (MegaScenes) / scene without rescan (ScanNet)
  std::vector<std::string> images;   // images_per_place paths
};

struct GroupedQuadruplets {
  std::vector<std::string> groups;           // group names (scene ids)
  std::vector<Quadruplet> quadruplets;
  std::vector<std::vector<int>> by_group;    // quadruplet indices per group
};

// Builds quadruplets (K images pairwise sharing >= min_overlap) from every
// reconstruct/<AAA>/<BBB>/sparses/<k>/ model under <root>. Scene id = AAABBB.
GroupedQuadruplets LoadMegaScenes(const std::string& root, const MegaScenesOptions& options,
                                  int images_per_place, uint64_t seed);

// ---------------------------------------------------------------------------------------------
// ScanNet (sub-batch 4)

struct ScanNetOptions {
  // Maximum pairwise camera distance in metres ([paper]: 10 m).
  double max_distance_m = 10.0;
  // Maximum pairwise angle in degrees ([paper]: 30°).
  double max_angle_deg = 30.0;
  // "rotation": arccos((tr(Ri^T Rj) - 1) / 2); "optical_axis": angle between the z axes ([choice]).
  std::string angle = "rotation";
  // Use every n-th exported frame ([choice]).
  int frame_stride = 1;
  // Disjoint quadruplets built per scan ([choice]).
  int max_quadruplets_per_scan = 64;
  // Optional split file (e.g. scannetv2_train.txt, one scan per line); empty = every scan.
  std::string split_file;

  bool Check() const;
};

// Angle in degrees between two camera->world rotations (row-major 3x3) by the chosen rule.
double CameraAngleDeg(const std::array<double, 9>& r1, const std::array<double, 9>& r2,
                      const std::string& rule);

// Reads <root>/scans/<scan>/pose/<i>.txt (4x4 camera->world; frames with inf/nan skipped) and
// color/<i>.jpg; builds disjoint quadruplets within each scan; class = scene without the rescan
// suffix (scene0000_00 and scene0000_01 are one class).
GroupedQuadruplets LoadScanNet(const std::string& root, const ScanNetOptions& options,
                               int images_per_place, uint64_t seed);

// P distinct groups per sub-batch (one quadruplet each), label = group index. Used for MegaScenes
// and ScanNet.
std::unique_ptr<PlaceSampler> MakeQuadrupletSampler(const std::string& name,
                                                    GroupedQuadruplets data,
                                                    const SamplerOptions& options);

// ---------------------------------------------------------------------------------------------
// SF-XL + EigenPlaces (sub-batches 5 and 6)

struct SfxlPanorama {
  std::string path;
  double easting = 0.0, northing = 0.0, heading_deg = 0.0;
};

// Parses an SF-XL file name (fields split on '@'). Throws FormatError naming the file.
SfxlPanorama ParseSfxlName(const std::string& path);

struct EigenPlacesOptions {
  // Cell side M in metres (EigenPlaces default 15).
  double cell_size_m = 15.0;
  // Groups per axis N (EigenPlaces default 3 -> 9 groups).
  int groups_per_axis = 3;
  // Distance of the focal point from the class centre (EigenPlaces default 10 m).
  double focal_distance_m = 10.0;
  // Minimum panoramas per class (EigenPlaces default 5).
  int min_images_per_class = 5;
  // Iterations spent on one group before moving to the next ([choice]: 40k / 9 rounded up, so each
  // of the 9 groups is used once in MegaLoc's 40k iterations).
  int iterations_per_group = 4445;

  bool Check() const;
};

struct EigenPlacesClass {
  std::vector<int> panoramas;                 // indices into EigenPlacesDataset::panoramas
  double focal_lateral[2] = {0, 0};           // UTM east, north
  double focal_frontal[2] = {0, 0};
};

struct EigenPlacesDataset {
  std::vector<SfxlPanorama> panoramas;
  std::vector<std::vector<EigenPlacesClass>> groups;  // N*N groups of classes
};

// Lists <root>/raw/train/panoramas/*.jpg and builds the EigenPlaces classes and groups.
EigenPlacesDataset LoadSfxlEigenPlaces(const std::string& root, const EigenPlacesOptions& options);
// Same from an explicit list of panoramas (tests).
EigenPlacesDataset BuildEigenPlaces(std::vector<SfxlPanorama> panoramas,
                                    const EigenPlacesOptions& options);

// Bearing in degrees [0, 360) from `from` to `to` (UTM east, north): atan2(dE, dN).
double BearingDeg(const double from[2], const double to[2]);

// First column of the crop facing `bearing_deg` on a panorama of `width` columns with heading
// `heading_deg`, crop `crop_width` wide: (yaw_off + crop_off - crop_width/2) mod width.
int PanoramaCropX0(double bearing_deg, double heading_deg, int width, int crop_width);

// Two sub-batches per iteration from the current group: lateral (focal point across the street)
// and frontal (along the street); each class gives K distinct panoramas cropped towards its focal
// point; groups with fewer than P classes are skipped.
std::unique_ptr<PlaceSampler> MakeEigenPlacesSampler(EigenPlacesDataset dataset,
                                                     const EigenPlacesOptions& eigen,
                                                     const SamplerOptions& options);

// Validation sets (VPR-datasets-downloader layout, "@E@N@" names, recall@N within 25 m) are
// megaloc/eval/vpr_dataset.h and megaloc/eval/vpr_recall.h, shared with `megaloc vpr_eval`.

}  // namespace megaloc
