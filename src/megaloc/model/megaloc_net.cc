#include "megaloc/model/megaloc_net.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "megaloc/util/logging.h"

namespace megaloc {

namespace F = torch::nn::functional;

std::string NetConfig::ToString() const {
  std::ostringstream out;
  out << "ViT embed_dim=" << embed_dim << " depth=" << depth << " heads=" << num_heads
      << " patch=" << patch_size << " pos_grid=" << pos_embed_grid << " mlp=" << mlp_hidden_dim
      << "; SALAD clusters=" << num_clusters << " cluster_dim=" << cluster_dim
      << " token_dim=" << token_dim << " mlp=" << salad_mlp_dim << " (" << SaladDim()
      << "-d); descriptor_dim=" << descriptor_dim;
  return out.str();
}

// ---------------------------------------------------------------------------------------------

PatchEmbedImpl::PatchEmbedImpl(int64_t patch_size, int64_t embed_dim) {
  proj = register_module(
      "proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, embed_dim, patch_size)
                                    .stride(patch_size)
                                    .bias(true)));
}

torch::Tensor PatchEmbedImpl::forward(const torch::Tensor& x) {
  return proj->forward(x).flatten(2).transpose(1, 2);
}

LayerScaleImpl::LayerScaleImpl(int64_t dim, double init_value) {
  gamma = register_parameter("gamma", torch::full({dim}, init_value));
}

torch::Tensor LayerScaleImpl::forward(const torch::Tensor& x) { return x * gamma; }

namespace {
thread_local bool g_skip_parameter_init = false;
}  // namespace

SkipParameterInit::SkipParameterInit() : previous_(g_skip_parameter_init) { g_skip_parameter_init = true; }
SkipParameterInit::~SkipParameterInit() { g_skip_parameter_init = previous_; }

DenseImpl::DenseImpl(int64_t in, int64_t out) : in_features(in), out_features(out) { reset(); }

void DenseImpl::reset() {
  weight = register_parameter("weight", torch::empty({out_features, in_features}));
  bias = register_parameter("bias", torch::empty({out_features}));
  if (!g_skip_parameter_init) reset_parameters();
}

void DenseImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  const auto fans = torch::nn::init::_calculate_fan_in_and_fan_out(weight);
  const double bound = 1.0 / std::sqrt(static_cast<double>(std::get<0>(fans)));
  torch::nn::init::uniform_(bias, -bound, bound);
}

torch::Tensor DenseImpl::forward(const torch::Tensor& x) { return F::linear(x, weight, bias); }

AttentionImpl::AttentionImpl(int64_t dim, int64_t heads) : num_heads(heads) {
  MEGALOC_CHECK_MSG(heads > 0 && dim % heads == 0,
                    "embed_dim " << dim << " is not divisible by num_heads " << heads);
  qkv = register_module("qkv", Dense(dim, 3 * dim));
  proj = register_module("proj", Dense(dim, dim));
}

bool HasFusedAttention() {
#ifdef MEGALOC_HAVE_SDPA
  return true;
#else
  return false;
#endif
}

namespace {

// Upstream's attention: one [B,H,N,N] score tensor.
torch::Tensor PlainAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             double scale) {
  const int64_t batch = q.size(0);
  const int64_t tokens = q.size(2);
  torch::Tensor attn = torch::matmul(q, k.transpose(-2, -1)) * scale;
  attn = attn.softmax(-1);
  return torch::matmul(attn, v).transpose(1, 2).reshape({batch, tokens, -1});
}

