#pragma once

// Command-line helpers shared by every `megaloc` subcommand (Boost.Program_options lives only in the
// front ends, never in the core library).

#include <functional>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

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

// Runs `body`, converting any exception into one "ERROR: <what>" line on stderr and EXIT_FAILURE.
int RunCommandGuarded(const std::function<int()>& body);

// Parses "K/N" (1 <= K <= N) for --shard. Throws InvalidArgument otherwise.
void ParseShard(const std::string& text, int* shard_index, int* num_shards);

}  // namespace megaloc
