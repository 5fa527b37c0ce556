#include "tests/retrieval/pairs_test_utils.h"

#include <random>

#include <Eigen/Core>

#include "megaloc/io/descriptor_store.h"
#include "megaloc/util/file_utils.h"
#include "tests/common/testing.h"

namespace megaloc {
namespace testing {

void WriteRandomDescriptors(const std::string& path,
                            const std::vector<std::string>& names,
                            int dim,
                            uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kCreate);
  for (const auto& name : names) {
    Eigen::VectorXf v(dim);
    for (int d = 0; d < dim; ++d) v(d) = normal(rng);
    v.normalize();
    file->Write(name, v.data(), dim, 320, 240, DescriptorDtype::kFloat16);
  }
  file->Flush();
}

int RunPairsCommand(const std::string& args, std::string* output) {
  const std::string log = JoinPaths(TempDir(), "pairs_command.log");
  const int rc = RunShell("'" + MegalocExecutable() + "' pairs " + args + " > '" + log + "' 2>&1");
  *output = FileExists(log) ? ReadFileToString(log) : "";
  return rc;
}

}  // namespace testing
}  // namespace megaloc
