#pragma once

// Command-line helpers shared by every `megaloc` subcommand (Boost.Program_options lives only in the
// front ends, never in the core library).

#include <functional>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "megaloc/model/megaloc.h"
#include "megaloc/retrieval/pair_graph.h"

namespace megaloc {

namespace po = boost::program_options;

// Result of parsing a subcommand's arguments.
enum class ParseResult {
  kOk,        // run the command
  kHelp,      // --help was printed: exit 0
  kError,     // an error was printed: exit EXIT_FAILURE
};

// Parses argv (argv[0] = subcommand name) against `options`, adding --help. On --help prints
// "Usage: megaloc <command> [options]", the description and the option list to stdout. On a parse
// error (unknown option, missing required option, bad value) prints one "ERROR: ..." line to
// stderr. `positional` may be null.
ParseResult ParseCommandLine(const std::string& command,
                             const std::string& description,
                             po::options_description& options,
                             int argc,
                             char** argv,
                             po::variables_map* vm,
                             const po::positional_options_description* positional = nullptr);

// Exit status for a parse that did not return kOk: EXIT_SUCCESS after --help, EXIT_FAILURE after an
// error. Commands do: `if (parsed != ParseResult::kOk) return ParseExitCode(parsed);`.
int ParseExitCode(ParseResult result);

// Runs `body`, converting any exception into one "ERROR: <what>" line on stderr and EXIT_FAILURE.
int RunCommandGuarded(const std::function<int()>& body);

// Parses "K/N" (1 <= K <= N) for --shard. Throws InvalidArgument otherwise.
void ParseShard(const std::string& text, int* shard_index, int* num_shards);

// Official MegaLoc weights (Hugging Face gberton/MegaLoc), for error messages and scripts.
extern const char* const kOfficialWeightsUrl;

// Checkpoint to use: `given` (--weights_path) if not empty, else $MEGALOC_WEIGHTS, else
// ~/.cache/megaloc/model.safetensors if it exists, else "" (callers that need a model turn that into
// an error mentioning kOfficialWeightsUrl; callers that may find everything cached accept it).
std::string ResolveWeightsPath(const std::string& given);

// Checks --device and --num_threads of a model with plain one-line errors (InvalidArgument naming
// the option) before ModelOptions::Check() would log "[file:line] Check failed"; a thread count
// above the machine's cores is clamped to them with a warning on stderr.
void CheckModelCommandOptions(ModelOptions* options);

// The network options of every command that runs the model (extract, vpr_eval, colmap_matcher,
// revisitop_eval, lamar_eval extract), registered by AddModelCommandOptions with the same names,
// defaults and checks everywhere: --weights_path, --device, --num_threads, --bf16,
// --fast_aggregation, --batch_size, --num_workers.
struct ModelCommandOptions {
  std::string weights_path;   // "" = ResolveWeightsPath's default
  std::string device = "cpu";
  int num_threads = -1;       // -1 = all cores
  bool bf16 = false;
  bool fast_aggregation = false;
  int batch_size = 1;
  int num_workers = 2;        // image decoding threads
};

// Help texts that differ between commands ("" = the common text).
struct ModelCommandHelp {
  std::string weights_path;
  std::string num_threads;
};

void AddModelCommandOptions(po::options_description& options, ModelCommandOptions* values,
                            const ModelCommandHelp& help = ModelCommandHelp());

// Registers --qe_num, --qe_alpha, --dba_num and --dba_alpha (αQE and DBA of retrieval/pair_graph.h,
// defaults 0 = off and alpha 3) bound to *values; `note` ends the two count options' help, e.g.
// "SfM mode". Check the values with ThrowIfInvalid(QueryExpansionOptions) after parsing.
void AddQueryExpansionOptions(po::options_description& options, QueryExpansionOptions* values,
                              const std::string& note);

// After parsing: checks batch size, worker and thread counts and the device (one-line
// InvalidArgument naming the option; counts above the cores are clamped with a warning), resolves
// the weights (ResolveWeightsPath; "" stays "" for commands that may find everything cached) and
// fills `model`. `batch_size` / `num_workers` receive the checked values when not null.
void ApplyModelCommandOptions(const ModelCommandOptions& values, ModelOptions* model, int* batch_size,
                              int* num_workers);

// `value` of a thread-count option (-1 = all cores, else >= 1): InvalidArgument otherwise; more than
// the cores this process may use (UsableCores, util/cpu_share.h) is clamped to them with a warning.
int ClampThreadCount(const std::string& option, int value);

// Registers --resize_max N, --resize W H (fixed, e.g. 322 322) and --native on `options`, binding
// to *resize_max, *resize and *native. `defaults` is what applies when none of them is given (the
// help text says so): hloc's resize_max=1024 unless a command passes another default.
void AddPreprocessingOptions(po::options_description& options,
                             int* resize_max,
                             std::vector<int>* resize,
                             bool* native,
                             const PreprocessingOptions& defaults = PreprocessingOptions());

// Turns the three mutually exclusive flags into PreprocessingOptions; `defaults` (the same as given
// to AddPreprocessingOptions) when none is given. Throws InvalidArgument when more than one is given
// or a size is not positive.
PreprocessingOptions ResolvePreprocessingOptions(const po::variables_map& vm,
                                                 int resize_max,
                                                 const std::vector<int>& resize,
                                                 bool native,
                                                 const PreprocessingOptions& defaults = PreprocessingOptions());

}  // namespace megaloc
