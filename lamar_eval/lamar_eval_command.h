#pragma once

namespace megaloc {

// Entry point of `megaloc lamar_eval` (argv[0] = "lamar_eval"); returns the process exit code.
int RunLamarEval(int argc, char** argv);

}  // namespace megaloc
