#include "megaloc/train/trainer.h"


#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <future>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "megaloc/eval/vpr/vpr_dataset.h"
#include "megaloc/eval/vpr/vpr_recall.h"
#include "megaloc/model/autocast.h"
#include "megaloc/model/weights.h"
#include "megaloc/train/losses.h"
#include "megaloc/train/trainer_internal.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/npy.h"
#include "megaloc/util/timer.h"

namespace megaloc {

namespace fs = std::filesystem;

NetConfig NetConfigFromArchitecture(const TrainArchitecture& a) {
  NetConfig c;
  c.embed_dim = a.embed_dim;
  c.depth = a.depth;
  c.num_heads = a.num_heads;
  c.patch_size = a.patch_size;
  c.pos_embed_grid = a.pos_embed_grid;
  c.mlp_hidden_dim = a.mlp_hidden_dim;
  c.num_clusters = a.num_clusters;
  c.cluster_dim = a.cluster_dim;
  c.token_dim = a.token_dim;
  c.salad_mlp_dim = a.salad_mlp_dim;
  c.descriptor_dim = a.descriptor_dim;
  c.dropout = a.dropout;
  return c;
}

void RandomInitialize(MegaLocNetImpl& net, uint64_t seed) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed);
  // Re-run the default initialisers of Linear / Conv with the seed.
  for (auto& m : net.modules(/*include_self=*/false)) {
    if (auto* l = m->as<DenseImpl>()) l->reset_parameters();
    if (auto* c = m->as<torch::nn::Conv2dImpl>()) c->reset_parameters();
  }
  net.backbone->cls_token.normal_(0.0, 0.02);
  net.backbone->pos_embed.normal_(0.0, 0.02);
  for (auto& item : net.named_parameters(true)) {
    if (item.key().find(".gamma") != std::string::npos) item.value().fill_(0.1);
  }
}

std::vector<torch::Tensor> FreezeForTraining(MegaLocNetImpl& net, int num_trainable_blocks) {
  const int depth = static_cast<int>(net.config.depth);
  MEGALOC_CHECK_MSG(num_trainable_blocks >= 0 && num_trainable_blocks <= depth,
                    "num_trainable_blocks = " << num_trainable_blocks << " but the backbone has "
                                              << depth << " blocks");
  const int frozen = depth - num_trainable_blocks;
  std::vector<torch::Tensor> trainable;
  for (auto& item : net.named_parameters(true)) {
    const std::string& k = item.key();
    bool freeze = k == "backbone.cls_token" || k == "backbone.pos_embed" ||
                  k.rfind("backbone.patch_embed.", 0) == 0;
    if (k.rfind("backbone.blocks.", 0) == 0) {
      const int block = std::stoi(k.substr(16, k.find('.', 16) - 16));
      freeze = block < frozen;
    }
    item.value().set_requires_grad(!freeze);
    if (!freeze) trainable.push_back(item.value());
  }
  return trainable;
}

