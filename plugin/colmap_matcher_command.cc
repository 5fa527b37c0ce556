// Placeholder until the subcommand lands.
#include <cstdlib>
#include <iostream>

namespace megaloc {

int RunColmapMatcher(int argc, char** argv) {
  std::cerr << "ERROR: megaloc colmap_matcher is not implemented yet" << std::endl;
  return EXIT_FAILURE;
}

}  // namespace megaloc
