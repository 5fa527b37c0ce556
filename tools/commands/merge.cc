// Placeholder until the subcommand lands.
#include <cstdlib>
#include <iostream>

namespace megaloc {

int RunMerge(int argc, char** argv) {
  std::cerr << "ERROR: megaloc merge is not implemented yet" << std::endl;
  return EXIT_FAILURE;
}

}  // namespace megaloc