torch::Tensor TrainingForward(MegaLocNetImpl& net, const torch::Tensor& images,
                              int num_trainable_blocks, const ForwardOptions& options) {
  BackboneImpl& bb = *net.backbone;
  const int64_t batch = images.size(0), height = images.size(2), width = images.size(3);
  const int64_t p = bb.config.patch_size;
  MEGALOC_CHECK_MSG(height % p == 0 && width % p == 0,
                    "training images must be multiples of the patch size " << p << ", got "
                                                                            << height << "x" << width);
  const int64_t h0 = height / p, w0 = width / p;
  MEGALOC_CHECK_MSG(h0 * w0 > net.config.num_clusters,
                    "training image " << height << "x" << width << " has " << h0 * w0
                                      << " patches, not more than the " << net.config.num_clusters
                                      << " clusters");
  const int depth = static_cast<int>(bb.blocks->size());
  const int frozen = depth - num_trainable_blocks;
  torch::Tensor x;
  {
    torch::NoGradGuard no_grad;
    x = bb.patch_embed->forward(images);
    x = torch::cat({bb.cls_token.expand({batch, -1, -1}), x}, 1);
    x = x + bb.InterpolatePosEmbed(h0, w0, height, width);
    for (int i = 0; i < frozen; ++i) x = bb.blocks[i]->as<Block>()->forward(x);
  }
  x = x.detach();
  for (int i = frozen; i < depth; ++i) x = bb.blocks[i]->as<Block>()->forward(x);
  x = bb.norm->forward(x);
  const torch::Tensor cls = x.select(1, 0);
  const torch::Tensor fmap = x.slice(1, 1).reshape({batch, h0, w0, bb.config.embed_dim}).permute({0, 3, 1, 2});
  const torch::Tensor out = net.aggregator->forward(fmap, cls, options);
  // Under bf16 autocast the Linear output is bf16: normalise (and compute the loss) in fp32.
  const bool low = out.scalar_type() == torch::kBFloat16 || out.scalar_type() == torch::kHalf;
  return torch::nn::functional::normalize(low ? out.to(torch::kFloat) : out,
                                          torch::nn::functional::NormalizeFuncOptions().p(2).dim(1));
}

double ClipGradNorm(const std::vector<torch::Tensor>& parameters, double max_norm) {
  torch::NoGradGuard no_grad;
  double sq = 0;
  for (const auto& p : parameters) {
    if (p.grad().defined()) sq += p.grad().to(torch::kDouble).pow(2).sum().item<double>();
  }
  const double norm = std::sqrt(sq);
  if (max_norm > 0 && norm > max_norm) {
    const double scale = max_norm / (norm + 1e-6);  // torch.nn.utils.clip_grad_norm_
    for (const auto& p : parameters) {
      if (p.grad().defined()) p.grad().mul_(scale);
    }
  }
  return norm;
}

MegaLocNet BuildNetwork(const TrainOptions& options, std::string* description) {
  if (options.init_weights.empty()) {
    MegaLocNet net(NetConfigFromArchitecture(options.architecture));
    RandomInitialize(*net, options.seed);
    if (description) *description = "random initialisation (" + net->config.ToString() + ")";
    return net;
  }
  const std::string& path = options.init_weights;
  WeightsFormat format;
  TensorMap raw = ReadTensorFile(path, &format);
  const bool dinov2 = raw.count("cls_token") && raw.count("blocks.0.norm1.weight");
  if (!dinov2) {
    TensorMap canonical = CanonicalizeMegaLocKeys(raw, path);
    int heads = ReadNumHeadsFromConfigJson(path);
    if (heads <= 0) heads = options.architecture.num_heads;
    NetConfig cfg = InferNetConfig(canonical, heads);
    cfg.dropout = options.architecture.dropout;
    MegaLocNet net(cfg);
    LoadStateDictStrict(*net, canonical, path);
    if (description) *description = "MegaLoc checkpoint " + path + " (" + cfg.ToString() + ")";
    return net;
  }
  // DINOv2 backbone: keys without prefix (+ mask_token, unused).
  TensorMap backbone;
  for (auto& [k, v] : raw) {
    if (k == "mask_token") continue;
    backbone["backbone." + k] = v;
  }
  int heads = ReadNumHeadsFromConfigJson(path);
  if (heads <= 0) heads = options.architecture.num_heads;
  NetConfig cfg = InferNetConfig(backbone, heads);
  const NetConfig arch = NetConfigFromArchitecture(options.architecture);
  cfg.num_clusters = arch.num_clusters;
  cfg.cluster_dim = arch.cluster_dim;
  cfg.token_dim = arch.token_dim;
  cfg.salad_mlp_dim = arch.salad_mlp_dim;
  cfg.descriptor_dim = arch.descriptor_dim;
  cfg.dropout = arch.dropout;
  MegaLocNet net(cfg);
  RandomInitialize(*net, options.seed);
  std::vector<std::string> problems;
  std::set<std::string> expected;
  torch::NoGradGuard no_grad;
  for (auto& item : net->named_parameters(true)) {
    if (item.key().rfind("backbone.", 0) != 0) continue;
    expected.insert(item.key());
    auto it = backbone.find(item.key());
    if (it == backbone.end()) {
      problems.push_back("missing " + item.key().substr(9));
    } else if (it->second.sizes() != item.value().sizes()) {
      std::ostringstream s;
      s << "mis-shaped " << item.key().substr(9) << " " << it->second.sizes() << " vs " << item.value().sizes();
      problems.push_back(s.str());
    } else {
      item.value().copy_(it->second);
    }
  }
  for (const auto& [k, v] : backbone) {
    if (!expected.count(k)) problems.push_back("unexpected " + k.substr(9));
  }
  if (!problems.empty()) {
    std::ostringstream s;
    s << path << ": not a DINOv2 ViT state dict matching " << cfg.ToString() << ":";
    for (size_t i = 0; i < problems.size() && i < 10; ++i) s << (i ? ", " : " ") << problems[i];
    if (problems.size() > 10) s << ", ... (" << problems.size() << " problems)";
    throw FormatError(s.str());
  }
  if (description) *description = "DINOv2 backbone " + path + " + random SALAD/Linear (" + cfg.ToString() + ")";
  return net;
}

