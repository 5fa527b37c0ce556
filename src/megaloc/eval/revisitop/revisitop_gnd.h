#pragma once

// Ground truth of Revisited Oxford/Paris (gnd_<dataset>.pkl of filipradenovic/revisitop).
//
// The official file is a pickled dict {imlist, qimlist, gnd}: `imlist` / `qimlist` are the database
// and query image names without extension, `gnd[i]` = {bbx: [x1, y1, x2, y2] (0-based pixels),
// easy: [ids], hard: [ids], junk: [ids]} with 0-based ids into `imlist`. The same structure is read
// from a JSON export (e.g. `json.dump(pickle.load(f), out)`). Lists may also be NumPy arrays.

#include <string>
#include <vector>

#include "megaloc/eval/revisitop/revisitop_metrics.h"
#include "megaloc/util/pickle.h"

namespace megaloc {

struct RevisitopGroundTruth {
  // Database image names, without extension (index = database id).
  std::vector<std::string> imlist;
  // Query image names, without extension.
  std::vector<std::string> qimlist;
  // One annotation per query.
  std::vector<RevisitopQueryGnd> gnd;
};

// Reads a ground-truth file: pickle (any protocol; detected by content) or JSON. Validates that
// gnd and qimlist have the same length, that every id is within imlist, and that each query has a
// 4-value bbx. Throws IoError / FormatError naming the file, the query and the reason.
RevisitopGroundTruth ReadRevisitopGroundTruth(const std::string& path);

// Interprets an already parsed pickle value (`source` names it in errors).
RevisitopGroundTruth RevisitopGroundTruthFromPickle(const PickleValue& root,
                                                    const std::string& source);

}  // namespace megaloc
