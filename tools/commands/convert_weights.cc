// Placeholder until the subcommand lands.
#include <cstdlib>
#include <iostream>

namespace megaloc {

int RunConvertWeights(int argc, char** argv) {
  std::cerr << "ERROR: megaloc convert_weights is not implemented yet" << std::endl;
  return EXIT_FAILURE;
}

}  // namespace megaloc

namespace megaloc {
int RunModelInfo(int argc, char** argv) {
  std::cerr << "ERROR: megaloc model_info is not implemented yet" << std::endl;
  return EXIT_FAILURE;
}
}  // namespace megaloc