// Queries in blocks: scores of `block` query rows for all heads at a time, written straight into
// the [B,N,H,d] output. Needs no autograd (writes into a preallocated output).
torch::Tensor BlockedAttention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, double scale, int64_t block) {
  const int64_t batch = q.size(0);
  const int64_t heads = q.size(1);
  const int64_t tokens = q.size(2);
  const int64_t head_dim = q.size(3);
  const int64_t keys = k.size(2);
  if (block <= 0) {
    constexpr int64_t kScoreBytes = int64_t{32} << 20;
    block = std::max<int64_t>(
        16, kScoreBytes / (batch * heads * keys * static_cast<int64_t>(sizeof(float))));
  }
  block = std::min(block, tokens);
  // A power-of-two scale (1/8 for 64-d heads) is exact on q: fold it in (one pass over N x d
  // instead of N x N). Otherwise scale the scores, as upstream.
  int exponent = 0;
  const bool exact_fold = std::frexp(scale, &exponent) == 0.5;
  const torch::Tensor q_in = exact_fold ? q * scale : q;
  const torch::Tensor k_t = k.transpose(-2, -1).contiguous();  // [B,H,d,N]
  const torch::Tensor v_in = v.contiguous();
  torch::Tensor out = torch::empty({batch, tokens, heads, head_dim}, q.options());
  for (int64_t start = 0; start < tokens; start += block) {
    const int64_t end = std::min(tokens, start + block);
    torch::Tensor scores = torch::matmul(q_in.slice(2, start, end), k_t);  // [B,H,b,N]
    if (!exact_fold) scores.mul_(scale);
    scores = scores.softmax(-1);
    out.slice(1, start, end).copy_(torch::matmul(scores, v_in).transpose(1, 2));
  }
  return out.view({batch, tokens, heads * head_dim});
}

}  // namespace

torch::Tensor MultiHeadAttention(const torch::Tensor& q, const torch::Tensor& k,
                                 const torch::Tensor& v, double scale,
                                 ForwardOptions::AttentionKernel kernel, int64_t query_block) {
  using Kernel = ForwardOptions::AttentionKernel;
  if (kernel == Kernel::kAuto) kernel = HasFusedAttention() ? Kernel::kFused : Kernel::kBlocked;
  switch (kernel) {
    case Kernel::kPlain:
      return PlainAttention(q, k, v, scale);
    case Kernel::kBlocked:
      return BlockedAttention(q, k, v, scale, query_block);
    case Kernel::kFused: {
#ifdef MEGALOC_HAVE_SDPA
      // The default scale of scaled_dot_product_attention is 1/sqrt(d), the one all callers use.
      MEGALOC_CHECK_MSG(std::abs(scale * std::sqrt(static_cast<double>(q.size(3))) - 1.0) < 1e-12,
                        "fused attention supports only the scale 1/sqrt(head_dim)");
      const int64_t batch = q.size(0);
      const int64_t tokens = q.size(2);
      return at::scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(
          {batch, tokens, -1});
#else
      MEGALOC_THROW(InvalidArgument,
                    "fused attention (scaled_dot_product_attention) is not in this build's "
                    "LibTorch " << TORCH_VERSION_MAJOR << "." << TORCH_VERSION_MINOR
                                << " (it needs LibTorch >= 2.0)");
#endif
    }
    case Kernel::kAuto:
      break;
  }
  MEGALOC_THROW(InvalidArgument, "unknown attention kernel");
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x) {
  const int64_t batch = x.size(0);
  const int64_t tokens = x.size(1);
  const int64_t channels = x.size(2);
  const int64_t head_dim = channels / num_heads;
  const double scale = std::pow(static_cast<double>(head_dim), -0.5);
  torch::Tensor out;
  {
    const torch::Tensor qkv_out =
        qkv->forward(x).reshape({batch, tokens, 3, num_heads, head_dim}).permute({2, 0, 3, 1, 4});
    const torch::Tensor q = qkv_out[0];
    const torch::Tensor k = qkv_out[1];
    const torch::Tensor v = qkv_out[2];
    // Training (autograd on) keeps upstream's explicit attention.
    const ForwardOptions::AttentionKernel used =
        torch::GradMode::is_enabled() ? ForwardOptions::AttentionKernel::kPlain : kernel;
    out = MultiHeadAttention(q, k, v, scale, used, query_block);
  }  // the qkv activations are released before the projection
  return proj->forward(out);
}

