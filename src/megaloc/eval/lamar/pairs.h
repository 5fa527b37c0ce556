#pragma once

// LaMAR's pair selection (lamar.tasks.pair_selection.PairSelection with lamar.utils.retrieval) on
// MegaLoc global descriptors, written in the official layout so that the official pipeline reuses it:
//   <outputs>/<SCENE>/pair_selection/<query_id>/<ref_id>/<config name>/
//       retrieval.txt        "ts_q,cam_q,ts_r,cam_r" per line (no spaces, newline-terminated)
//       pairs.txt            "<name_q> <name_r>" lines joined by '\n' (no trailing newline)
//       configuration.json   PairSelectionConf.to_dict(), json indent 4
//
// Semantics (official):
//  * Query images: the image list of the query session (rig query keys expanded to every camera of
//    rigs.txt); reference images: every image of the reference session sorted by (ts, sensor id).
//  * discard = same image name; then, if enabled, frustum filter (discard pairs whose 20 m view
//    pyramids do not intersect), then pose filter (discard dR > 120 deg or dt > 20 m, computed in
//    float32 like scantools' get_pairwise_distances; with num_pairs_filter N keep only pairs with dt
//    strictly below the (N+1)-th smallest dt of the row, discarded pairs counting as inf).
//  * Retrieval: dot product of float32-cast descriptors, the num_pairs best non-discarded
//    reference images per query image, best first (hloc pairs_from_score_matrix with no min_score).
//    Ties are broken by ascending reference index (torch.topk leaves them unspecified).
//  * Deviation: torch.topk raises when fewer reference images than num_pairs (or N + 1) exist; here
//    k is clamped (every remaining reference image is kept).

#include <array>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "megaloc/eval/lamar/capture.h"

namespace megaloc {
namespace lamar {

// The retrieval method dict registered in LaMAR's RetrievalFeatureExtraction.methods:
// {"name": name, "hloc": {"model": {"name": "megaloc"}, "preprocessing": {"resize_max": R}}}.
struct RetrievalMethod {
  // Method name (directory under extraction/<session>/ and prefix of pair config names).
  std::string name = "megaloc";
  // hloc's preprocessing resize_max (longest side). 1024 = hloc's `megaloc` preset.
  int resize_max = 1024;

  nlohmann::ordered_json ToJson() const;
  bool Check() const;
};

// lamar.tasks.pair_selection.PairSelectionConf.
struct PairSelectionConfig {
  RetrievalMethod method;
  bool filter_frustum = false;
  double frustum_max_depth = 20.0;       // metres
  bool filter_pose = false;
  double pose_max_rotation = 120.0;      // degrees
  double pose_max_translation = 20.0;    // metres
  int pose_num_pairs_filter = -1;        // -1 = None
  int num_pairs = 10;

  // Localization defaults of lamar.run (`pairs_loc`): no filter, "<method>-<k>".
  static PairSelectionConfig Localization(const RetrievalMethod& method, int num_pairs = 10);
  // Mapping defaults of lamar.run (`pairs_map`): frustum + pose filter with 250 nearest,
  // "<method>-<k>_frustum_pose-120-20-250".
  static PairSelectionConfig Mapping(const RetrievalMethod& method, int num_pairs = 10);

