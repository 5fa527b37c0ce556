#include "megaloc/eval/revisitop/revisitop_metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_set>

#include "megaloc/util/logging.h"

namespace megaloc {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Sorted positions in `list` of the ids contained in `ids` (numpy in1d semantics).
std::vector<int64_t> PositionsOf(const std::vector<int64_t>& list, const std::vector<int64_t>& ids) {
  std::vector<int64_t> sorted_ids(ids);
  std::sort(sorted_ids.begin(), sorted_ids.end());
  std::vector<int64_t> positions;
  for (size_t r = 0; r < list.size(); ++r) {
    if (std::binary_search(sorted_ids.begin(), sorted_ids.end(), list[r])) {
      positions.push_back(static_cast<int64_t>(r));
    }
  }
  return positions;
}

}  // namespace

double ComputeRevisitopAp(const std::vector<int64_t>& positive_ranks, int64_t num_positives) {
  MEGALOC_CHECK_GT(num_positives, 0);
  // Same operation order as the official code, so results agree to the last bit.
  double ap = 0.0;
  const double recall_step = 1.0 / static_cast<double>(num_positives);
  for (size_t j = 0; j < positive_ranks.size(); ++j) {
    const int64_t rank = positive_ranks[j];
    const double precision_0 =
        rank == 0 ? 1.0 : static_cast<double>(j) / static_cast<double>(rank);
    const double precision_1 = static_cast<double>(j + 1) / static_cast<double>(rank + 1);
    ap += (precision_0 + precision_1) * recall_step / 2.0;
  }
  return ap;
}

RevisitopMapResult ComputeRevisitopMap(const std::vector<std::vector<int64_t>>& ranks,
                                       const std::vector<RevisitopQueryLabels>& labels,
                                       const std::vector<int>& kappas) {
  MEGALOC_CHECK_MSG(ranks.size() == labels.size(),
                    "the ranking has " << ranks.size() << " queries but the ground truth has "
                                       << labels.size());
  for (const int k : kappas) MEGALOC_CHECK_MSG(k >= 1, "kappa must be >= 1, got " << k);

  const size_t nq = labels.size();
  RevisitopMapResult result;
  result.kappas = kappas;
  result.aps.assign(nq, kNaN);
  result.precision_at_k.assign(nq, std::vector<double>(kappas.size(), kNaN));
  result.mean_precision_at_k.assign(kappas.size(), 0.0);

  double map_sum = 0.0;
  for (size_t i = 0; i < nq; ++i) {
    const RevisitopQueryLabels& query = labels[i];
    if (query.ok.empty()) {
      ++result.nempty;
      continue;
    }
    std::vector<int64_t> pos = PositionsOf(ranks[i], query.ok);
    const std::vector<int64_t> junk = PositionsOf(ranks[i], query.junk);

    // Each positive moves up by the number of junk positions strictly before it.
    size_t k = 0;
    size_t ij = 0;
    for (size_t ip = 0; ip < pos.size(); ++ip) {
      while (ij < junk.size() && pos[ip] > junk[ij]) {
        ++k;
        ++ij;
      }
      pos[ip] -= static_cast<int64_t>(k);
    }

    const double ap = ComputeRevisitopAp(pos, static_cast<int64_t>(query.ok.size()));
    map_sum = map_sum + ap;
    result.aps[i] = ap;

    // P@k with 1-based ranks; kq = min(rank of the last positive, k).
    for (size_t j = 0; j < kappas.size(); ++j) {
      double p = 0.0;
      if (!pos.empty()) {
        const int64_t max_rank = pos.back() + 1;  // pos is sorted
        const int64_t kq = std::min<int64_t>(max_rank, kappas[j]);
        int64_t hits = 0;
        for (const int64_t r : pos) hits += (r + 1 <= kq) ? 1 : 0;
        p = static_cast<double>(hits) / static_cast<double>(kq);
      }
      result.precision_at_k[i][j] = p;
      result.mean_precision_at_k[j] = result.mean_precision_at_k[j] + p;
    }
  }

  result.nvalid = static_cast<int>(nq) - result.nempty;
  if (result.nvalid == 0) {
    result.map = kNaN;
    std::fill(result.mean_precision_at_k.begin(), result.mean_precision_at_k.end(), kNaN);
  } else {
    const double denominator = static_cast<double>(result.nvalid);
    result.map = map_sum / denominator;
    for (double& p : result.mean_precision_at_k) p = p / denominator;
  }
  return result;
}