MlpImpl::MlpImpl(int64_t dim, int64_t hidden_dim) {
  fc1 = register_module("fc1", Dense(dim, hidden_dim));
  fc2 = register_module("fc2", Dense(hidden_dim, dim));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  // Exact (erf) GELU, as nn.GELU().
  return fc2->forward(torch::gelu(fc1->forward(x)));
}

BlockImpl::BlockImpl(int64_t dim, int64_t num_heads, int64_t mlp_hidden_dim, double eps) {
  norm1 = register_module(
      "norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(eps)));
  attn = register_module("attn", Attention(dim, num_heads));
  ls1 = register_module("ls1", LayerScale(dim));
  norm2 = register_module(
      "norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(eps)));
  mlp = register_module("mlp", Mlp(dim, mlp_hidden_dim));
  ls2 = register_module("ls2", LayerScale(dim));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& input) {
  torch::Tensor x = input + ls1->forward(attn->forward(norm1->forward(input)));
  x = x + ls2->forward(mlp->forward(norm2->forward(x)));
  return x;
}

BackboneImpl::BackboneImpl(const NetConfig& cfg) : config(cfg) {
  const int64_t dim = config.embed_dim;
  // Registration order = state_dict order of upstream: cls_token, pos_embed, patch_embed, blocks,
  // norm.
  cls_token = register_parameter("cls_token", torch::zeros({1, 1, dim}));
  pos_embed = register_parameter(
      "pos_embed",
      torch::zeros({1, config.pos_embed_grid * config.pos_embed_grid + 1, dim}));
  patch_embed = register_module("patch_embed", PatchEmbed(config.patch_size, dim));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.depth; ++i) {
    blocks->push_back(Block(dim, config.num_heads, config.mlp_hidden_dim, config.layer_norm_eps));
  }
  norm = register_module(
      "norm",
      torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(config.layer_norm_eps)));
}

torch::Tensor BackboneImpl::InterpolatePosEmbed(int64_t h0, int64_t w0, int64_t height,
                                                int64_t width) {
  const int64_t num_table = pos_embed.size(1) - 1;
  // Upstream compares the patch count with the table size and the two sides (it names them w, h
  // but passes H, W): the raw table is used only for a square input with exactly M*M patches.
  if (h0 * w0 == num_table && height == width) {
    return pos_embed;
  }
  const int64_t dim = pos_embed.size(2);
  const int64_t grid = static_cast<int64_t>(std::sqrt(static_cast<double>(num_table)));
  const torch::Tensor class_pos = pos_embed.select(1, 0);                    // [1,C]
  const torch::Tensor patch_pos = pos_embed.slice(1, 1);                     // [1,M*M,C]
  // Scale factors in double, passed to the kernel (source coordinate = (dst + 0.5) / sf - 0.5).
  const double scale_h = (static_cast<double>(h0) + 0.1) / static_cast<double>(grid);
  const double scale_w = (static_cast<double>(w0) + 0.1) / static_cast<double>(grid);
  const int64_t out_h = static_cast<int64_t>(static_cast<double>(grid) * scale_h);
  const int64_t out_w = static_cast<int64_t>(static_cast<double>(grid) * scale_w);
  MEGALOC_CHECK_MSG(out_h == h0 && out_w == w0,
                    "position-embedding interpolation size " << out_h << "x" << out_w
                                                             << " != patch grid " << h0 << "x"
                                                             << w0);
  torch::Tensor interpolated = torch::upsample_bicubic2d(
      patch_pos.reshape({1, grid, grid, dim}).permute({0, 3, 1, 2}), {out_h, out_w},
      /*align_corners=*/false, scale_h, scale_w);
  interpolated = interpolated.permute({0, 2, 3, 1}).view({1, -1, dim});
  return torch::cat({class_pos.unsqueeze(0), interpolated}, 1);
}

void BackboneImpl::SetAttention(ForwardOptions::AttentionKernel kernel, int64_t query_block) {
  for (size_t i = 0; i < blocks->size(); ++i) {
    Attention& attn = blocks[i]->as<Block>()->attn;
    attn->kernel = kernel;
    attn->query_block = query_block;
  }
}

