#pragma once

// Native localization of a LaMAR query session against the map session with the real COLMAP
// binary (3.8, CPU: use_gpu 0) on MegaLoc pairs. THIS IS A DIFFERENT PROTOCOL FROM THE PAPER'S
// (LaMAR: SuperPoint + SuperGlue, pycolmap P3P/GP3P with LO-RANSAC); its numbers are not
// comparable with published LaMAR results. Steps:
//   1. colmap feature_extractor (SIFT) on the map images and the query images (rigs expanded),
//      then the database cameras are set to the sensors.txt intrinsics;
//   2. colmap matches_importer --match_type pairs on the map->map and query->map pairs of the
//      `pairs` step (geometric verification included);
//   3. colmap point_triangulator on a model written from the map's known poses (poses fixed);
//   4. colmap image_registrator registers the query images into that model (intrinsics fixed);
//   5. poses.txt in LaMAR's format: phone = camera -> world per (ts, camera); rig sessions = one
//      rig -> world pose per (ts, rig), from the rig camera registered with the most 2D-3D inliers
//      (T_w_rig = T_w_cam * T_rig_cam^-1), since COLMAP 3.8 has no generalized (rig) absolute pose.
// Query images are registered one after another and image_registrator triangulates their new
// points, so later queries can use points seen by earlier ones (no GT is involved).

#include <string>

#include "megaloc/eval/lamar/capture.h"
#include "megaloc/eval/lamar/pairs.h"

namespace megaloc {
namespace lamar {

struct LocalizeOptions {
  std::string capture_path;   // root holding <SCENE>/sessions/. Required.
  std::string scene;          // Required.
  std::string outputs;        // Output root (files under <outputs>/<SCENE>/). Required.
  std::string ref_id = "map";
  std::string query_id;       // Required.
  RetrievalMethod method;     // names the pair_selection directories to read
  int num_pairs_loc = 10;
  int num_pairs_map = 10;
  // COLMAP executable (default: the one found at configure time, else "colmap" on PATH).
  std::string colmap_path;
  // Threads for COLMAP's SIFT extraction/matching (-1 = all cores).
  int num_threads = -1;
  // SiftExtraction.max_image_size and max_num_features (COLMAP defaults 3200 / 8192).
  int max_image_size = 3200;
  int max_num_features = 8192;
  // Mapper.abs_pose_min_num_inliers for the query registration (COLMAP default 30).
  int min_num_inliers = 30;
  // Recompute everything (default: stages whose outputs exist are skipped).
  bool overwrite = false;

  bool Check() const;
};

struct LocalizeStats {
  std::string workdir;
  std::string poses_path;  // <workdir>/<query_id>/poses.txt
  int num_map_images = 0;
  int num_query_images = 0;      // after rig expansion
  int num_query_keys = 0;        // queries.txt entries
  int num_registered_images = 0;
  int num_localized_keys = 0;    // rows of poses.txt
  int num_points3d = 0;          // triangulated map points
  double seconds = 0.0;
};

// Work directory shared by every query session localized against the same map and pairs:
// <outputs>/<SCENE>/native_localization/<ref_id>/<loc pairs>__<map pairs>/ holding database.db
// (map + query images), the map model and its triangulation (computed once), and per query
// session <query_id>/{registered/, registered_txt/, poses.txt, COLMAP logs}. Stages leave *.done
// markers and are skipped on a rerun. Do not run two localizations on one work directory at once.
std::string LocalizeWorkdir(const LocalizeOptions& options);

// Runs the steps above; writes <workdir>/poses.txt. Throws IoError naming the COLMAP log of a
// failed step (with its last lines), FormatError/InvalidArgument for bad sessions or pairs.
LocalizeStats RunLocalization(const LocalizeOptions& options);

}  // namespace lamar
}  // namespace megaloc
