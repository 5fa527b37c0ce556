// TrainOptions: validation, JSON round trip, learning-rate schedule (torch-free).
#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "megaloc/train/trainer.h"
#include "megaloc/util/logging.h"

namespace megaloc {

using nlohmann::json;

namespace {

// Calls f(name, field) for every serialisable field; nested structs get their own visitors.
template <typename F>
void VisitArchitecture(TrainArchitecture& a, F&& f) {
  f("embed_dim", a.embed_dim);
  f("depth", a.depth);
  f("num_heads", a.num_heads);
  f("patch_size", a.patch_size);
  f("pos_embed_grid", a.pos_embed_grid);
  f("mlp_hidden_dim", a.mlp_hidden_dim);
  f("num_clusters", a.num_clusters);
  f("cluster_dim", a.cluster_dim);
  f("token_dim", a.token_dim);
  f("salad_mlp_dim", a.salad_mlp_dim);
  f("descriptor_dim", a.descriptor_dim);
  f("dropout", a.dropout);
}
template <typename F>
void VisitSampler(SamplerOptions& s, F&& f) {
  f("places_per_batch", s.places_per_batch);
  f("images_per_place", s.images_per_place);
  f("seed", s.seed);
}
template <typename F>
void VisitClique(CliqueMiningOptions& c, F&& f) {
  f("num_batches", c.num_batches);
  f("sampled_similar_places", c.sampled_similar_places);
  f("same_place_threshold_m", c.same_place_threshold_m);
}
template <typename F>
void VisitMegaScenes(MegaScenesOptions& m, F&& f) {
  f("min_overlap", m.min_overlap);
  f("overlap_denominator", m.overlap_denominator);
  f("max_quadruplets_per_model", m.max_quadruplets_per_model);
  f("skip_missing_images", m.skip_missing_images);
}
template <typename F>
void VisitScanNet(ScanNetOptions& s, F&& f) {
  f("max_distance_m", s.max_distance_m);
  f("max_angle_deg", s.max_angle_deg);
  f("angle", s.angle);
  f("frame_stride", s.frame_stride);
  f("max_quadruplets_per_scan", s.max_quadruplets_per_scan);
  f("split_file", s.split_file);
}
template <typename F>
void VisitEigen(EigenPlacesOptions& e, F&& f) {
  f("cell_size_m", e.cell_size_m);
  f("groups_per_axis", e.groups_per_axis);
  f("focal_distance_m", e.focal_distance_m);
  f("min_images_per_class", e.min_images_per_class);
  f("iterations_per_group", e.iterations_per_group);
}
template <typename F>
void VisitAugment(RandAugmentOptions& a, F&& f) {
  f("enabled", a.enabled);
  f("num_ops", a.num_ops);
  f("magnitude", a.magnitude);
  f("num_magnitude_bins", a.num_magnitude_bins);
}
template <typename F>
void VisitTop(TrainOptions& o, F&& f) {
  f("output_path", o.output_path);
  f("init_weights", o.init_weights);
  f("resume", o.resume);
  f("num_trainable_blocks", o.num_trainable_blocks);
  f("gsv_root", o.gsv_root);
  f("gsv_cities", o.gsv_cities);
  f("msls_root", o.msls_root);
  f("msls_exclude_cities", o.msls_exclude_cities);
  f("msls_descriptors_path", o.msls_descriptors_path);
  f("clique_image_size", o.clique_image_size);
  f("megascenes_root", o.megascenes_root);
  f("scannet_root", o.scannet_root);
  f("sfxl_root", o.sfxl_root);
  f("image_size", o.image_size);
  f("num_iterations", o.num_iterations);
  f("lr", o.lr);
  f("weight_decay", o.weight_decay);
  f("adam_beta1", o.adam_beta1);
  f("adam_beta2", o.adam_beta2);
  f("adam_eps", o.adam_eps);
  f("lr_end_factor", o.lr_end_factor);
  f("lr_schedule_iterations", o.lr_schedule_iterations);
  f("warmup_iterations", o.warmup_iterations);
  f("grad_clip_norm", o.grad_clip_norm);
  f("ms_alpha", o.ms_alpha);
  f("ms_beta", o.ms_beta);
  f("ms_base", o.ms_base);
  f("miner_epsilon", o.miner_epsilon);
  f("use_miner", o.use_miner);
  f("device", o.device);
  f("bf16", o.bf16);
  f("tf32", o.tf32);
  f("fast_aggregation", o.fast_aggregation);
  f("num_threads", o.num_threads);
  f("num_workers", o.num_workers);
  f("seed", o.seed);
  f("checkpoint_every", o.checkpoint_every);
  f("keep_checkpoints", o.keep_checkpoints);
  f("validate_every", o.validate_every);
  f("val_root", o.val_root);
  f("val_image_size", o.val_image_size);
  f("val_batch_size", o.val_batch_size);
  f("val_threshold_m", o.val_threshold_m);
}

struct Writer {
  json* j;
  template <typename T>
  void operator()(const char* name, T& v) const { (*j)[name] = v; }
};

struct Reader {
  const json* j;
  std::string context;
  std::set<std::string>* used;
  template <typename T>
  void operator()(const char* name, T& v) const {
    auto it = j->find(name);
    if (it == j->end()) return;
    used->insert(name);
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      // nlohmann converts 1e30 or 2^40 to an int with a plain cast (UB; -2147483648 in practice).
      if (it->is_number()) {
        const long double value = it->is_number_unsigned()  ? static_cast<long double>(it->get<uint64_t>())
                                  : it->is_number_integer() ? static_cast<long double>(it->get<int64_t>())
                                                            : static_cast<long double>(it->get<double>());
        if (!(value == std::floor(value)) || value < std::numeric_limits<T>::min() ||
            value > std::numeric_limits<T>::max()) {
          MEGALOC_THROW(InvalidArgument, context << ": option '" << name << "' = " << it->dump()
                                                 << " is not an integer in ["
                                                 << +std::numeric_limits<T>::min() << ", "
                                                 << +std::numeric_limits<T>::max() << "]");
        }
        v = static_cast<T>(value);
        return;
      }
    }
    try {
      v = it->get<T>();
    } catch (const std::exception& e) {
      MEGALOC_THROW(InvalidArgument, context << ": option '" << name << "' has the wrong type ("
                                             << e.what() << ")");
    }
  }
};

template <typename S, typename V>
void ReadNested(const json& j, const char* key, const std::string& context, S& s, V visit,
                std::set<std::string>* used) {
  auto it = j.find(key);
  if (it == j.end()) return;
  used->insert(key);
  if (!it->is_object()) MEGALOC_THROW(InvalidArgument, context << ": '" << key << "' must be an object");
  std::set<std::string> inner;
  visit(s, Reader{&*it, context + ": " + key, &inner});
  for (auto e = it->begin(); e != it->end(); ++e) {
    if (!inner.count(e.key())) {
      MEGALOC_THROW(InvalidArgument, context << ": unknown option '" << key << "." << e.key() << "'");
    }
  }
}

}  // namespace