std::pair<torch::Tensor, torch::Tensor> BackboneImpl::forward(const torch::Tensor& images,
                                                              NetStages* stages) {
  const int64_t batch = images.size(0);
  const int64_t height = images.size(2);
  const int64_t width = images.size(3);
  const int64_t h0 = height / config.patch_size;
  const int64_t w0 = width / config.patch_size;
  torch::Tensor x = patch_embed->forward(images);
  if (stages) stages->patch_tokens = x;
  x = torch::cat({cls_token.expand({batch, -1, -1}), x}, 1);
  const torch::Tensor pos = InterpolatePosEmbed(h0, w0, height, width);
  if (stages) stages->pos_embed = pos;
  x = x + pos;
  for (size_t i = 0; i < blocks->size(); ++i) {
    x = blocks[i]->as<Block>()->forward(x);
    if (stages && i == 0) stages->block00_out = x;
  }
  x = norm->forward(x);
  const torch::Tensor cls = x.select(1, 0);
  const torch::Tensor feature_map =
      x.slice(1, 1).reshape({batch, h0, w0, config.embed_dim}).permute({0, 3, 1, 2});
  if (stages) {
    stages->final_norm_out = x;
    stages->cls_token = cls;
    stages->feature_map = feature_map;
  }
  return {feature_map, cls};
}

// ---------------------------------------------------------------------------------------------

SaladImpl::SaladImpl(const NetConfig& cfg) : config(cfg) {
  const int64_t channels = config.embed_dim;
  const int64_t hidden = config.salad_mlp_dim;
  // dust_bin first: upstream's state_dict lists it before the sub-modules.
  dust_bin = register_parameter("dust_bin", torch::tensor(1.0f));
  token_features = register_module(
      "token_features",
      torch::nn::Sequential(Dense(channels, hidden), torch::nn::ReLU(), Dense(hidden, config.token_dim)));
  auto conv1x1 = [](int64_t in, int64_t out) {
    return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1).bias(true));
  };
  cluster_features = register_module(
      "cluster_features",
      torch::nn::Sequential(conv1x1(channels, hidden), torch::nn::Dropout(config.dropout),
                            torch::nn::ReLU(), conv1x1(hidden, config.cluster_dim)));
  score = register_module(
      "score",
      torch::nn::Sequential(conv1x1(channels, hidden), torch::nn::Dropout(config.dropout),
                            torch::nn::ReLU(), conv1x1(hidden, config.num_clusters)));
}

torch::Tensor SinkhornLogP(const torch::Tensor& scores, const torch::Tensor& dust_bin,
                           int num_iterations) {
  const int64_t batch = scores.size(0);
  const int64_t m = scores.size(1);
  const int64_t n = scores.size(2);
  torch::Tensor s_aug = torch::empty({batch, m + 1, n}, scores.options());
  s_aug.slice(1, 0, m).copy_(scores);
  s_aug.select(1, m).copy_(dust_bin.expand({batch, n}));
  // norm = -float32(log(n + m)); the dustbin marginal is added in float32, as upstream.
  const torch::Tensor norm =
      -torch::tensor(std::log(static_cast<double>(n + m)), scores.options());
  torch::Tensor log_a = norm.expand({m + 1}).contiguous();
  torch::Tensor log_b = norm.expand({n}).contiguous();
  {
    torch::NoGradGuard no_grad;  // constants
    const torch::Tensor last = log_a.select(0, m) + std::log(static_cast<double>(n - m));
    log_a.select(0, m).copy_(last);
  }
  log_a = log_a.expand({batch, -1});
  log_b = log_b.expand({batch, -1});
  // log_otp_solver with reg = 1.
  const torch::Tensor cost = s_aug / 1.0;
  torch::Tensor u = torch::zeros_like(log_a);
  torch::Tensor v = torch::zeros_like(log_b);
  for (int i = 0; i < num_iterations; ++i) {
    u = log_a - torch::logsumexp(cost + v.unsqueeze(1), {2}).squeeze();
    v = log_b - torch::logsumexp(cost + u.unsqueeze(2), {1}).squeeze();
  }
  const torch::Tensor log_p = cost + u.unsqueeze(2) + v.unsqueeze(1);
  return log_p - norm;
}

