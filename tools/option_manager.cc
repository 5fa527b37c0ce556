#include "tools/option_manager.h"

#include <cstdlib>
#include <exception>
#include <iostream>

#include "megaloc/util/logging.h"

namespace megaloc {

ParseResult ParseCommandLine(const std::string& command,
                             const std::string& description,
                             po::options_description& options,
                             int argc,
                             char** argv,
                             po::variables_map* vm,
                             const po::positional_options_description* positional) {
  options.add_options()("help,h", "Print this help and exit.");
  try {
    auto parser = po::command_line_parser(argc, argv).options(options);
    if (positional != nullptr) parser.positional(*positional);
    po::store(parser.run(), *vm);
    if (vm->count("help")) {
      std::cout << "Usage: megaloc " << command << " [options]\n\n" << description << "\n\n"
                << options << std::endl;
      return ParseResult::kHelp;
    }
    po::notify(*vm);
  } catch (const std::exception& e) {
    std::cerr << "ERROR: megaloc " << command << ": " << e.what()
              << " (see `megaloc " << command << " --help`)" << std::endl;
    return ParseResult::kError;
  }
  return ParseResult::kOk;
}

int RunCommandGuarded(const std::function<int()>& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    std::cerr << "ERROR: " << e.what() << std::endl;
    return EXIT_FAILURE;
  }
}

void ParseShard(const std::string& text, int* shard_index, int* num_shards) {
  const size_t slash = text.find('/');
  try {
    if (slash == std::string::npos) throw std::invalid_argument("no slash");
    size_t used = 0;
    *shard_index = std::stoi(text.substr(0, slash), &used);
    if (used != slash) throw std::invalid_argument("bad index");
    const std::string rest = text.substr(slash + 1);
    *num_shards = std::stoi(rest, &used);
    if (used != rest.size()) throw std::invalid_argument("bad count");
  } catch (const std::exception&) {
    MEGALOC_THROW(InvalidArgument, "--shard expects K/N with 1 <= K <= N, got '" << text << "'");
  }
  if (*num_shards < 1 || *shard_index < 1 || *shard_index > *num_shards) {
    MEGALOC_THROW(InvalidArgument, "--shard expects K/N with 1 <= K <= N, got '" << text << "'");
  }
}

}  // namespace megaloc
