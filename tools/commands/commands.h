#pragma once

// Entry points of the `megaloc` subcommands implemented in tools/commands/. Each takes the
// subcommand's own argv (argv[0] = the subcommand name) and returns the process exit code.

namespace megaloc {

int RunExtract(int argc, char** argv);         // tools/commands/extract.cc
int RunMerge(int argc, char** argv);           // tools/commands/merge.cc
int RunPairs(int argc, char** argv);           // tools/commands/pairs.cc
int RunConvertWeights(int argc, char** argv);  // tools/commands/convert_weights.cc
int RunModelInfo(int argc, char** argv);       // tools/commands/convert_weights.cc
int RunTrain(int argc, char** argv);           // tools/commands/train.cc
int RunVprEval(int argc, char** argv);         // tools/commands/vpr_eval.cc

}  // namespace megaloc