namespace {

struct SubBatchData {
  std::string source;
  torch::Tensor images;  // [N,3,S,S] float32 CPU
  torch::Tensor labels;  // [N] int64
};

// Worker threads loading every image of an iteration.
std::vector<SubBatchData> LoadIteration(const std::vector<std::unique_ptr<PlaceSampler>>& samplers,
                                        int64_t iteration, const TrainOptions& o) {
  std::vector<SubBatchSpec> specs;
  for (const auto& s : samplers) {
    for (auto& sb : s->Sample(iteration)) specs.push_back(std::move(sb));
  }
  const int size = o.image_size;
  const size_t per_image = static_cast<size_t>(3) * size * size;
  std::vector<SubBatchData> out(specs.size());
  std::vector<std::pair<int, int>> jobs;
  for (size_t b = 0; b < specs.size(); ++b) {
    const int64_t n = static_cast<int64_t>(specs[b].images.size());
    out[b].source = specs[b].source;
    out[b].images = torch::empty({n, 3, size, size}, torch::kFloat);
    out[b].labels = torch::tensor(specs[b].labels, torch::kLong);
    for (int i = 0; i < n; ++i) jobs.emplace_back(static_cast<int>(b), i);
  }
  std::atomic<size_t> next{0};
  std::mutex error_mutex;
  std::exception_ptr error;
  auto work = [&]() {
    for (size_t j = next++; j < jobs.size(); j = next++) {
      try {
        const auto [b, i] = jobs[j];
        const uint64_t seed = MakeRng(o.sampler.seed, 1000 + b, iteration, i)();
        const std::vector<float> img = LoadTrainingImage(specs[b].images[i], size, o.augment, seed);
        std::memcpy(out[b].images.data_ptr<float>() + i * per_image, img.data(), per_image * sizeof(float));
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
      }
    }
  };
  std::vector<std::thread> threads;
  const int nt = std::max(1, std::min<int>(o.num_workers, static_cast<int>(jobs.size())));
  for (int t = 1; t < nt; ++t) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);
  return out;
}


std::string CheckpointName(int64_t iterations_done) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "iter_%08lld", static_cast<long long>(iterations_done));
  return buf;
}

std::string StatePath(const std::string& weights_path) {
  std::string p = weights_path;
  const std::string ext = ".safetensors";
  if (p.size() > ext.size() && p.compare(p.size() - ext.size(), ext.size(), ext) == 0) {
    p = p.substr(0, p.size() - ext.size());
  }
  return p + ".state";
}

