// αQE / DBA on the revisitop fixture (issue 13): mAP (E/M/H) of `revisitop_eval`'s ranking with and
// without query expansion and database-side augmentation, through RunRevisitopEvaluation on a
// descriptor cache (no model runs).
//
//   revisitop_expansion_bench <gnd.pkl> [num_seeds=5]     e.g. tests/data/revisitop/gnd_random.pkl
//
// The fixture holds ground truth but no descriptors, so they are synthetic: every query q has a
// random unit "place" p_q (D = 128); a database image is the normalised sum of the places it shows
// (easy: weight 1, hard: 0.5, junk: 0.7) plus Gaussian noise of norm ~sigma; a query descriptor is
// p_q plus the same noise; images related to no query are pure noise. Figures are means over seeds.

#include <cmath>
#include <filesystem>
#include <cstdio>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "megaloc/eval/revisitop/revisitop_eval.h"
#include "megaloc/eval/revisitop/revisitop_gnd.h"
#include "megaloc/io/descriptor_store.h"
#include "megaloc/util/file_utils.h"

using namespace megaloc;

namespace {

constexpr int kDim = 128;

std::vector<float> Noise(std::mt19937& rng, double sigma) {
  std::normal_distribution<float> normal(0.0f, static_cast<float>(sigma / std::sqrt(kDim)));
  std::vector<float> v(kDim);
  for (float& x : v) x = normal(rng);
  return v;
}

void Normalize(std::vector<float>* v) {
  double norm = 0;
  for (float x : *v) norm += x * x;
  for (float& x : *v) x = static_cast<float>(x / std::sqrt(norm));
}

// Writes the cache and the dataset layout (empty image files: revisitop_eval checks they exist).
void WriteDataset(const RevisitopGroundTruth& gt, double sigma, unsigned seed, const std::string& root,
                  const std::string& gnd_path) {
  const std::string dir = JoinPaths(root, "datasets/roxford5k");
  CreateDirectories(JoinPaths(dir, "jpg"));
  WriteFileAtomically(JoinPaths(dir, "gnd_roxford5k.pkl"), ReadFileToString(gnd_path));
  std::mt19937 rng(seed);
  std::vector<std::vector<float>> places(gt.qimlist.size());
  for (auto& p : places) {
    p = Noise(rng, 1.0);
    Normalize(&p);
  }
  std::vector<std::vector<float>> db(gt.imlist.size(), std::vector<float>(kDim, 0.0f));
  for (size_t q = 0; q < gt.gnd.size(); ++q) {
    auto add = [&](const std::vector<int64_t>& ids, float weight) {
      for (int64_t id : ids) {
        for (int d = 0; d < kDim; ++d) db[id][d] += weight * places[q][d];
      }
    };
    add(gt.gnd[q].easy, 1.0f);
    add(gt.gnd[q].hard, 0.5f);
    add(gt.gnd[q].junk, 0.7f);
  }
  const std::string cache = JoinPaths(root, "feats.h5");
  auto file = DescriptorFile::Open(cache, DescriptorFile::Mode::kCreate);
  for (size_t i = 0; i < db.size(); ++i) {
    const std::vector<float> noise = Noise(rng, sigma);
    for (int d = 0; d < kDim; ++d) db[i][d] += noise[d];
    Normalize(&db[i]);
    file->Write(gt.imlist[i] + ".jpg", db[i].data(), kDim, 8, 8, DescriptorDtype::kFloat32);
    WriteFileAtomically(JoinPaths(dir, "jpg/" + gt.imlist[i] + ".jpg"), "");
  }
  for (size_t q = 0; q < gt.qimlist.size(); ++q) {
    std::vector<float> v = places[q];
    const std::vector<float> noise = Noise(rng, sigma);
    for (int d = 0; d < kDim; ++d) v[d] += noise[d];
    Normalize(&v);
    file->Write("query_crop/" + gt.qimlist[q] + ".jpg", v.data(), kDim, 8, 8, DescriptorDtype::kFloat32);
    WriteFileAtomically(JoinPaths(dir, "jpg/" + gt.qimlist[q] + ".jpg"), "");
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: revisitop_expansion_bench <gnd.pkl> [num_seeds]\n";
    return 2;
  }
  const std::string gnd_path = argv[1];
  const int num_seeds = argc > 2 ? std::stoi(argv[2]) : 5;
  try {
    const RevisitopGroundTruth gt = ReadRevisitopGroundTruth(gnd_path);
    struct Variant {
      const char* name;
      int qe_num, dba_num;
    };
    const std::vector<Variant> variants = {{"plain", 0, 0},        {"αQE 1", 1, 0},  {"αQE 2", 2, 0},
                                           {"αQE 5", 5, 0},        {"DBA 1", 0, 1},  {"DBA 2", 0, 2},
                                           {"DBA 2 + αQE 2", 2, 2}};
    std::printf("%s: %zu database images, %zu queries, D = %d, alpha = 3, %d seeds\n\n", gnd_path.c_str(),
                gt.imlist.size(), gt.qimlist.size(), kDim, num_seeds);
    std::printf("| noise sigma | ranking | mAP E | mAP M | mAP H |\n|---|---|---|---|---|\n");
    for (double sigma : {1.2, 1.6}) {
      std::vector<double> sums(variants.size() * 3, 0.0);
      for (int seed = 0; seed < num_seeds; ++seed) {
        const std::string root = CreateTempDirectory("megaloc_qe_bench");
        WriteDataset(gt, sigma, 1000 + seed, root, gnd_path);
        for (size_t v = 0; v < variants.size(); ++v) {
          RevisitopEvalOptions options;
          options.dataset = "roxford5k";
          options.data_root = root;
          options.descriptors_path = JoinPaths(root, "feats.h5");
          options.expansion.qe_num = variants[v].qe_num;
          options.expansion.dba_num = variants[v].dba_num;
          const RevisitopReport report = RunRevisitopEvaluation(options);
          for (int s = 0; s < 3; ++s) sums[v * 3 + s] += report.evaluation.setups[s].map;
        }
        std::filesystem::remove_all(root);
      }
      for (size_t v = 0; v < variants.size(); ++v) {
        std::printf("| %.1f | %s | %.2f | %.2f | %.2f |\n", sigma, variants[v].name,
                    100 * sums[v * 3] / num_seeds, 100 * sums[v * 3 + 1] / num_seeds,
                    100 * sums[v * 3 + 2] / num_seeds);
      }
    }
  } catch (const std::exception& error) {
    std::cerr << "ERROR: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
