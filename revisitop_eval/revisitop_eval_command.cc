// Placeholder until the subcommand lands.
#include <cstdlib>
#include <iostream>

namespace megaloc {

int RunRevisitopEval(int argc, char** argv) {
  std::cerr << "ERROR: megaloc revisitop_eval is not implemented yet" << std::endl;
  return EXIT_FAILURE;
}

}  // namespace megaloc
