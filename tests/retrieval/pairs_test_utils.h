#pragma once

// Helpers shared by the tests that run the built `megaloc pairs` executable.

#include <cstdint>
#include <string>
#include <vector>

namespace megaloc {
namespace testing {

// Writes random unit descriptors (float16, image size 320x240) for `names` to a new hloc-layout file.
void WriteRandomDescriptors(const std::string& path,
                            const std::vector<std::string>& names,
                            int dim,
                            uint32_t seed);

// Runs `megaloc pairs <args>`, capturing stdout+stderr into *output; returns the exit status.
int RunPairsCommand(const std::string& args, std::string* output);

}  // namespace testing
}  // namespace megaloc