// Newest checkpoint in `dir` with its state file, or "".
std::string LatestCheckpoint(const std::string& dir) {
  if (!DirectoryExists(dir)) return "";
  std::string best;
  const std::regex re("iter_([0-9]+)\\.safetensors");
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (std::regex_match(name, re) && FileExists(StatePath(e.path().string()))) {
      if (best.empty() || name > fs::path(best).filename().string()) best = e.path().string();
    }
  }
  return best;
}

torch::Device SelectDevice(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  if (name == "cpu") return torch::Device(torch::kCPU);
  if (!torch::cuda::is_available()) {
    MEGALOC_THROW(InvalidArgument, "device '" << name << "' requested but this LibTorch has no CUDA device");
  }
  return torch::Device(name);
}

// Descriptors of images resized to size x size (eval mode, no grad), row-major [n, D].
std::vector<float> Encode(MegaLocNetImpl& net, const std::vector<std::string>& paths, int size,
                          int batch_size, const torch::Device& device, bool bf16,
                          const ForwardOptions& fo, int* dim) {
  torch::NoGradGuard no_grad;
  const bool was_training = net.is_training();
  net.eval();
  std::vector<float> out;
  for (size_t start = 0; start < paths.size(); start += batch_size) {
    const size_t n = std::min(paths.size() - start, static_cast<size_t>(batch_size));
    torch::Tensor x = torch::empty({static_cast<int64_t>(n), 3, size, size}, torch::kFloat);
    // The inference preprocessing of the paper's evaluation: PIL-like decode, ImageNet
    // normalisation, torchvision Resize([size, size], antialias=True) (megaloc.h, kFixed).
    PreprocessingOptions pre;
    pre.mode = ResizeMode::kFixed;
    pre.width = size;
    pre.height = size;
    for (size_t i = 0; i < n; ++i) {
      const PreprocessedImage img = LoadAndPreprocessImage(paths[start + i], pre);
      MEGALOC_CHECK_EQ(img.data.size(), static_cast<size_t>(3) * size * size);
      std::memcpy(x.data_ptr<float>() + i * img.data.size(), img.data.data(), img.data.size() * sizeof(float));
    }
    torch::Tensor d;
    {
      Bf16AutocastScope autocast(bf16, at::kCUDA);  // CUDA only (docs/training.md)
      d = net.forward(x.to(device), fo);
    }
    d = d.to(torch::kFloat).to(torch::kCPU).contiguous();
    *dim = static_cast<int>(d.size(1));
    out.insert(out.end(), d.data_ptr<float>(), d.data_ptr<float>() + d.numel());
  }
  if (was_training) net.train();
  return out;
}

}  // namespace

