#pragma once

// Metrics of the Revisited Oxford/Paris protocol (Radenovic et al., CVPR 2018), identical to the
// official `compute_ap` / `compute_map` of filipradenovic/revisitop (python/evaluate.py) and to the
// Easy/Medium/Hard setups of python/example_evaluate.py. See docs/evaluation.md.
//
// Ranked lists are given per query (query-major); RanksFromOfficialLayout converts the official
// (n_db x n_q) array, whose column i is the ranked list of query i. Ids >= the database size (e.g.
// R1M distractors) are allowed and are always negatives.

#include <cstdint>
#include <string>
#include <vector>

namespace megaloc {

// Positives and ignored ("junk") database ids of one query in one setup.
struct RevisitopQueryLabels {
  // Positives. Their count (duplicates included, as in the official code) is the AP denominator.
  std::vector<int64_t> ok;
  // Ignored ids: removed from the ranking before AP / P@k (later positions shift up).
  std::vector<int64_t> junk;
};

// Result of ComputeRevisitopMap for one setup. Values are fractions in [0, 1] (not percent).
struct RevisitopMapResult {
  // Mean AP over the non-empty queries (NaN if every query is empty).
  double map = 0.0;
  // Per query AP; NaN for queries without positives.
  std::vector<double> aps;
  // The k values of the mP@k columns.
  std::vector<int> kappas;
  // Mean P@k over the non-empty queries, one per kappa.
  std::vector<double> mean_precision_at_k;
  // precision_at_k[q][j] = P@kappas[j] of query q; NaN for queries without positives.
  std::vector<std::vector<double>> precision_at_k;
  // Number of queries with at least one positive (the denominator of the means).
  int nvalid = 0;
  // Number of queries without positives (excluded).
  int nempty = 0;
};

// Official trapezoid-rule AP: `positive_ranks` are the sorted 0-based ranks of the positives found
// in the (junk-free) ranking, `num_positives` the number of positives (> 0).
double ComputeRevisitopAp(const std::vector<int64_t>& positive_ranks, int64_t num_positives);

// The official compute_map: for each query, positions of ok/junk ids in its ranked list, junk
// shift, trapezoid AP and P@k with the official kq = min(max rank of a positive, k) rule. Queries
// without positives get NaN and are excluded from the means. A query whose positives are all
// absent from a truncated list gets AP = 0 and P@k = 0 (the official code raises there).
// Throws InvalidArgument if ranks.size() != labels.size() or a kappa is < 1.
RevisitopMapResult ComputeRevisitopMap(const std::vector<std::vector<int64_t>>& ranks,
                                       const std::vector<RevisitopQueryLabels>& labels,
                                       const std::vector<int>& kappas);

// The annotation of one query: the three kinds of relevant images.
struct RevisitopQueryGnd {
  // Query bounding box [x1, y1, x2, y2], 0-based pixels (floats as stored).
  double bbx[4] = {0, 0, 0, 0};
  bool has_bbx = false;
  std::vector<int64_t> easy;
  std::vector<int64_t> hard;
  std::vector<int64_t> junk;
};

enum class RevisitopSetup { kEasy = 0, kMedium = 1, kHard = 2 };
// "easy", "medium", "hard".
std::string RevisitopSetupName(RevisitopSetup setup);

// Labels of a setup exactly as example_evaluate.py builds them:
// Easy: ok = easy, junk = junk + hard; Medium: ok = easy + hard, junk = junk;
// Hard: ok = hard, junk = junk + easy.
std::vector<RevisitopQueryLabels> RevisitopSetupLabels(const std::vector<RevisitopQueryGnd>& gnd,
                                                       RevisitopSetup setup);

// E, M and H results of one ranking.
struct RevisitopEvaluation {
  RevisitopMapResult setups[3];  // indexed by RevisitopSetup
  const RevisitopMapResult& Get(RevisitopSetup s) const { return setups[static_cast<int>(s)]; }
};

// Evaluates the three setups with kappas {1, 5, 10} (or the given ones).
RevisitopEvaluation EvaluateRevisitop(const std::vector<std::vector<int64_t>>& ranks,
                                      const std::vector<RevisitopQueryGnd>& gnd,
                                      const std::vector<int>& kappas = {1, 5, 10});

// Converts the official (num_rows x num_queries) C-order array (column q = ranked ids of query q)
// into per-query lists.
std::vector<std::vector<int64_t>> RanksFromOfficialLayout(const std::vector<int64_t>& data,
                                                          int64_t num_rows,
                                                          int64_t num_queries);

// Checks ranked lists: every id >= 0 and < `max_id` (exclusive; -1 = no bound), no id twice in one
// list (a duplicate would count a positive twice). Throws InvalidArgument naming the query.
void CheckRevisitopRanks(const std::vector<std::vector<int64_t>>& ranks, int64_t max_id);

}  // namespace megaloc
