#pragma once

// The MegaLoc trainer (public, torch-free interface).
//
// Recipe (MegaLoc paper + SALAD defaults, see docs/training.md): per iteration one sub-batch of
// P places x K images from each enabled source (GSV-Cities, MSLS/CliqueMining, MegaScenes, ScanNet,
// SF-XL lateral + frontal = up to 6), for each sub-batch forward + multi-similarity loss +
// backward() (gradients accumulate; the paper's Algorithm 1), then one AdamW step. Frozen: patch
// embedding, position table, cls token and the first depth - num_trainable_blocks blocks (run
// without autograd); trained: the last blocks, the final norm, SALAD and the final Linear.
//
// Every value the paper does not publish is a field below, with its source in the comment:
//   [paper] MegaLoc paper; [SALAD] serizba/salad default (not published for MegaLoc);
//   [CliqueMining] / [EigenPlaces] / [GSV-Cities] their code; [lib] library default;
//   [choice] chosen by this project.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "megaloc/train/augment.h"
#include "megaloc/train/datasets.h"

namespace megaloc {

// Architecture used when the run starts from random weights or from DINOv2 backbone weights (the
// aggregator is always created from these fields then). Defaults = the official MegaLoc.
struct TrainArchitecture {
  int embed_dim = 768;        // ViT-B (DINOv2) — read from the weights when given
  int depth = 12;
  int num_heads = 12;
  int patch_size = 14;
  int pos_embed_grid = 37;    // DINOv2 trained at 518 = 37 * 14
  int mlp_hidden_dim = 3072;
  int num_clusters = 64;      // SALAD as configured by MegaLoc
  int cluster_dim = 256;
  int token_dim = 256;
  int salad_mlp_dim = 512;
  int descriptor_dim = 8448;  // MegaLoc's final Linear(16640 -> 8448)
  double dropout = 0.3;       // SALAD Dropout(0.3), active in training

  bool Check() const;
};

struct TrainOptions {
  // ---- output / init / resume
  // Folder for checkpoints (checkpoints/iter_XXXXXXXX.safetensors + .state), train_log.jsonl.
  std::string output_path;
  // Initial weights: DINOv2 ViT-B/14 (`dinov2_vitb14_pretrain.pth`, torch.save zip, or safetensors;
  // keys without prefix: backbone only, SALAD + Linear randomly initialised) or a MegaLoc checkpoint
  // (v1 `.torch` / v2 `.safetensors` / ours). Empty: random initialisation of `architecture`.
  std::string init_weights;
  // Resume: "" = fresh run, "latest" = newest checkpoint in output_path/checkpoints (fresh if none),
  // or the path of one of our .safetensors checkpoints (its .state file must sit beside it).
  std::string resume;
  TrainArchitecture architecture;
  // Blocks trained at the end of the backbone ([code] MegaLoc 267cedb / SALAD: 4).
  int num_trainable_blocks = 4;

  // ---- data ([paper]: any subset of the five sources; empty root = source disabled)
  std::string gsv_root;          // GSV-Cities root (Dataframes/, Images/)
  std::vector<std::string> gsv_cities;  // empty = the 23 training cities [GSV-Cities]
  std::string msls_root;         // MSLS root (train_val/)
  std::vector<std::string> msls_exclude_cities = {"cph", "sf"};  // [choice] MSLS-val cities
  // Per-cluster descriptors for CliqueMining (.npy [clusters, D] float32). Computed with the
  // initial model at `clique_image_size` and written here (or to output_path) when missing
  // ([choice]: CliqueMining used a pretrained DINOv2-SALAD; MegaLoc's encoder is not published).
  std::string msls_descriptors_path;
  int clique_image_size = 322;   // [CliqueMining] 322x322
  CliqueMiningOptions clique;
  std::string megascenes_root;   // MegaScenes root (reconstruct/, images/)
  MegaScenesOptions megascenes;
  std::string scannet_root;      // ScanNet root (scans/)
  ScanNetOptions scannet;
  std::string sfxl_root;         // SF-XL root (raw/train/panoramas/)
  EigenPlacesOptions eigenplaces;
  SamplerOptions sampler;        // P = 32, K = 4 [paper]; seed [choice]
  int image_size = 224;          // [paper] 224x224
  RandAugmentOptions augment;    // [SALAD] RandAugment(num_ops=3), magnitude 9 [lib]