torch::Tensor SaladImpl::forward(const torch::Tensor& x, const torch::Tensor& cls,
                                 const ForwardOptions& options, NetStages* stages) {
  const torch::Tensor cluster_map = cluster_features->forward(x);
  const torch::Tensor score_map = score->forward(x);
  torch::Tensor f = cluster_map.flatten(2);
  torch::Tensor p = score_map.flatten(2);
  const torch::Tensor t = token_features->forward(cls);
  p = SinkhornLogP(p, dust_bin, config.sinkhorn_iterations);
  if (stages) {
    stages->cluster_features = cluster_map;
    stages->scores = score_map;
    stages->log_p = p;
    stages->token = t;
  }
  p = torch::exp(p);
  p = p.slice(1, 0, p.size(1) - 1);  // drop the dustbin row
  torch::Tensor aggregated;
  if (options.fast_aggregation) {
    // V[b,c,k] = sum_j f[b,c,j] * P[b,k,j] as one batched GEMM.
    aggregated = torch::matmul(f, p.transpose(1, 2));
  } else if (torch::GradMode::is_enabled()) {
    // Upstream: materialised repeats, elementwise product, sum over patches.
    const int64_t l = f.size(1);
    const int64_t m = p.size(1);
    const torch::Tensor p_rep = p.unsqueeze(1).repeat({1, l, 1, 1});
    const torch::Tensor f_rep = f.unsqueeze(2).repeat({1, 1, m, 1});
    aggregated = (f_rep * p_rep).sum(-1);
  } else {
    // The same products and the same contiguous sums over patches as upstream (bit-identical), a
    // few feature channels at a time: upstream's three [B,l,m,n] temporaries are 790 MB at hloc's
    // resize_max 1024 (4015 patches).
    const int64_t batch = f.size(0);
    const int64_t l = f.size(1);
    const int64_t m = p.size(1);
    const int64_t n = f.size(2);
    constexpr int64_t kChunkBytes = int64_t{16} << 20;
    const int64_t chunk = std::max<int64_t>(
        1, kChunkBytes / (batch * m * n * static_cast<int64_t>(sizeof(float))));
    aggregated = torch::empty({batch, l, m}, f.options());
    const torch::Tensor p_b = p.unsqueeze(1);  // [B,1,m,n]
    torch::Tensor product = torch::empty({batch, std::min(chunk, l), m, n}, f.options());
    for (int64_t start = 0; start < l; start += chunk) {
      const int64_t end = std::min(l, start + chunk);
      torch::Tensor part = product.slice(1, 0, end - start);  // contiguous, like upstream's
      torch::mul_out(part, f.slice(1, start, end).unsqueeze(2), p_b);
      aggregated.slice(1, start, end).copy_(part.sum(-1));
    }
  }
  const torch::Tensor out = torch::cat(
      {F::normalize(t, F::NormalizeFuncOptions().p(2).dim(-1)),
       F::normalize(aggregated, F::NormalizeFuncOptions().p(2).dim(1)).flatten(1)},
      -1);
  return F::normalize(out, F::NormalizeFuncOptions().p(2).dim(-1));
}

AggregatorImpl::AggregatorImpl(const NetConfig& config) {
  agg = register_module("agg", Salad(config));
  linear = register_module("linear", Dense(config.SaladDim(), config.descriptor_dim));
}

torch::Tensor AggregatorImpl::forward(const torch::Tensor& feature_map, const torch::Tensor& cls,
                                      const ForwardOptions& options, NetStages* stages) {
  const torch::Tensor salad = agg->forward(feature_map, cls, options, stages);
  if (stages) stages->salad_out = salad;
  return linear->forward(salad);
}

// ---------------------------------------------------------------------------------------------