TrainStats RunTraining(const TrainOptions& options_in, const TrainCallbacks& cb) {
  if (!options_in.Check()) MEGALOC_THROW(InvalidArgument, "invalid training options (see the log above)");
  TrainOptions o = options_in;
  auto message = [&](const std::string& m) {
    if (cb.on_message) cb.on_message(m);
  };
  TrainStats stats;
  if (o.num_threads > 0) torch::set_num_threads(o.num_threads);
  const torch::Device device = SelectDevice(o.device);
  stats.device = device.str();
  const bool cuda = device.is_cuda();
  const bool bf16 = cuda && o.bf16;
  if (cuda && o.tf32) {
    at::globalContext().setAllowTF32CuBLAS(true);
    at::globalContext().setAllowTF32CuDNN(true);
  }
  CreateDirectories(o.output_path);
  const std::string ckpt_dir = JoinPaths(o.output_path, "checkpoints");
  CreateDirectories(ckpt_dir);

  // ---- data
  ForwardOptions fo;
  fo.fast_aggregation = o.fast_aggregation;
  std::vector<std::unique_ptr<PlaceSampler>> samplers;
  if (!o.gsv_root.empty()) {
    samplers.push_back(MakeGsvCitiesSampler(LoadGsvCities(o.gsv_root, o.gsv_cities, o.sampler.images_per_place), o.sampler));
  }
  if (!o.megascenes_root.empty()) {
    samplers.push_back(MakeQuadrupletSampler(
        "megascenes", LoadMegaScenes(o.megascenes_root, o.megascenes, o.sampler.images_per_place, o.sampler.seed),
        o.sampler));
  }
  if (!o.scannet_root.empty()) {
    samplers.push_back(MakeQuadrupletSampler(
        "scannet", LoadScanNet(o.scannet_root, o.scannet, o.sampler.images_per_place, o.sampler.seed), o.sampler));
  }
  if (!o.sfxl_root.empty()) {
    samplers.push_back(MakeEigenPlacesSampler(LoadSfxlEigenPlaces(o.sfxl_root, o.eigenplaces), o.eigenplaces, o.sampler));
  }

  // ---- network (initial weights, or the checkpoint to resume)
  std::string resume_path;
  if (o.resume == "latest") {
    resume_path = LatestCheckpoint(ckpt_dir);
  } else if (!o.resume.empty()) {
    resume_path = o.resume;
    if (!FileExists(resume_path)) MEGALOC_THROW(IoError, resume_path << ": checkpoint to resume does not exist");
    if (!FileExists(StatePath(resume_path))) {
      MEGALOC_THROW(IoError, StatePath(resume_path) << ": optimizer/sampler state of the checkpoint is missing");
    }
  }
  std::string description;
  MegaLocNet net = BuildNetwork(o, &description);
  message("model: " + description);
  if (!resume_path.empty()) {
    LoadStateDictStrict(*net, CanonicalizeMegaLocKeys(ReadSafetensors(resume_path), resume_path), resume_path);
    message("resuming from " + resume_path);
  }
  MEGALOC_CHECK_MSG(o.image_size % net->config.patch_size == 0,
                    "image_size " << o.image_size << " is not a multiple of the patch size " << net->config.patch_size);
  net->to(device);
  std::vector<torch::Tensor> trainable = FreezeForTraining(*net, o.num_trainable_blocks);
  for (const auto& p : net->parameters()) {
    (p.requires_grad() ? stats.num_trainable_parameters : stats.num_frozen_parameters) += p.numel();
  }
  {
    std::ostringstream s;
    s << "parameters: " << stats.num_trainable_parameters << " trainable, " << stats.num_frozen_parameters
      << " frozen (last " << o.num_trainable_blocks << " of " << net->config.depth << " blocks trained)";
    message(s.str());
  }
  torch::optim::AdamW optimizer(trainable, torch::optim::AdamWOptions(o.lr)
                                               .betas({o.adam_beta1, o.adam_beta2})
                                               .eps(o.adam_eps)
                                               .weight_decay(o.weight_decay));
  int64_t start = 0;
  if (!resume_path.empty()) {
    torch::serialize::InputArchive archive;
    archive.load_from(StatePath(resume_path));
    optimizer.load(archive);
    torch::Tensor it;
    archive.read("megaloc_iterations_done", it);
    start = it.item<int64_t>();
  }
  stats.start_iteration = start;
  stats.iterations_done = start;

  if (!o.msls_root.empty()) {
    MslsDataset ds = LoadMsls(o.msls_root, o.msls_exclude_cities);
    const std::string cache = !o.msls_descriptors_path.empty()
                                  ? o.msls_descriptors_path
                                  : JoinPaths(o.output_path, "msls_cluster_descriptors.npy");
    std::vector<float> desc;
    int dim = 0;
    if (FileExists(cache)) {
      NpyArray a = ReadNpy(cache);
      if (a.shape.size() != 2 || a.shape[0] != static_cast<int64_t>(ds.clusters.size())) {
        MEGALOC_THROW(FormatError, cache << ": expected [" << ds.clusters.size() << ", D] cluster descriptors");
      }
      desc = a.As<float>();
      dim = static_cast<int>(a.shape[1]);
      message("MSLS cluster descriptors from " + cache);
    } else {
      message("encoding " + std::to_string(ds.clusters.size()) + " MSLS cluster images for CliqueMining");
      desc = Encode(*net, MslsRepresentativeImages(ds, o.sampler.seed), o.clique_image_size, o.val_batch_size,
                    device, bf16, fo, &dim);
      WriteNpy(cache, {static_cast<int64_t>(ds.clusters.size()), dim}, desc.data());
    }
    // Paper order of the sub-batches: GSV-Cities, MSLS, MegaScenes, ScanNet, SF-XL.
    samplers.insert(samplers.begin() + (o.gsv_root.empty() ? 0 : 1),
                    MakeMslsCliqueSampler(std::move(ds), std::move(desc), dim, o.clique, o.sampler));
  }
  for (const auto& s : samplers) {
    stats.sources.push_back(s->Summary());
    message("source: " + s->Summary());
  }
  // ---- log file
  std::ofstream log_file(JoinPaths(o.output_path, "train_log.jsonl"), std::ios::app);
  if (!log_file) MEGALOC_THROW(IoError, JoinPaths(o.output_path, "train_log.jsonl") << ": cannot open for writing");
  WriteFileAtomically(JoinPaths(o.output_path, "train_options.json"), o.ToJson() + "\n");
  VprDataset val;
  std::vector<std::string> val_db, val_q;
  if (!o.val_root.empty()) {
    val = LoadVprDataset(o.val_root);
    for (const auto& im : val.database) val_db.push_back(im.path);
    for (const auto& im : val.queries) val_q.push_back(im.path);
  }
  auto validate = [&](int64_t done) {
    if (o.val_root.empty()) return;
    int dim = 0;
    const auto db = Encode(*net, val_db, o.val_image_size, o.val_batch_size, device, bf16, fo, &dim);
    const auto q = Encode(*net, val_q, o.val_image_size, o.val_batch_size, device, bf16, fo, &dim);
    ValidationLog v;
    v.iteration = done;
    VprRecallOptions recall_options;
    recall_options.recall_values = v.ns;
    recall_options.positive_dist_threshold = o.val_threshold_m;
    const MatrixDescriptorSource db_source(db.data(), static_cast<int64_t>(val_db.size()), dim);
    const MatrixDescriptorSource q_source(q.data(), static_cast<int64_t>(val_q.size()), dim);
    v.recalls = EvaluateVprRecall(db_source, q_source, val, recall_options).recalls;
    stats.validations.push_back(v);
    nlohmann::json j = {{"validation_iteration", done}, {"ns", v.ns}, {"recalls", v.recalls}};
    log_file << j.dump() << "\n";
    log_file.flush();
    if (cb.on_validation) cb.on_validation(v);
  };


  auto save_checkpoint = [&](int64_t done) {
    const std::string weights = JoinPaths(ckpt_dir, CheckpointName(done) + ".safetensors");
    const std::string state = StatePath(weights);
    torch::serialize::OutputArchive archive;
    optimizer.save(archive);
    archive.write("megaloc_iterations_done", torch::tensor(static_cast<int64_t>(done)));
    archive.save_to(state + ".tmp");
    WriteSafetensors(weights, NetStateDict(*net),
                     {{"format", "pt"},
                      {"megaloc_train_iterations", std::to_string(done)},
                      {"megaloc_config", net->config.ToString()}});
    fs::rename(state + ".tmp", state);
    nlohmann::json cfg = {{"num_heads", net->config.num_heads},
                          {"embed_dim", net->config.embed_dim},
                          {"depth", net->config.depth},
                          {"patch_size", net->config.patch_size}};
    WriteFileAtomically(JoinPaths(ckpt_dir, "config.json"), cfg.dump(1) + "\n");
    stats.checkpoints.push_back(weights);
    if (o.keep_checkpoints > 0) {
      std::vector<std::string> all;
      const std::regex re("iter_([0-9]+)\\.safetensors");
      for (const auto& e : fs::directory_iterator(ckpt_dir)) {
        if (std::regex_match(e.path().filename().string(), re)) all.push_back(e.path().string());
      }
      std::sort(all.begin(), all.end());
      for (size_t i = 0; i + o.keep_checkpoints < all.size(); ++i) {
        fs::remove(all[i]);
        fs::remove(StatePath(all[i]));
      }
    }
    message("checkpoint " + weights);
  };

  MultiSimilarityOptions ms;
  ms.alpha = o.ms_alpha;
  ms.beta = o.ms_beta;
  ms.base = o.ms_base;
  ms.miner_epsilon = o.miner_epsilon;
  ms.use_miner = o.use_miner;

  if (start == 0) validate(0);
  if (start >= o.num_iterations) return stats;
  net->train();
  std::future<std::vector<SubBatchData>> pending =
      std::async(std::launch::async, LoadIteration, std::cref(samplers), start, std::cref(o));
  for (int64_t t = start; t < o.num_iterations; ++t) {
    Timer timer;
    std::vector<SubBatchData> batch = pending.get();
    IterationLog log;
    log.iteration = t;
    log.data_wait_seconds = timer.ElapsedSeconds();
    if (t + 1 < o.num_iterations) {
      pending = std::async(std::launch::async, LoadIteration, std::cref(samplers), t + 1, std::cref(o));
    }
    log.lr = LearningRateAt(o, t);
    for (auto& group : optimizer.param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(log.lr);
    }
    optimizer.zero_grad();
    torch::manual_seed(MakeRng(o.seed, 77, t)());  // dropout RNG: a function of the iteration
    int64_t images = 0;
    for (auto& sb : batch) {
      torch::Tensor loss;
      MultiSimilarityStats st;
      torch::Tensor desc;
      {
        Bf16AutocastScope autocast(bf16, at::kCUDA);  // CUDA only (docs/training.md)
        desc = TrainingForward(*net, sb.images.to(device), o.num_trainable_blocks, fo);
      }
      // Outside autocast: the similarity matmul and the loss stay fp32 (beta = 50).
      loss = MultiSimilarityLoss(desc, sb.labels.to(device), ms, &st);
      loss.backward();  // one backward per sub-batch; gradients accumulate (Algorithm 1)
      SubBatchLog s;
      s.source = sb.source;
      s.loss = loss.item<double>();
      s.positive_pairs = st.num_positive_pairs;
      s.negative_pairs = st.num_negative_pairs;
      log.total_loss += s.loss;
      log.sub_batches.push_back(s);
      images += sb.images.size(0);
    }
    log.grad_norm = ClipGradNorm(trainable, o.grad_clip_norm);
    optimizer.step();
    if (!std::isfinite(log.total_loss)) {
      MEGALOC_THROW(Error, "iteration " << t << ": non-finite loss " << log.total_loss
                                        << " (the last checkpoint is intact)");
    }
    const double secs = timer.ElapsedSeconds();
    log.images_per_second = secs > 0 ? images / secs : 0.0;
    log.peak_memory_bytes = PeakResidentMemoryBytes();
    stats.iterations_done = t + 1;
    {
      nlohmann::json j = {{"iteration", t},           {"lr", log.lr},
                          {"loss", log.total_loss},   {"grad_norm", log.grad_norm},
                          {"images_per_second", log.images_per_second},
                          {"data_wait_s", log.data_wait_seconds},
                          {"peak_rss_bytes", log.peak_memory_bytes}};
      for (const auto& s : log.sub_batches) {
        j["sub_batches"].push_back({{"source", s.source}, {"loss", s.loss},
                                    {"pos_pairs", s.positive_pairs}, {"neg_pairs", s.negative_pairs}});
      }
      log_file << j.dump() << "\n";
      log_file.flush();
    }
    if (cb.on_iteration) cb.on_iteration(log);
    stats.iterations.push_back(std::move(log));
    const int64_t done = t + 1;
    if (done % o.checkpoint_every == 0 || done == o.num_iterations) save_checkpoint(done);
    if ((o.validate_every > 0 && done % o.validate_every == 0) || done == o.num_iterations) {
      validate(done);
      net->train();
    }
  }
  return stats;
}

}  // namespace megaloc