  // PairSelectionConf.method_name().
  std::string Name() const;
  // PairSelectionConf.to_dict() (including the disabled radio filter).
  nlohmann::ordered_json ToJson() const;
  bool Check() const;
};

// Paths of the official layout.
std::string ExtractionDir(const std::string& scene_outputs, const std::string& session_id,
                          const std::string& method_name);
std::string PairSelectionDir(const std::string& scene_outputs, const std::string& query_id,
                             const std::string& ref_id, const std::string& config_name);

struct PairSelectionResult {
  // Query image keys (in query order) and their retrieved reference keys, best first.
  std::vector<std::pair<Key, std::vector<Key>>> retrieval;
  // (query image name, reference image name), in the same order.
  std::vector<std::pair<std::string, std::string>> pairs;
  // Scores of `pairs` (dot products), same order.
  std::vector<float> scores;
};

struct PairSelectionStats {
  int num_query_images = 0;
  int num_ref_images = 0;
  int64_t num_candidates = 0;  // non-discarded (query, reference) pairs after the filters
  int num_pairs = 0;
  double seconds = 0.0;
};

// Selects pairs between a query and a reference session. `query_keys` = queries.txt keys (null or
// empty: every image of the query session, as for mapping pairs). `poses_q` are the query poses for
// the filters (null: the query session's trajectories when query == reference, as the official code
// does; filters need poses). Descriptors are read from hloc HDF5 files whose names are
// ListImagesForSession names. Throws on missing descriptors (FormatError naming file and image).
PairSelectionResult SelectPairs(const Session& session_q, const Session& session_r,
                                const std::vector<Key>* query_keys, const Trajectories* poses_q,
                                const PairSelectionConfig& config,
                                const std::string& features_q, const std::string& features_r,
                                PairSelectionStats* stats = nullptr);

// Writes retrieval.txt, pairs.txt and configuration.json into `dir` (created). Throws
// InvalidArgument if there is no pair (the official code raises "No pair found!").
void WritePairSelection(const std::string& dir, const PairSelectionConfig& config,
                        const PairSelectionResult& result);

// Reads retrieval.txt back (official load_retrieval), in file order.
std::vector<std::pair<Key, std::vector<Key>>> ReadRetrieval(const std::string& path);

// ---- filters (exposed for tests) -----------------------------------------------------------------

// The 5 vertices (O, top_left, bottom_left, bottom_right, top_right) of a camera's view pyramid,
// world frame, float32 like scantools.utils.frustum.pyramids_from_trajectory.
using Pyramid = std::array<Eigen::Vector3f, 5>;
Pyramid PyramidFromCamera(const Pose& cam_to_world, const Sensor& camera, double max_depth);
// scantools' pyramid_intersection_check for one pair (separating-plane test in both directions).
bool PyramidsIntersect(const Pyramid& a, const Pyramid& b);
// scantools get_pairwise_distances for one pair: (dR degrees, dt metres) in float32.
std::pair<float, float> PairwisePoseDistance(const Pose& a, const Pose& b);

// ---- retrieval-only proxy (not part of the benchmark) ---------------------------------------------

struct RetrievalProxyResult {
  int num_query_images = 0;   // query images with a ground-truth pose
  int num_hits = 0;           // ... whose top-k contains a reference image within the thresholds
  double max_rotation_deg = 0.0;
  double max_translation_m = 0.0;
  int top_k = 0;
  double Percent() const { return num_query_images ? 100.0 * num_hits / num_query_images : 0.0; }
};

// Share of query images (GT camera pose from `gt_q`, rig poses expanded) whose first `top_k`
// retrieved reference images include one with rotation difference < max_rotation_deg and camera
// centre distance < max_translation_m (reference poses: session_r trajectories). Query images
// without GT are skipped.
RetrievalProxyResult RetrievalProxy(const Session& session_q, const Trajectories& gt_q,
                                    const Session& session_r,
                                    const std::vector<std::pair<Key, std::vector<Key>>>& retrieval,
                                    int top_k, double max_rotation_deg, double max_translation_m);

// ---- the `pairs` step -----------------------------------------------------------------------------

struct LamarPairsOptions {
  // Root holding <SCENE>/sessions/. Required.
  std::string capture_path;
  std::string scene;     // Required.
  std::string outputs;   // Output root (files under <outputs>/<SCENE>/). Required.
  std::string ref_id = "map";
  // Query session; "" = mapping pairs only.
  std::string query_id;
  RetrievalMethod method;
  int num_pairs_loc = 10;   // lamar.run num_pairs_loc
  int num_pairs_map = 10;   // lamar.run num_pairs_map
  bool mapping_pairs = true;  // also write ref->ref pairs (frustum + pose filters)
  // Retrieval-only proxy (query sessions with ground truth only).
  int proxy_top_k = 10;
  double proxy_max_rotation_deg = 45.0;
  double proxy_max_translation_m = 5.0;

  bool Check() const;
};

struct LamarPairsStats {
  std::string mapping_dir;       // "" if not written
  PairSelectionStats mapping;
  std::string localization_dir;  // "" if not written
  PairSelectionStats localization;
  bool has_proxy = false;
  RetrievalProxyResult proxy;
};

// Reads the sessions and the descriptors of the `extract` step and writes the official
// pair_selection directories (mapping: "<method>-<k>_frustum_pose-120-20-250", localization:
// "<method>-<k>").
LamarPairsStats RunLamarPairs(const LamarPairsOptions& options);

}  // namespace lamar
}  // namespace megaloc