int64_t RoundToMultiple(int64_t size, int64_t patch_size) {
  // Python round(): half to even (the default FP rounding mode of nearbyint).
  return static_cast<int64_t>(
             std::nearbyint(static_cast<double>(size) / static_cast<double>(patch_size))) *
         patch_size;
}

MegaLocNetImpl::MegaLocNetImpl(const NetConfig& cfg) : config(cfg) {
  backbone = register_module("backbone", Backbone(config));
  aggregator = register_module("aggregator", Aggregator(config));
}

void MegaLocNetImpl::BackboneInputSize(int64_t height, int64_t width, int64_t* out_height,
                                       int64_t* out_width) const {
  const int64_t p = config.patch_size;
  if (height % p != 0 || width % p != 0) {
    *out_height = RoundToMultiple(height, p);
    *out_width = RoundToMultiple(width, p);
  } else {
    *out_height = height;
    *out_width = width;
  }
}

void MegaLocNetImpl::CheckInputSize(int64_t height, int64_t width) const {
  int64_t h = 0;
  int64_t w = 0;
  BackboneInputSize(height, width, &h, &w);
  const int64_t patches = (h / config.patch_size) * (w / config.patch_size);
  if (patches <= config.num_clusters) {
    MEGALOC_THROW(ImageError,
                  "image of " << width << "x" << height << " pixels is too small for MegaLoc: the "
                              << "model sees " << w << "x" << h << " = " << patches
                              << " patches of " << config.patch_size << "x"
                              << config.patch_size << ", it needs more than "
                              << config.num_clusters << " (the number of clusters)");
  }
}

NetStages MegaLocNetImpl::ForwardWithStages(const torch::Tensor& images,
                                            const ForwardOptions& options) {
  MEGALOC_CHECK_MSG(images.dim() == 4 && images.size(1) == 3,
                    "MegaLoc expects [B,3,H,W] images, got " << images.sizes());
  const int64_t height = images.size(2);
  const int64_t width = images.size(3);
  CheckInputSize(height, width);
  int64_t h = 0;
  int64_t w = 0;
  BackboneInputSize(height, width, &h, &w);
  NetStages stages;
  torch::Tensor x = images;
  if (h != height || w != width) {
    // torchvision resize([h, w], antialias=True) on a float tensor: bilinear AA, no scales.
    x = torch::_upsample_bilinear2d_aa(images, {h, w}, /*align_corners=*/false, c10::nullopt,
                                       c10::nullopt);
  }
  stages.backbone_input = x;
  backbone->SetAttention(options.attention, options.attention_query_block);
  const auto features = backbone->forward(x, &stages);
  stages.linear_out = aggregator->forward(features.first, features.second, options, &stages);
  stages.descriptor = F::normalize(stages.linear_out, F::NormalizeFuncOptions().p(2).dim(1));
  return stages;
}

torch::Tensor MegaLocNetImpl::forward(const torch::Tensor& images, const ForwardOptions& options) {
  MEGALOC_CHECK_MSG(images.dim() == 4 && images.size(1) == 3,
                    "MegaLoc expects [B,3,H,W] images, got " << images.sizes());
  const int64_t height = images.size(2);
  const int64_t width = images.size(3);
  CheckInputSize(height, width);
  int64_t h = 0;
  int64_t w = 0;
  BackboneInputSize(height, width, &h, &w);
  torch::Tensor x = images;
  if (h != height || w != width) {
    x = torch::_upsample_bilinear2d_aa(images, {h, w}, /*align_corners=*/false, c10::nullopt,
                                       c10::nullopt);
  }
  backbone->SetAttention(options.attention, options.attention_query_block);
  const auto features = backbone->forward(x);
  const torch::Tensor linear_out = aggregator->forward(features.first, features.second, options);
  return F::normalize(linear_out, F::NormalizeFuncOptions().p(2).dim(1));
}

int64_t CountParameters(const torch::nn::Module& module) {
  int64_t count = 0;
  for (const auto& parameter : module.parameters()) count += parameter.numel();
  return count;
}

}  // namespace megaloc
