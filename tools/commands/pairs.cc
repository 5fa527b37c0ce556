// Placeholder until the subcommand lands.
#include <cstdlib>
#include <iostream>

namespace megaloc {

int RunPairs(int argc, char** argv) {
  std::cerr << "ERROR: megaloc pairs is not implemented yet" << std::endl;
  return EXIT_FAILURE;
}

}  // namespace megaloc
