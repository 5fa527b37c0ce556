// Placeholder until the subcommand lands.
#include <cstdlib>
#include <iostream>

namespace megaloc {

int RunTrain(int argc, char** argv) {
  std::cerr << "ERROR: megaloc train is not implemented yet" << std::endl;
  return EXIT_FAILURE;
}

}  // namespace megaloc