  // ---- optimisation
  int num_iterations = 40000;    // [paper]
  double lr = 6e-5;              // [SALAD]
  double weight_decay = 9.5e-9;  // [SALAD]
  double adam_beta1 = 0.9;       // [lib]
  double adam_beta2 = 0.999;     // [lib]
  double adam_eps = 1e-8;        // [lib]
  // LinearLR: lr(t) = lr * (1 + (end_factor - 1) * min(t, T) / T), T = lr_schedule_iterations [SALAD].
  double lr_end_factor = 0.2;
  int lr_schedule_iterations = 4000;
  int warmup_iterations = 0;     // [SALAD] none; linear warm-up from 0 if > 0 [choice]
  double grad_clip_norm = 0.0;   // [SALAD] none; > 0 clips the global L2 norm
  // Multi-similarity loss [SALAD/GSV-Cities code].
  double ms_alpha = 1.0;
  double ms_beta = 50.0;
  double ms_base = 0.0;
  double miner_epsilon = 0.1;
  bool use_miner = true;

  // ---- execution
  std::string device = "auto";   // "cpu", "cuda", "cuda:N", "auto"
  // bf16 autocast on CUDA (MS loss in fp32) [choice; SALAD used fp16-mixed]; ignored on CPU.
  bool bf16 = true;
  bool tf32 = true;              // TF32 matmuls on CUDA [choice]
  // One batched matmul instead of upstream's repeat + mul + sum in SALAD (same values to ~1e-7,
  // ~32 MiB less activation memory per 224^2 image) [choice].
  bool fast_aggregation = true;
  int num_threads = -1;          // LibTorch intra-op threads (-1 = all cores)
  int num_workers = 4;           // image-loading threads (prefetching the next iteration)
  uint64_t seed = 0;             // torch seed: random init and per-iteration dropout [choice]
                                 // (samplers and augmentation use sampler.seed)

  // ---- logging / checkpoints / validation
  int checkpoint_every = 1000;   // iterations; the last iteration is always saved
  int keep_checkpoints = 3;      // older ones are deleted (0 = keep all)
  int validate_every = 1000;     // 0 = only at start and end (if val_root is set)
  std::string val_root;          // VPR validation set (database/, queries/; @E@N@ names)
  int val_image_size = 322;      // [paper] inference at 322x322
  int val_batch_size = 16;
  double val_threshold_m = 25.0; // [VPR-methods-evaluation] positives within 25 m

  bool Check() const;
  // JSON (every field above, same names; nested objects for sampler, clique, megascenes,
  // scannet, eigenplaces, augment, architecture). Unknown keys are an error.
  static TrainOptions FromJson(const std::string& json_text, const std::string& context);
  std::string ToJson() const;
  // Sets one option from text: `key` is a field name, dotted for nested ones ("sampler.seed",
  // "clique.num_batches"); `value` is taken verbatim for string fields, a JSON value otherwise
  // (a comma-separated list is also accepted for string lists). Unknown keys and bad values throw
  // InvalidArgument naming the key.
  void Set(const std::string& key, const std::string& value);
};

struct SubBatchLog {
  std::string source;
  double loss = 0.0;
  int64_t positive_pairs = 0;
  int64_t negative_pairs = 0;
};

struct IterationLog {
  int64_t iteration = 0;        // 0-based index of the finished iteration
  double lr = 0.0;
  double total_loss = 0.0;      // sum over sub-batches [paper]
  std::vector<SubBatchLog> sub_batches;
  double grad_norm = 0.0;       // global L2 norm before clipping
  double images_per_second = 0.0;
  double data_wait_seconds = 0.0;
  size_t peak_memory_bytes = 0; // peak resident memory of the process
};

struct ValidationLog {
  int64_t iteration = 0;        // iterations done when validated
  std::vector<int> ns = {1, 5, 10};
  std::vector<double> recalls;  // percent
};

struct TrainStats {
  int64_t start_iteration = 0;  // > 0 when resumed
  int64_t iterations_done = 0;  // total, including resumed ones
  std::vector<IterationLog> iterations;   // this run only
  std::vector<ValidationLog> validations;
  std::vector<std::string> checkpoints;   // written by this run
  int64_t num_trainable_parameters = 0;
  int64_t num_frozen_parameters = 0;
  std::vector<std::string> sources;       // sampler summaries
  std::string device;
};

// Progress callback (the CLI prints; the library never does).
struct TrainCallbacks {
  std::function<void(const std::string&)> on_message;
  std::function<void(const IterationLog&)> on_iteration;
  std::function<void(const ValidationLog&)> on_validation;
};

// Runs (or resumes) a training. Throws InvalidArgument on bad options, IoError/FormatError naming
// the file on bad data or weights; the last checkpoint written stays valid.
TrainStats RunTraining(const TrainOptions& options, const TrainCallbacks& callbacks = {});

// The learning rate at iteration t (0-based) for the schedule of `options`.
double LearningRateAt(const TrainOptions& options, int64_t iteration);

}  // namespace megaloc
