#pragma once

// INTERNAL header of the model library (includes LibTorch): the MegaLoc network as torch::nn
// modules. Used by megaloc.cc (inference), the trainer (src/megaloc/train) and the parity tests.
// Never include it from a public, torch-free header.
//
// Module and parameter names reproduce the official v2 state_dict exactly
// (gmberton/MegaLoc @1af071c, megaloc_model.py), so `named_parameters()` of MegaLocNet yields the
// keys of HF `model.safetensors`:
//   backbone.cls_token, backbone.pos_embed, backbone.patch_embed.proj.*, backbone.blocks.{i}.*,
//   backbone.norm.*, aggregator.agg.dust_bin, aggregator.agg.{token_features,cluster_features,score}.*,
//   aggregator.linear.*
// The SALAD conv MLPs are Sequential(Conv, Dropout(0.3), ReLU, Conv) like upstream, so
// `net->train()` activates dropout at the same places; inference code always calls `net->eval()`.

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "megaloc/model/megaloc.h"
#include "megaloc/util/cpu_share.h"

namespace megaloc {

// Architecture hyper-parameters. Defaults = the official MegaLoc (ViT-B/14 + SALAD 64x256 + 8448-d).
struct NetConfig {
  int64_t embed_dim = 768;
  int64_t depth = 12;
  int64_t num_heads = 12;
  int64_t patch_size = 14;
  int64_t pos_embed_grid = 37;   // M: pos_embed has 1 + M*M entries (trained at 518x518)
  int64_t mlp_hidden_dim = 3072;
  int64_t num_clusters = 64;     // m
  int64_t cluster_dim = 256;     // l
  int64_t token_dim = 256;       // g
  int64_t salad_mlp_dim = 512;
  int64_t descriptor_dim = 8448;
  double dropout = 0.3;          // SALAD conv MLPs (active only in train mode)
  double layer_norm_eps = 1e-6;
  int sinkhorn_iterations = 3;

  int64_t SaladDim() const { return token_dim + num_clusters * cluster_dim; }
  std::string ToString() const;
};

// Options of a forward pass that do not change the maths (beyond float rounding).
struct ForwardOptions {
  // false (default): upstream's `repeat + mul + sum` SALAD aggregation (bit-exact with the authors'
  // code at 1 thread). true: one batched matmul (much faster and ~2 GB less memory at batch 8;
  // descriptors differ by float rounding only, <= ~2.3e-7 on the tiny fixture).
  bool fast_aggregation = false;
  // Attention kernel when autograd is off (inference; training always runs kPlain). Every kernel
  // computes softmax(q k^T / sqrt(d)) v; they differ by float rounding only (<= ~1e-7).
  //   kAuto:    LibTorch's fused scaled_dot_product_attention where this LibTorch has it
  //             (configure-time check, MEGALOC_HAVE_SDPA), else kBlocked.
  //   kPlain:   upstream's one [B,heads,N,N] score tensor (12 x 4016^2 floats = 774 MB per
  //             block at hloc's resize_max 1024).
  //   kBlocked: queries in blocks of `attention_query_block` rows, so only a
  //             [B,heads,block,N] slice of the scores is alive at once.
  //   kFused:   scaled_dot_product_attention; an InvalidArgument error where it is not compiled in.
  enum class AttentionKernel { kAuto, kPlain, kBlocked, kFused };
  AttentionKernel attention = AttentionKernel::kAuto;
  // Query rows per block of kBlocked; 0 = as many as fit in ~32 MB of scores (one block for
  // 322x322 inputs, ~170 rows for 4016 tokens).
  int64_t attention_query_block = 0;
};

// Whether this build has LibTorch's fused scaled_dot_product_attention (LibTorch >= 2.0).
bool HasFusedAttention();

// softmax(q k^T * scale) v for q, k, v [B,heads,N,d] (any strides) with the given kernel (kAuto
// resolves as in ForwardOptions). Returns [B,N,heads*d] (channel = head*d + i), contiguous.
torch::Tensor MultiHeadAttention(const torch::Tensor& q, const torch::Tensor& k,
                                 const torch::Tensor& v, double scale,
                                 ForwardOptions::AttentionKernel kernel,
                                 int64_t query_block = 0);

// Intermediate results of one forward pass (for parity tests and debugging). Shapes use
// B = batch, C = embed_dim, n = h0*w0 patches, m = clusters, l = cluster_dim, g = token_dim.
struct NetStages {
  torch::Tensor backbone_input;    // [B,3,h,w] after the multiple-of-14 resize (== input if none)
  torch::Tensor patch_tokens;      // [B,n,C] patch-embedding output
  torch::Tensor pos_embed;         // [1,n+1,C] position table added (cls entry first)
  torch::Tensor block00_out;       // [B,n+1,C] output of block 0
  torch::Tensor final_norm_out;    // [B,n+1,C] final LayerNorm over all tokens
  torch::Tensor cls_token;         // [B,C]
  torch::Tensor feature_map;       // [B,C,h0,w0] permuted view of the normed patch tokens
  torch::Tensor cluster_features;  // [B,l,h0,w0]
  torch::Tensor scores;            // [B,m,h0,w0]
  torch::Tensor log_p;             // [B,m+1,n] Sinkhorn log P incl. the dustbin row (last)
  torch::Tensor token;             // [B,g] token MLP output (before its L2 normalisation)
  torch::Tensor salad_out;         // [B,g+m*l] normalised SALAD vector (token first, then c*m+k)
  torch::Tensor linear_out;        // [B,D] final Linear output (before the L2 normalisation)
  torch::Tensor descriptor;        // [B,D] unit-norm descriptor
};

// ---------------------------------------------------------------------------------------------
// Backbone: DINOv2 ViT (no registers, LayerScale, LayerNorm eps 1e-6, exact GELU).

// torch::nn::Linear with the same parameters ("weight" [out,in], "bias" [out]), forward
// (F::linear) and initialisation (reset_parameters: kaiming_uniform_(a = sqrt(5)), bias
// U(-1/sqrt(in), 1/sqrt(in)), drawing the same random numbers), except that inside a
// SkipParameterInit scope the parameters are created uninitialised: a checkpoint is about to
// replace them (the 226 M Linear parameters of MegaLoc cost seconds of random numbers and 0.9 GB of
// touched memory otherwise).
class DenseImpl : public torch::nn::Cloneable<DenseImpl> {
 public:
  DenseImpl(int64_t in_features, int64_t out_features);
  void reset() override;
  void reset_parameters();
  torch::Tensor forward(const torch::Tensor& x);
  int64_t in_features;
  int64_t out_features;
  torch::Tensor weight;
  torch::Tensor bias;
};
TORCH_MODULE(Dense);

// While alive (on this thread), Dense layers are constructed without initialising their parameters.
class SkipParameterInit {
 public:
  SkipParameterInit();
  ~SkipParameterInit();
  SkipParameterInit(const SkipParameterInit&) = delete;
  SkipParameterInit& operator=(const SkipParameterInit&) = delete;