bool TrainArchitecture::Check() const {
  CHECK_OPTION_GT(embed_dim, 0);
  CHECK_OPTION_GT(depth, 0);
  CHECK_OPTION_GT(num_heads, 0);
  CHECK_OPTION_EQ(embed_dim % num_heads, 0);
  CHECK_OPTION_GT(patch_size, 0);
  CHECK_OPTION_GT(pos_embed_grid, 0);
  CHECK_OPTION_GT(num_clusters, 0);
  CHECK_OPTION_GT(cluster_dim, 0);
  CHECK_OPTION_GT(token_dim, 0);
  CHECK_OPTION_GT(descriptor_dim, 0);
  CHECK_OPTION_GE(dropout, 0.0);
  CHECK_OPTION_LT(dropout, 1.0);
  return true;
}

bool TrainOptions::Check() const {
  CHECK_OPTION(!output_path.empty());
  CHECK_OPTION(!gsv_root.empty() || !msls_root.empty() || !megascenes_root.empty() ||
               !scannet_root.empty() || !sfxl_root.empty());
  if (!architecture.Check() || !sampler.Check() || !clique.Check() || !megascenes.Check() ||
      !scannet.Check() || !eigenplaces.Check() || !augment.Check()) {
    return false;
  }
  CHECK_OPTION_GE(num_trainable_blocks, 0);
  CHECK_OPTION_GT(image_size, 0);
  CHECK_OPTION_GT(clique_image_size, 0);
  CHECK_OPTION_GE(num_iterations, 0);
  CHECK_OPTION_GT(lr, 0.0);
  CHECK_OPTION_GE(weight_decay, 0.0);
  CHECK_OPTION_GE(adam_beta1, 0.0);
  CHECK_OPTION_LT(adam_beta1, 1.0);
  CHECK_OPTION_GE(adam_beta2, 0.0);
  CHECK_OPTION_LT(adam_beta2, 1.0);
  CHECK_OPTION_GT(adam_eps, 0.0);
  CHECK_OPTION_GT(lr_end_factor, 0.0);
  CHECK_OPTION_GE(lr_schedule_iterations, 0);
  CHECK_OPTION_GE(warmup_iterations, 0);
  CHECK_OPTION_GE(grad_clip_norm, 0.0);
  CHECK_OPTION_GT(ms_alpha, 0.0);
  CHECK_OPTION_GT(ms_beta, 0.0);
  CHECK_OPTION_GE(miner_epsilon, 0.0);
  CHECK_OPTION(device == "auto" || device == "cpu" || device.rfind("cuda", 0) == 0);
  CHECK_OPTION_GT(num_workers, 0);
  CHECK_OPTION_GT(checkpoint_every, 0);
  CHECK_OPTION_GE(keep_checkpoints, 0);
  CHECK_OPTION_GE(validate_every, 0);
  CHECK_OPTION_GT(val_image_size, 0);
  CHECK_OPTION_GT(val_batch_size, 0);
  CHECK_OPTION_GT(val_threshold_m, 0.0);
  return true;
}

