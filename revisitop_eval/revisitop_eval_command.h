#pragma once

namespace megaloc {

// Entry point of `megaloc revisitop_eval` (argv[0] = "revisitop_eval"); returns the process exit code.
int RunRevisitopEval(int argc, char** argv);

}  // namespace megaloc