 private:
  bool previous_;
};

class PatchEmbedImpl : public torch::nn::Module {
 public:
  PatchEmbedImpl(int64_t patch_size, int64_t embed_dim);
  // [B,3,H,W] -> [B,n,C], row-major patches.
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d proj{nullptr};
};
TORCH_MODULE(PatchEmbed);

class LayerScaleImpl : public torch::nn::Module {
 public:
  explicit LayerScaleImpl(int64_t dim, double init_value = 1e-5);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor gamma;
};
TORCH_MODULE(LayerScale);

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t dim, int64_t num_heads);
  // (q k^T) * scale -> softmax -> @ v. With autograd on: explicit, as upstream. Without (inference):
  // the kernel of `kernel` (blocked queries or LibTorch's fused attention; see ForwardOptions).
  torch::Tensor forward(const torch::Tensor& x);
  int64_t num_heads;
  ForwardOptions::AttentionKernel kernel = ForwardOptions::AttentionKernel::kAuto;
  int64_t query_block = 0;
  Dense qkv{nullptr};
  Dense proj{nullptr};
};
TORCH_MODULE(Attention);

class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int64_t dim, int64_t hidden_dim);
  torch::Tensor forward(const torch::Tensor& x);
  Dense fc1{nullptr};
  Dense fc2{nullptr};
};
TORCH_MODULE(Mlp);

class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(int64_t dim, int64_t num_heads, int64_t mlp_hidden_dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::LayerNorm norm1{nullptr};
  Attention attn{nullptr};
  LayerScale ls1{nullptr};
  torch::nn::LayerNorm norm2{nullptr};
  Mlp mlp{nullptr};
  LayerScale ls2{nullptr};
};
TORCH_MODULE(Block);