std::string RevisitopSetupName(RevisitopSetup setup) {
  switch (setup) {
    case RevisitopSetup::kEasy: return "easy";
    case RevisitopSetup::kMedium: return "medium";
    case RevisitopSetup::kHard: return "hard";
  }
  return "?";
}

std::vector<RevisitopQueryLabels> RevisitopSetupLabels(const std::vector<RevisitopQueryGnd>& gnd,
                                                       RevisitopSetup setup) {
  auto concat = [](const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
    std::vector<int64_t> out(a);
    out.insert(out.end(), b.begin(), b.end());
    return out;
  };
  std::vector<RevisitopQueryLabels> labels(gnd.size());
  for (size_t i = 0; i < gnd.size(); ++i) {
    const RevisitopQueryGnd& g = gnd[i];
    switch (setup) {
      case RevisitopSetup::kEasy:
        labels[i].ok = g.easy;
        labels[i].junk = concat(g.junk, g.hard);
        break;
      case RevisitopSetup::kMedium:
        labels[i].ok = concat(g.easy, g.hard);
        labels[i].junk = g.junk;
        break;
      case RevisitopSetup::kHard:
        labels[i].ok = g.hard;
        labels[i].junk = concat(g.junk, g.easy);
        break;
    }
  }
  return labels;
}

RevisitopEvaluation EvaluateRevisitop(const std::vector<std::vector<int64_t>>& ranks,
                                      const std::vector<RevisitopQueryGnd>& gnd,
                                      const std::vector<int>& kappas) {
  RevisitopEvaluation evaluation;
  for (int s = 0; s < 3; ++s) {
    const auto setup = static_cast<RevisitopSetup>(s);
    evaluation.setups[s] = ComputeRevisitopMap(ranks, RevisitopSetupLabels(gnd, setup), kappas);
  }
  return evaluation;
}

std::vector<std::vector<int64_t>> RanksFromOfficialLayout(const std::vector<int64_t>& data,
                                                          int64_t num_rows,
                                                          int64_t num_queries) {
  MEGALOC_CHECK(num_rows >= 0 && num_queries >= 0);
  MEGALOC_CHECK_EQ(static_cast<int64_t>(data.size()), num_rows * num_queries);
  std::vector<std::vector<int64_t>> ranks(static_cast<size_t>(num_queries),
                                          std::vector<int64_t>(static_cast<size_t>(num_rows)));
  for (int64_t r = 0; r < num_rows; ++r) {
    for (int64_t q = 0; q < num_queries; ++q) {
      ranks[q][r] = data[r * num_queries + q];
    }
  }
  return ranks;
}

void CheckRevisitopRanks(const std::vector<std::vector<int64_t>>& ranks, int64_t max_id) {
  for (size_t q = 0; q < ranks.size(); ++q) {
    std::unordered_set<int64_t> seen;
    seen.reserve(ranks[q].size());
    for (size_t r = 0; r < ranks[q].size(); ++r) {
      const int64_t id = ranks[q][r];
      if (id < 0 || (max_id >= 0 && id >= max_id)) {
        MEGALOC_THROW(InvalidArgument, "ranked list of query " << q << ": id " << id
                                           << " at rank " << r << " is out of range [0, "
                                           << max_id << ")");
      }
      if (!seen.insert(id).second) {
        MEGALOC_THROW(InvalidArgument, "ranked list of query "
                                           << q << ": id " << id << " appears twice (rank " << r
                                           << "); lists must not repeat ids");
      }
    }
  }
}

}  // namespace megaloc
