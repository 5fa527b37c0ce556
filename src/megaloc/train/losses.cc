#include "megaloc/train/losses.h"

#include <limits>

#include "megaloc/util/logging.h"

namespace megaloc {

bool MultiSimilarityOptions::Check() const {
  CHECK_OPTION_GT(alpha, 0.0);
  CHECK_OPTION_GT(beta, 0.0);
  CHECK_OPTION_GE(miner_epsilon, 0.0);
  return true;
}

namespace {

torch::Tensor ComputeType(const torch::Tensor& x) {
  // fp32 even under autocast (beta = 50 overflows fp16/bf16); fp64 stays fp64 for the goldens.
  if (x.scalar_type() == torch::kDouble) return x;
  return x.to(torch::kFloat);
}

torch::Tensor PairMask(int64_t batch, const torch::Tensor& a, const torch::Tensor& b,
                       const torch::TensorOptions& options) {
  torch::Tensor mask = torch::zeros({batch, batch}, options.dtype(torch::kBool));
  if (a.defined() && a.numel() > 0) {
    mask.index_put_({a, b}, torch::ones({a.numel()}, options.dtype(torch::kBool)));
  }
  return mask;
}

// (1/scale) * log(1 + sum_{keep} exp(scale * z)), rows without any kept entry give 0.
torch::Tensor MaskedLogOnePlusSumExp(const torch::Tensor& z, const torch::Tensor& keep,
                                     double scale) {
  const double neg_inf = -std::numeric_limits<double>::infinity();
  torch::Tensor x = (z * scale).masked_fill(keep.logical_not(), neg_inf);
  x = torch::cat({x, torch::zeros({x.size(0), 1}, x.options())}, 1);
  torch::Tensor out = torch::logsumexp(x, 1);
  out = out.masked_fill(keep.any(1).logical_not(), 0.0);
  return out / scale;
}

}  // namespace

torch::Tensor CosineSimilarityMatrix(const torch::Tensor& embeddings) {
  MEGALOC_CHECK_EQ(embeddings.dim(), 2);
  torch::Tensor e = torch::nn::functional::normalize(
      ComputeType(embeddings),
      torch::nn::functional::NormalizeFuncOptions().p(2).dim(1).eps(1e-12));
  return torch::matmul(e, e.t());
}

MinedPairs AllPairs(const torch::Tensor& labels) {
  MEGALOC_CHECK_EQ(labels.dim(), 1);
  const int64_t n = labels.size(0);
  torch::Tensor same = labels.unsqueeze(1).eq(labels.unsqueeze(0));
  torch::Tensor eye = torch::eye(n, labels.options().dtype(torch::kBool));
  torch::Tensor pos = same.logical_and(eye.logical_not());
  torch::Tensor neg = same.logical_not();
  MinedPairs pairs;
  torch::Tensor p = pos.nonzero();
  torch::Tensor q = neg.nonzero();
  pairs.pos_anchor = p.select(1, 0);
  pairs.pos_other = p.select(1, 1);
  pairs.neg_anchor = q.select(1, 0);
  pairs.neg_other = q.select(1, 1);
  return pairs;
}

MinedPairs MultiSimilarityMine(const torch::Tensor& similarity, const torch::Tensor& labels,
                               double epsilon) {
  torch::NoGradGuard no_grad;
  MEGALOC_CHECK_EQ(similarity.dim(), 2);
  MEGALOC_CHECK_EQ(similarity.size(0), similarity.size(1));
  MEGALOC_CHECK_EQ(labels.numel(), similarity.size(0));
  const int64_t n = labels.size(0);
  torch::Tensor lab = labels.to(similarity.device());
  torch::Tensor same = lab.unsqueeze(1).eq(lab.unsqueeze(0));
  torch::Tensor eye = torch::eye(n, lab.options().dtype(torch::kBool));
  torch::Tensor pos = same.logical_and(eye.logical_not());
  torch::Tensor neg = same.logical_not();
  MinedPairs pairs;
  auto empty = torch::zeros({0}, lab.options().dtype(torch::kLong));
  if (!pos.any().item<bool>() || !neg.any().item<bool>()) {
    pairs.pos_anchor = pairs.pos_other = pairs.neg_anchor = pairs.neg_other = empty;
    return pairs;
  }
  const double inf = std::numeric_limits<double>::infinity();
  torch::Tensor s = similarity.detach();
  // Hardest negative per anchor (-inf if none) and hardest positive (+inf if none).
  torch::Tensor hardest_neg = s.masked_fill(neg.logical_not(), -inf).amax(1, true);
  torch::Tensor hardest_pos = s.masked_fill(pos.logical_not(), inf).amin(1, true);
  torch::Tensor keep_pos = pos.logical_and((s - epsilon).lt(hardest_neg));
  torch::Tensor keep_neg = neg.logical_and((s + epsilon).gt(hardest_pos));
  torch::Tensor p = keep_pos.nonzero();
  torch::Tensor q = keep_neg.nonzero();
  pairs.pos_anchor = p.select(1, 0);
  pairs.pos_other = p.select(1, 1);
  pairs.neg_anchor = q.select(1, 0);
  pairs.neg_other = q.select(1, 1);
  return pairs;
}

torch::Tensor MultiSimilarityLossWithPairs(const torch::Tensor& similarity,
                                           const MinedPairs& pairs,
                                           const MultiSimilarityOptions& options) {
  const int64_t n = similarity.size(0);
  if (pairs.NumPositive() <= 1 && pairs.NumNegative() <= 1) {
    // pytorch-metric-learning's zero-loss shortcut: sum(x * 0) keeps the graph.
    return (similarity * 0).sum();
  }
  torch::Tensor pos_mask = PairMask(n, pairs.pos_anchor, pairs.pos_other, similarity.options());
  torch::Tensor neg_mask = PairMask(n, pairs.neg_anchor, pairs.neg_other, similarity.options());
  torch::Tensor pos_loss =
      MaskedLogOnePlusSumExp(-(similarity - options.base), pos_mask, options.alpha);
  torch::Tensor neg_loss =
      MaskedLogOnePlusSumExp(similarity - options.base, neg_mask, options.beta);
  return (pos_loss + neg_loss).mean();
}

torch::Tensor MultiSimilarityLoss(const torch::Tensor& embeddings, const torch::Tensor& labels,
                                  const MultiSimilarityOptions& options,
                                  MultiSimilarityStats* stats) {
  MEGALOC_CHECK_EQ(embeddings.dim(), 2);
  MEGALOC_CHECK_EQ(labels.dim(), 1);
  MEGALOC_CHECK_EQ(embeddings.size(0), labels.size(0));
  torch::Tensor s = CosineSimilarityMatrix(embeddings);
  torch::Tensor lab = labels.to(s.device());
  MinedPairs pairs = options.use_miner ? MultiSimilarityMine(s, lab, options.miner_epsilon)
                                       : AllPairs(lab);
  if (stats != nullptr) {
    stats->num_positive_pairs = pairs.NumPositive();
    stats->num_negative_pairs = pairs.NumNegative();
    stats->num_anchors_with_pairs = 0;
    if (pairs.NumPositive() + pairs.NumNegative() > 0) {
      stats->num_anchors_with_pairs =
          std::get<0>(torch::_unique(torch::cat({pairs.pos_anchor, pairs.neg_anchor}))).numel();
    }
  }
  return MultiSimilarityLossWithPairs(s, pairs, options);
}

}  // namespace megaloc
