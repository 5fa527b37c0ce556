#include "megaloc/eval/lamar/evaluation.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"

namespace megaloc {
namespace lamar {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// numpy.median: mean of the two middle values of the sorted array (inf propagates).
double Median(std::vector<double> values) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  if (n % 2 == 1) return values[n / 2];
  const double a = values[n / 2 - 1], b = values[n / 2];
  if (std::isinf(a) || std::isinf(b)) return std::isinf(a) ? a : b;
  return (a + b) / 2.0;
}

nlohmann::json FiniteOrNull(double value) {
  if (!std::isfinite(value)) return nullptr;
  return value;
}

std::string FormatNumber(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

}  // namespace

EvaluationMode ParseEvaluationMode(const std::string& text) {
  if (text == "auto") return EvaluationMode::kAuto;
  if (text == "single_image" || text == "single") return EvaluationMode::kSingleImage;
  if (text == "rig") return EvaluationMode::kRig;
  MEGALOC_THROW(InvalidArgument,
                "invalid evaluation mode '" << text << "' (expected auto, single_image or rig)");
}

std::string EvaluationModeName(EvaluationMode mode) {
  switch (mode) {
    case EvaluationMode::kAuto:
      return "auto";
    case EvaluationMode::kSingleImage:
      return "single_image";
    case EvaluationMode::kRig:
      return "rig";
  }
  return "?";
}

bool EvaluationOptions::Check() const {
  CHECK_OPTION_NE(session_path, std::string());
  CHECK_OPTION_NE(poses_path, std::string());
  CHECK_OPTION(!thresholds.empty());
  for (const auto& threshold : thresholds) {
    CHECK_OPTION_GT(threshold.first, 0.0);
    CHECK_OPTION_GT(threshold.second, 0.0);
  }
  return true;
}

Trajectories RigToImageTrajectory(const Trajectories& rig_poses, const Rigs& rigs,
                                  const std::string& what) {
  Trajectories image_poses;
  for (const Key& key : rig_poses.KeyPairs()) {
    if (!rigs.HasRig(key.second)) {
      MEGALOC_THROW(FormatError,
                    what << ": device '" << key.second << "' at timestamp " << key.first
                         << " is not a rig of rigs.txt (rig-mode poses must be one rig -> world "
                            "pose per (timestamp, rig id), as the official RigPoseEstimation "
                            "expects)");
    }
    const Pose& T_w_rig = rig_poses.Get(key);
    for (const auto& entry : rigs.Sensors(key.second)) {
      image_poses.Set(Key(key.first, entry.first), T_w_rig * entry.second);
    }
  }
  return image_poses;
}

EvaluationResult EvaluatePoses(const Session& session, const std::vector<Key>& query_keys,
                               const Trajectories& ground_truth, const Trajectories& estimates,
                               EvaluationMode mode,
                               const std::vector<std::pair<double, double>>& thresholds,
                               const std::string& estimates_name) {
  MEGALOC_CHECK_MSG(mode != EvaluationMode::kAuto, "EvaluatePoses needs a resolved mode");
  EvaluationResult result;
  result.mode = mode;
  result.thresholds = thresholds;

  // 1. GT restricted to the query keys.
  Trajectories gt;
  if (!query_keys.empty()) {
    for (const Key& key : query_keys) {
      if (!ground_truth.Contains(key)) {
        MEGALOC_THROW(FormatError, "session " << session.path << ": query (" << key.first << ", "
                                              << key.second
                                              << ") has no ground-truth pose in the GT "
                                                 "trajectories");
      }
      gt.Set(key, ground_truth.Get(key));
    }
  } else {
    gt = ground_truth;
  }
  result.num_query_keys = static_cast<int>(gt.Size());

  // 2. Conversion for evaluation.
  Trajectories estimates_eval;
  if (mode == EvaluationMode::kRig) {
    gt = RigToImageTrajectory(gt, session.rigs, "ground truth");
    estimates_eval = RigToImageTrajectory(estimates, session.rigs, estimates_name);
  } else {
    estimates_eval = estimates;
  }
  result.num_estimates = static_cast<int>(estimates.Size());

  // 3. Errors per evaluated key.
  const std::vector<Key> eval_keys = gt.KeyPairs();
  result.num_eval_keys = static_cast<int>(eval_keys.size());
  std::vector<double> err_r, err_t;
  for (const Key& key : eval_keys) {
    KeyPoseError error;
    error.key = key;
    if (estimates_eval.Contains(key)) {
      const std::pair<double, double> dr_dt =
          (estimates_eval.Get(key).Inverse() * gt.Get(key)).Magnitude();
      error.has_estimate = true;
      error.err_R_deg = dr_dt.first;
      error.err_t_m = dr_dt.second;
    } else {
      error.err_R_deg = kInf;
      error.err_t_m = kInf;
      ++result.num_missing;
    }
    err_r.push_back(error.err_R_deg);
    err_t.push_back(error.err_t_m);
    result.errors.push_back(error);
  }
  for (const Key& key : estimates_eval.KeyPairs()) {
    if (!gt.Contains(key)) ++result.num_estimates_ignored;
  }

  // 4. Recalls (numpy mean of booleans; nan for zero keys as numpy).
  for (const auto& threshold : thresholds) {
    int num_ok = 0;
    for (size_t i = 0; i < eval_keys.size(); ++i) {
      if (err_r[i] < threshold.first && err_t[i] < threshold.second) ++num_ok;
    }
    result.recall.push_back(eval_keys.empty() ? std::numeric_limits<double>::quiet_NaN()
                                              : static_cast<double>(num_ok) / eval_keys.size());
  }
  result.median_err_R_deg = Median(err_r);
  result.median_err_t_m = Median(err_t);
  return result;
}

EvaluationResult EvaluatePoses(const EvaluationOptions& options) {
  MEGALOC_CHECK_MSG(options.Check(), "invalid evaluation options");
  SessionLoadOptions load_options;
  load_options.check_images_exist = options.check_images_exist;
  const Session session = LoadSession(options.session_path, load_options);

  const std::string queries_path = options.queries_path.empty()
                                       ? JoinPaths(options.session_path, "queries.txt")
                                       : options.queries_path;
  const std::vector<Key> query_keys = ReadQueryList(queries_path);
  if (query_keys.empty()) {
    MEGALOC_THROW(FormatError, queries_path << ": no query keys (empty query list); nothing to "
                                               "evaluate");
  }

  Trajectories ground_truth;
  if (options.ground_truth_path.empty()) {
    if (!session.has_alignment_trajectories) {
      MEGALOC_THROW(IoError, JoinPaths(options.session_path, "proc/alignment_trajectories.txt")
                                 << ": no ground truth (only validation sessions ship it; test "
                                    "sessions are scored on the benchmark server)");
    }
    ground_truth = session.alignment_trajectories;
  } else {
    ground_truth = ReadTrajectories(options.ground_truth_path);
  }

  EvaluationMode mode = options.mode;
  if (mode == EvaluationMode::kAuto) {
    int num_rigs = 0, num_sensors = 0;
    for (const Key& key : query_keys) {
      if (session.IsRig(key.second)) {
        ++num_rigs;
      } else if (session.sensors.count(key.second)) {
        ++num_sensors;
      } else {
        MEGALOC_THROW(FormatError, queries_path << ": device '" << key.second
                                                << "' is neither a sensor nor a rig of the "
                                                   "session");
      }
    }
    if (num_rigs > 0 && num_sensors > 0) {
      MEGALOC_THROW(FormatError, queries_path << ": mixes rig ids and sensor ids; pass the mode "
                                                 "explicitly");
    }
    mode = num_rigs > 0 ? EvaluationMode::kRig : EvaluationMode::kSingleImage;
  }

  const Trajectories estimates = ReadTrajectories(options.poses_path);
  return EvaluatePoses(session, query_keys, ground_truth, estimates, mode, options.thresholds,
                       options.poses_path);
}

std::string ThresholdLabel(double max_deg, double max_m) {
  std::string label = FormatNumber(max_deg) + "deg_";
  if (max_m < 1.0) {
    label += FormatNumber(std::round(max_m * 100.0 * 1e6) / 1e6) + "cm";
  } else {
    label += FormatNumber(max_m) + "m";
  }
  return label;
}

nlohmann::json EvaluationResultToJson(const EvaluationResult& result) {
  nlohmann::json json;
  nlohmann::json recall = nlohmann::json::object();
  nlohmann::json recall_fraction = nlohmann::json::array();
  nlohmann::json thresholds = nlohmann::json::array();
  for (size_t i = 0; i < result.thresholds.size(); ++i) {
    const auto& threshold = result.thresholds[i];
    recall[ThresholdLabel(threshold.first, threshold.second)] =
        FiniteOrNull(result.recall[i] * 100.0);
    recall_fraction.push_back(FiniteOrNull(result.recall[i]));
    thresholds.push_back({threshold.first, threshold.second});
  }
  json["recall"] = recall;
  json["recall_unit"] = "percent of evaluated keys (recall_fraction: the official fractions)";
  json["recall_fraction"] = recall_fraction;
  json["Rt_thresholds"] = thresholds;
  json["mode"] = EvaluationModeName(result.mode);
  json["n_query_keys"] = result.num_query_keys;
  json["n_eval_keys"] = result.num_eval_keys;
  json["n_missing"] = result.num_missing;
  json["n_estimates"] = result.num_estimates;
  json["n_estimates_ignored"] = result.num_estimates_ignored;
  json["median_err_R_deg"] = FiniteOrNull(result.median_err_R_deg);
  json["median_err_t_m"] = FiniteOrNull(result.median_err_t_m);
  nlohmann::json errors = nlohmann::json::array();
  for (const KeyPoseError& error : result.errors) {
    nlohmann::json entry;
    entry["timestamp"] = error.key.first;
    entry["sensor_id"] = error.key.second;
    entry["err_R_deg"] = FiniteOrNull(error.err_R_deg);
    entry["err_t_m"] = FiniteOrNull(error.err_t_m);
    errors.push_back(entry);
  }
  json["per_key_errors"] = errors;
  return json;
}

}  // namespace lamar
}  // namespace megaloc
