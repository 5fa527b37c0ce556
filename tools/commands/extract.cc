// Placeholder until the subcommand lands.
#include <cstdlib>
#include <iostream>

namespace megaloc {

int RunExtract(int argc, char** argv) {
  std::cerr << "ERROR: megaloc extract is not implemented yet" << std::endl;
  return EXIT_FAILURE;
}

}  // namespace megaloc
