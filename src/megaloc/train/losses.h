#pragma once

// Multi-similarity loss and miner exactly as SALAD / GSV-Cities / CliqueMining use them through
// pytorch-metric-learning (v2.3.0 .. v2.8.1):
//   MultiSimilarityMiner(epsilon=0.1, distance=CosineSimilarity())
//   MultiSimilarityLoss(alpha=1, beta=50, base=0, distance=DotProductSimilarity())
// Both use cosine similarity (embeddings are L2-normalised first). See docs/training.md and
// /work/shared/spec/training.md §2 for the formulas and golden values.
//
// Internal header of the trainer (includes LibTorch): only src/megaloc/train/*.cc and the train
// tests include it.

#include <torch/torch.h>

namespace megaloc {

struct MultiSimilarityOptions {
  // Positive scale alpha (SALAD/GSV-Cities code: 1.0; the library default 2.0 is not the VPR value).
  double alpha = 1.0;
  // Negative scale beta (SALAD/GSV-Cities code: 50).
  double beta = 50.0;
  // Similarity offset lambda ("base"; SALAD/GSV-Cities code: 0.0).
  double base = 0.0;
  // Miner margin epsilon (SALAD/GSV-Cities code: 0.1).
  double miner_epsilon = 0.1;
  // Mine pairs with the multi-similarity miner (SALAD/GSV-Cities code: true). false = all pairs.
  bool use_miner = true;

  bool Check() const;
};

// Ordered index pairs (a, b) as int64 CPU-or-device tensors of equal length. (i, j) and (j, i) are
// separate entries, as in pytorch-metric-learning.
struct MinedPairs {
  torch::Tensor pos_anchor, pos_other;   // positive pairs: same label, anchor != other
  torch::Tensor neg_anchor, neg_other;   // negative pairs: different labels

  int64_t NumPositive() const { return pos_anchor.defined() ? pos_anchor.numel() : 0; }
  int64_t NumNegative() const { return neg_anchor.defined() ? neg_anchor.numel() : 0; }
};

// Statistics of one loss evaluation (for logging).
struct MultiSimilarityStats {
  int64_t num_positive_pairs = 0;  // kept by the miner (or all)
  int64_t num_negative_pairs = 0;
  int64_t num_anchors_with_pairs = 0;
};

// Cosine-similarity matrix S = n(X) n(X)^T with n = F.normalize(p=2, dim=1, eps=1e-12).
torch::Tensor CosineSimilarityMatrix(const torch::Tensor& embeddings);

// All ordered positive and negative pairs of a label vector (pml's get_all_pairs_indices).
MinedPairs AllPairs(const torch::Tensor& labels);

// The multi-similarity miner on a similarity matrix [B, B] (computed without autograd). Keeps a
// positive (i, j) iff S_ij - epsilon < max_{k in N_i} S_ik and a negative (i, k) iff
// S_ik + epsilon > min_{j in P_i} S_ij (strict). Returns empty pairs when the batch has no positive
// or no negative pair.
MinedPairs MultiSimilarityMine(const torch::Tensor& similarity,
                               const torch::Tensor& labels,
                               double epsilon);

// Multi-similarity loss of embeddings [B, D] (any float dtype; computed in float32, or float64 when
// the input is float64) with integer labels [B]. Applies the miner when options.use_miner.
// Returns a 0-dim tensor (0 with a graph when the library's zero-loss shortcut applies).
torch::Tensor MultiSimilarityLoss(const torch::Tensor& embeddings,
                                  const torch::Tensor& labels,
                                  const MultiSimilarityOptions& options,
                                  MultiSimilarityStats* stats = nullptr);

// The same loss for explicitly given pairs (used by the tests and by MultiSimilarityLoss).
torch::Tensor MultiSimilarityLossWithPairs(const torch::Tensor& similarity,
                                           const MinedPairs& pairs,
                                           const MultiSimilarityOptions& options);

}  // namespace megaloc