class BackboneImpl : public torch::nn::Module {
 public:
  explicit BackboneImpl(const NetConfig& config);
  // x: [B,3,H,W], H and W multiples of the patch size. Returns {feature_map [B,C,h0,w0] (a permuted
  // view, not contiguous, as upstream), cls [B,C]}. Fills the backbone fields of `stages` if given.
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x,
                                                  NetStages* stages = nullptr);
  // Position table for an h0 x w0 patch grid: [1, 1 + h0*w0, C] (raw table when h0*w0 == M*M and
  // the image is square; else bicubic with scale factors ((h0+0.1)/M, (w0+0.1)/M) in double).
  torch::Tensor InterpolatePosEmbed(int64_t h0, int64_t w0, int64_t height, int64_t width);
  // Attention kernel of every block for the following forwards (ForwardOptions::attention).
  void SetAttention(ForwardOptions::AttentionKernel kernel, int64_t query_block);

  NetConfig config;
  torch::Tensor cls_token;
  torch::Tensor pos_embed;
  PatchEmbed patch_embed{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};
};
TORCH_MODULE(Backbone);

// ---------------------------------------------------------------------------------------------
// SALAD aggregation (serizba/salad as configured by MegaLoc) + the final Linear.

class SaladImpl : public torch::nn::Module {
 public:
  explicit SaladImpl(const NetConfig& config);
  // feature_map [B,C,h0,w0], cls [B,C] -> [B, g + m*l], L2-normalised.
  torch::Tensor forward(const torch::Tensor& feature_map,
                        const torch::Tensor& cls,
                        const ForwardOptions& options = {},
                        NetStages* stages = nullptr);

  NetConfig config;
  torch::Tensor dust_bin;  // 0-dim
  torch::nn::Sequential token_features{nullptr};    // Linear, ReLU, Linear
  torch::nn::Sequential cluster_features{nullptr};  // Conv1x1, Dropout, ReLU, Conv1x1
  torch::nn::Sequential score{nullptr};             // Conv1x1, Dropout, ReLU, Conv1x1
};
TORCH_MODULE(Salad);

class AggregatorImpl : public torch::nn::Module {
 public:
  explicit AggregatorImpl(const NetConfig& config);
  // Returns the Linear output (before the final L2 normalisation).
  torch::Tensor forward(const torch::Tensor& feature_map,
                        const torch::Tensor& cls,
                        const ForwardOptions& options = {},
                        NetStages* stages = nullptr);
  Salad agg{nullptr};
  Dense linear{nullptr};
};
TORCH_MODULE(Aggregator);

// Log-domain Sinkhorn of SALAD (OpenGlue's get_matching_probs): scores [B,m,n], dustbin z (0-dim)
// -> log P [B,m+1,n] including the dustbin row, with upstream's float32 op order.
torch::Tensor SinkhornLogP(const torch::Tensor& scores, const torch::Tensor& dust_bin,
                           int num_iterations);

// The multiple-of-14 size: round(size / patch) * patch with ties to even (Python round).
int64_t RoundToMultiple(int64_t size, int64_t patch_size);

class MegaLocNetImpl : public torch::nn::Module {
 public:
  explicit MegaLocNetImpl(const NetConfig& config);
  // images: [B,3,H,W] float32, RGB, ImageNet-normalised, any size (resized to multiples of 14
  // inside, bilinear antialias, ties-to-even) -> [B, descriptor_dim] unit-norm descriptors.
  // Throws ImageError if the patch grid has no more patches than clusters.
  torch::Tensor forward(const torch::Tensor& images, const ForwardOptions& options = {});
  // Same, keeping every intermediate stage.
  NetStages ForwardWithStages(const torch::Tensor& images, const ForwardOptions& options = {});

  // The image size the backbone sees for an input of H x W (multiple-of-14 step).
  void BackboneInputSize(int64_t height, int64_t width, int64_t* out_height,
                         int64_t* out_width) const;
  // Throws ImageError unless (h/14)*(w/14) > num_clusters for the backbone input size.
  void CheckInputSize(int64_t height, int64_t width) const;

  NetConfig config;
  Backbone backbone{nullptr};
  Aggregator aggregator{nullptr};
};
TORCH_MODULE(MegaLocNet);

// Number of parameters (elements) of a module.
int64_t CountParameters(const torch::nn::Module& module);

// Implementation state of MegaLocModel (megaloc.h).
struct MegaLocModel::Impl {
  NetConfig config;
  MegaLocNet net{nullptr};
  torch::Device device{torch::kCPU};
  ModelInfo info;
  ModelOptions options;
  ForwardOptions forward_options;
  // num_threads -1 on the CPU: the thread count follows the cores other processes leave free.
  std::unique_ptr<ThreadGovernor> governor;
  int threads = 0;  // LibTorch's intra-op thread count now
};

}  // namespace megaloc