TrainOptions TrainOptions::FromJson(const std::string& json_text, const std::string& context) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const std::exception& e) {
    MEGALOC_THROW(FormatError, context << ": invalid JSON (" << e.what() << ")");
  }
  if (!j.is_object()) MEGALOC_THROW(FormatError, context << ": the configuration must be a JSON object");
  TrainOptions o;
  std::set<std::string> used;
  VisitTop(o, Reader{&j, context, &used});
  ReadNested(j, "architecture", context, o.architecture, [](auto& s, auto r) { VisitArchitecture(s, r); }, &used);
  ReadNested(j, "sampler", context, o.sampler, [](auto& s, auto r) { VisitSampler(s, r); }, &used);
  ReadNested(j, "clique", context, o.clique, [](auto& s, auto r) { VisitClique(s, r); }, &used);
  ReadNested(j, "megascenes", context, o.megascenes, [](auto& s, auto r) { VisitMegaScenes(s, r); }, &used);
  ReadNested(j, "scannet", context, o.scannet, [](auto& s, auto r) { VisitScanNet(s, r); }, &used);
  ReadNested(j, "eigenplaces", context, o.eigenplaces, [](auto& s, auto r) { VisitEigen(s, r); }, &used);
  ReadNested(j, "augment", context, o.augment, [](auto& s, auto r) { VisitAugment(s, r); }, &used);
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!used.count(it.key())) MEGALOC_THROW(InvalidArgument, context << ": unknown option '" << it.key() << "'");
  }
  return o;
}

std::string TrainOptions::ToJson() const {
  TrainOptions copy = *this;
  json j = json::object();
  VisitTop(copy, Writer{&j});
  auto nested = [&](const char* key, auto& s, auto visit) {
    json inner = json::object();
    visit(s, Writer{&inner});
    j[key] = inner;
  };
  nested("architecture", copy.architecture, [](auto& s, auto w) { VisitArchitecture(s, w); });
  nested("sampler", copy.sampler, [](auto& s, auto w) { VisitSampler(s, w); });
  nested("clique", copy.clique, [](auto& s, auto w) { VisitClique(s, w); });
  nested("megascenes", copy.megascenes, [](auto& s, auto w) { VisitMegaScenes(s, w); });
  nested("scannet", copy.scannet, [](auto& s, auto w) { VisitScanNet(s, w); });
  nested("eigenplaces", copy.eigenplaces, [](auto& s, auto w) { VisitEigen(s, w); });
  nested("augment", copy.augment, [](auto& s, auto w) { VisitAugment(s, w); });
  return j.dump(2);
}

void TrainOptions::Set(const std::string& key, const std::string& value) {
  json j = json::parse(ToJson());
  json* node = &j;
  std::string rest = key;
  for (size_t dot; (dot = rest.find('.')) != std::string::npos;) {
    const std::string head = rest.substr(0, dot);
    if (!node->contains(head) || !(*node)[head].is_object()) {
      MEGALOC_THROW(InvalidArgument, "unknown training option '" << key << "'");
    }
    node = &(*node)[head];
    rest = rest.substr(dot + 1);
  }
  if (!node->contains(rest) || (*node)[rest].is_object()) {
    MEGALOC_THROW(InvalidArgument, "unknown training option '" << key << "'");
  }
  json& target = (*node)[rest];
  if (target.is_string()) {
    target = value;
  } else {
    json parsed;
    try {
      parsed = json::parse(value);
    } catch (const std::exception&) {
      if (!target.is_array()) {
        MEGALOC_THROW(InvalidArgument, "option '" << key << "': '" << value << "' is not a valid value");
      }
      parsed = json::array();
      std::string item;
      for (size_t i = 0; i <= value.size(); ++i) {
        if (i == value.size() || value[i] == ',') {
          if (!item.empty()) parsed.push_back(item);
          item.clear();
        } else {
          item += value[i];
        }
      }
    }
    target = parsed;
  }
  *this = FromJson(j.dump(), "option '" + key + "'");
}

double LearningRateAt(const TrainOptions& o, int64_t t) {
  double factor = 1.0;
  if (o.lr_schedule_iterations > 0) {
    const double frac = static_cast<double>(std::min<int64_t>(t, o.lr_schedule_iterations)) /
                        o.lr_schedule_iterations;
    factor = 1.0 + (o.lr_end_factor - 1.0) * frac;
  }
  if (o.warmup_iterations > 0 && t < o.warmup_iterations) {
    factor *= static_cast<double>(t + 1) / o.warmup_iterations;
  }
  return o.lr * factor;
}

}  // namespace megaloc
