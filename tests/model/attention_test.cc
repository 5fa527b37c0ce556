// Attention kernels of the backbone (megaloc_net.h MultiHeadAttention): the blocked and the fused
// (LibTorch >= 2.0) kernels equal upstream's plain attention on random inputs, and the network
// gives the same descriptors with each kernel.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "megaloc/model/megaloc_net.h"
#include "megaloc/util/logging.h"
#include "tests/model/model_test_utils.h"

namespace megaloc {
namespace {

using Kernel = ForwardOptions::AttentionKernel;

struct Qkv {
  torch::Tensor q, k, v;
};

// q, k, v as the model makes them: strided views of one [B,N,3,H,d] tensor.
Qkv RandomQkv(int64_t batch, int64_t tokens, int64_t heads, int64_t head_dim, uint64_t seed) {
  torch::manual_seed(seed);
  const torch::Tensor qkv =
      torch::randn({batch, tokens, 3, heads, head_dim}).permute({2, 0, 3, 1, 4});
  return {qkv[0], qkv[1], qkv[2]};
}

TEST(AttentionTest, BlockedEqualsPlainForBlocksSmallerThanTheTokenCount) {
  torch::NoGradGuard no_grad;
  for (const int64_t head_dim : {64, 12}) {  // power-of-two scale (folded into q) and not
    const Qkv in = RandomQkv(2, 101, 3, head_dim, 7);
    const double scale = std::pow(static_cast<double>(head_dim), -0.5);
    const torch::Tensor plain = MultiHeadAttention(in.q, in.k, in.v, scale, Kernel::kPlain);
    ASSERT_EQ(plain.sizes(), (std::vector<int64_t>{2, 101, 3 * head_dim}));
    for (const int64_t block : {1, 7, 32, 100, 101, 500, 0}) {
      const torch::Tensor blocked =
          MultiHeadAttention(in.q, in.k, in.v, scale, Kernel::kBlocked, block);
      ASSERT_EQ(blocked.sizes(), plain.sizes());
      EXPECT_TRUE(blocked.is_contiguous());
      EXPECT_LE(testing::MaxAbsDiff(blocked, plain), 1e-6)
          << "head_dim " << head_dim << ", block " << block;
    }
  }
}

TEST(AttentionTest, PlainAttentionIsSoftmaxOfScaledScores) {
  // Independent check of the reference path itself, in float64.
  torch::NoGradGuard no_grad;
  const Qkv in = RandomQkv(1, 9, 2, 4, 3);
  const torch::Tensor q = in.q.to(torch::kDouble);
  const torch::Tensor k = in.k.to(torch::kDouble);
  const torch::Tensor v = in.v.to(torch::kDouble);
  for (int64_t h = 0; h < 2; ++h) {
    const torch::Tensor p = (q[0][h].matmul(k[0][h].t()) * 0.5).softmax(-1);
    const torch::Tensor expected = p.matmul(v[0][h]);
    const torch::Tensor got =
        MultiHeadAttention(in.q, in.k, in.v, 0.5, Kernel::kBlocked, 4)[0].slice(1, h * 4,
                                                                                (h + 1) * 4);
    EXPECT_LE(testing::MaxAbsDiff(got, expected), 1e-6);
  }
}

TEST(AttentionTest, FusedEqualsPlainWhereCompiled) {
  torch::NoGradGuard no_grad;
  const Qkv in = RandomQkv(2, 101, 3, 64, 11);
  const double scale = 0.125;
  if (!HasFusedAttention()) {
    EXPECT_THROW(MultiHeadAttention(in.q, in.k, in.v, scale, Kernel::kFused), InvalidArgument);
    GTEST_SKIP() << "this LibTorch has no scaled_dot_product_attention (LibTorch < 2.0)";
  }
  const torch::Tensor plain = MultiHeadAttention(in.q, in.k, in.v, scale, Kernel::kPlain);
  const torch::Tensor fused = MultiHeadAttention(in.q, in.k, in.v, scale, Kernel::kFused);
  ASSERT_EQ(fused.sizes(), plain.sizes());
  EXPECT_LE(testing::MaxAbsDiff(fused, plain), 1e-6);
}

TEST(AttentionTest, NetworkDescriptorsAgreeForEveryKernel) {
  MegaLocNet net = testing::LoadTinyNet();
  torch::manual_seed(5);
  const torch::Tensor images = torch::randn({2, 3, 70, 98});
  c10::InferenceMode inference;
  ForwardOptions options;
  options.attention = Kernel::kPlain;
  const NetStages plain = net->ForwardWithStages(images, options);
  std::vector<Kernel> kernels = {Kernel::kBlocked, Kernel::kAuto};
  if (HasFusedAttention()) kernels.push_back(Kernel::kFused);
  for (const Kernel kernel : kernels) {
    options.attention = kernel;
    options.attention_query_block = 3;  // 36 tokens in 12 blocks
    const NetStages other = net->ForwardWithStages(images, options);
    EXPECT_LE(testing::MaxAbsDiff(other.final_norm_out, plain.final_norm_out), 1e-5);
    EXPECT_LE(testing::MaxAbsDiff(other.descriptor, plain.descriptor), 1e-6);
    EXPECT_LE(testing::MaxAbsDiff(net->forward(images, options), plain.descriptor), 1e-6);
  }
}

TEST(AttentionTest, InferenceSaladAggregationIsBitIdenticalToUpstreamRepeat) {
  // Inference sums the same products over patches a few channels at a time; training (autograd
  // on) materialises upstream's repeats. Both must give the same bits.
  MegaLocNet net = testing::LoadTinyNet();
  torch::manual_seed(9);
  const torch::Tensor images = torch::randn({2, 3, 126, 168});
  NetStages stages;
  {
    torch::NoGradGuard no_grad;
    stages = net->ForwardWithStages(images);
  }
  const torch::Tensor fmap = stages.feature_map;  // the permuted view, as upstream feeds it
  const torch::Tensor cls = stages.cls_token;
  torch::Tensor upstream;
  {
    torch::AutoGradMode grad(true);
    upstream = net->aggregator->agg->forward(fmap, cls).detach();
  }
  torch::Tensor chunked;
  {
    c10::InferenceMode inference;
    chunked = net->aggregator->agg->forward(fmap, cls);
  }
  EXPECT_EQ(testing::MaxAbsDiff(chunked, upstream), 0.0);
}

}  // namespace
}  // namespace megaloc
