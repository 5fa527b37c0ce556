// Placeholder until the subcommand lands.
#include <cstdlib>
#include <iostream>

namespace megaloc {

int RunLamarEval(int argc, char** argv) {
  std::cerr << "ERROR: megaloc lamar_eval is not implemented yet" << std::endl;
  return EXIT_FAILURE;
}

}  // namespace megaloc
