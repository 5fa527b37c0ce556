#pragma once

namespace megaloc {

// Entry point of `megaloc colmap_matcher` (argv[0] = "colmap_matcher"); returns the process exit code.
int RunColmapMatcher(int argc, char** argv);

}  // namespace megaloc
