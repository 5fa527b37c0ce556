#pragma once

// Localization recall of LaMAR, computed exactly as the official evaluation
// (lamar.tasks.pose_estimation.{SingleImage,Rig}PoseEstimation.evaluate and
// lamar.utils.localization.compute_pose_errors, microsoft/lamar-benchmark @ fb872648):
//  1. GT = proc/alignment_trajectories.txt restricted to the keys of queries.txt (in query order; an
//     empty query list keeps every GT key, like the official `if self.query_keys:`).
//  2. Rig mode (HoloLens): GT and estimates (rig -> world) are expanded to every camera of rigs.txt,
//     T_w_cam = T_w_rig * T_rig_cam, and scored per camera image. Single-image mode: no expansion.
//  3. Per evaluated key: dR = angle(R_est^T R_gt) in degrees (scipy magnitude, 2 atan2(|v|, |w|)),
//     dt = |R_est^T (t_gt - t_est)|; keys without an estimate get dR = dt = inf.
//  4. recall(theta, tau) = mean over evaluated keys of [dR < theta and dt < tau] (strict).

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "megaloc/eval/lamar/capture.h"

namespace megaloc {
namespace lamar {

enum class EvaluationMode {
  kAuto,         // rig if every query id is a rig of rigs.txt, single image if every one is a camera
  kSingleImage,  // SingleImagePoseEstimation (phone): one estimate per (ts, camera)
  kRig,          // RigPoseEstimation (HoloLens): one estimate per (ts, rig), scored per camera
};

// Parses "auto", "single_image" (or "single") and "rig"; throws InvalidArgument otherwise.
EvaluationMode ParseEvaluationMode(const std::string& text);
std::string EvaluationModeName(EvaluationMode mode);

struct EvaluationOptions {
  // Query session directory (<SCENE>/sessions/<query_id>). Required.
  std::string session_path;
  // Estimated poses in LaMAR's poses.txt layout. Required.
  std::string poses_path;
  // Ground truth trajectories; default "" = <session>/proc/alignment_trajectories.txt.
  std::string ground_truth_path;
  // Query list; default "" = <session>/queries.txt.
  std::string queries_path;
  // Default kAuto.
  EvaluationMode mode = EvaluationMode::kAuto;
  // (max rotation error in degrees, max translation error in metres); default LaMAR's
  // {(1, 0.1), (5, 1.0)}.
  std::vector<std::pair<double, double>> thresholds = {{1.0, 0.1}, {5.0, 1.0}};
  // Check that images.txt files exist while loading the session (default false: not needed).
  bool check_images_exist = false;

  bool Check() const;
};

struct KeyPoseError {
  Key key;                 // evaluated key (camera key in rig mode)
  bool has_estimate = false;
  double err_R_deg = 0.0;  // +inf without estimate
  double err_t_m = 0.0;    // +inf without estimate
};

struct EvaluationResult {
  EvaluationMode mode = EvaluationMode::kSingleImage;
  std::vector<std::pair<double, double>> thresholds;
  std::vector<double> recall;        // fractions, one per threshold (the official output)
  int num_query_keys = 0;            // keys of the GT after query filtering (rig keys in rig mode)
  int num_eval_keys = 0;             // after rig expansion
  int num_missing = 0;               // evaluated keys without an estimate
  int num_estimates = 0;             // rows of poses.txt (distinct keys)
  int num_estimates_ignored = 0;     // estimates whose (expanded) key is not evaluated
  double median_err_R_deg = 0.0;     // over all evaluated keys (inf counts), numpy median
  double median_err_t_m = 0.0;
  std::vector<KeyPoseError> errors;  // in evaluation order
};

// Expands rig poses (rig -> world) to camera poses for every camera of the rig
// (lamar.tasks.pose_estimation.rig_to_image_trajectory). Throws InvalidArgument naming `what` for a
// device that is not a rig.
Trajectories RigToImageTrajectory(const Trajectories& rig_poses, const Rigs& rigs,
                                  const std::string& what);

// The official computation on loaded data. `mode` must not be kAuto.
EvaluationResult EvaluatePoses(const Session& session, const std::vector<Key>& query_keys,
                               const Trajectories& ground_truth, const Trajectories& estimates,
                               EvaluationMode mode,
                               const std::vector<std::pair<double, double>>& thresholds,
                               const std::string& estimates_name = "poses.txt");

// Loads session, queries, GT and estimates, resolves kAuto and evaluates.
EvaluationResult EvaluatePoses(const EvaluationOptions& options);

// Label of a threshold pair: (1, 0.1) -> "1deg_10cm", (5, 1.0) -> "5deg_1m".
std::string ThresholdLabel(double max_deg, double max_m);

// JSON report: {"recall": {"1deg_10cm": %, "5deg_1m": %}, "recall_fraction": [...],
// "Rt_thresholds": [[1, 0.1], [5, 1.0]], "mode", counts, medians, "per_key_errors": [{timestamp,
// sensor_id, err_R_deg, err_t_m}] with null for missing estimates}.
nlohmann::json EvaluationResultToJson(const EvaluationResult& result);

}  // namespace lamar
}  // namespace megaloc
