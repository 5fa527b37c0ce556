#include "megaloc/cli/option_manager.h"

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <iostream>

#include "megaloc/util/cpu_share.h"
#include "megaloc/util/file_utils.h"
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

int ParseExitCode(ParseResult result) {
  return result == ParseResult::kHelp ? EXIT_SUCCESS : EXIT_FAILURE;
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

const char* const kOfficialWeightsUrl =
    "https://huggingface.co/gberton/MegaLoc/resolve/main/model.safetensors";

std::string ResolveWeightsPath(const std::string& given) {
  if (!given.empty()) return given;
  const char* env = std::getenv("MEGALOC_WEIGHTS");
  if (env != nullptr && *env != '\0') return env;
  const char* home = std::getenv("HOME");
  if (home != nullptr && *home != '\0') {
    const std::string cached = JoinPaths(JoinPaths(home, ".cache/megaloc"), "model.safetensors");
    if (FileExists(cached)) return cached;
  }
  return "";
}

int ClampThreadCount(const std::string& option, int value) {
  if (value == 0 || value < -1) {
    MEGALOC_THROW(InvalidArgument, "--" << option << " must be -1 (all cores) or >= 1, not " << value);
  }
  const int cores = UsableCores();
  if (value > cores) {
    std::cerr << "WARNING: --" << option << " " << value << " exceeds the " << cores
              << " cores this process may use; using " << cores << std::endl;
    return cores;
  }
  return value;
}

void CheckModelCommandOptions(ModelOptions* options) {
  const std::string& device = options->device;
  bool valid = device == "cpu" || device == "cuda" || device == "auto";
  if (!valid && device.rfind("cuda:", 0) == 0 && device.size() > 5) {
    valid = device.find_first_not_of("0123456789", 5) == std::string::npos;
  }
  if (!valid) {
    MEGALOC_THROW(InvalidArgument, "--device '" << device << "' is not one of cpu, cuda, cuda:N, auto");
  }
  options->num_threads = ClampThreadCount("num_threads", options->num_threads);
}

void AddQueryExpansionOptions(po::options_description& options, QueryExpansionOptions* values,
                              const std::string& note) {
  options.add_options()
      ("qe_num", po::value<int>(&values->qe_num)->default_value(0),
       ("alpha query expansion with the N best (augmented) database neighbours (0 = off; " + note + ")").c_str())
      ("qe_alpha", po::value<float>(&values->qe_alpha)->default_value(3.0f),
       "exponent of the query-expansion weights score^alpha")
      ("dba_num", po::value<int>(&values->dba_num)->default_value(0),
       ("database-side augmentation with the N best database neighbours, before retrieval (0 = off; " + note +
        ")").c_str())
      ("dba_alpha", po::value<float>(&values->dba_alpha)->default_value(3.0f),
       "exponent of the DBA weights score^alpha");
}

void AddModelCommandOptions(po::options_description& options, ModelCommandOptions* values,
                            const ModelCommandHelp& help) {
  const std::string weights_help =
      !help.weights_path.empty()
          ? help.weights_path
          : "MegaLoc checkpoint (model.safetensors or megaloc.torch). Default: $MEGALOC_WEIGHTS, then "
            "~/.cache/megaloc/model.safetensors.";
  const std::string threads_help =
      !help.num_threads.empty() ? help.num_threads : "CPU threads of the network (-1: all cores).";
  options.add_options()
      ("weights_path", po::value<std::string>(&values->weights_path), weights_help.c_str())
      ("device", po::value<std::string>(&values->device)->default_value(values->device),
       "cpu, cuda, cuda:N or auto.")
      ("num_threads", po::value<int>(&values->num_threads)->default_value(values->num_threads),
       threads_help.c_str())
      ("bf16", po::bool_switch(&values->bf16),
       "bfloat16 autocast for the transformer (CPU with AVX512-BF16 or AMX, or CUDA; elsewhere float32 "
       "runs and a warning says so); descriptors differ slightly from float32 (recorded in the file).")
      ("fast_aggregation", po::bool_switch(&values->fast_aggregation),
       "SALAD aggregation as one batched matmul: faster, less memory with batches; differs by float "
       "rounding only (<= ~2e-7).")
      ("batch_size", po::value<int>(&values->batch_size)->default_value(values->batch_size),
       "Images per forward pass (only images of equal preprocessed size are batched).")
      ("num_workers", po::value<int>(&values->num_workers)->default_value(values->num_workers),
       "Image decoding threads.");
}

void ApplyModelCommandOptions(const ModelCommandOptions& values, ModelOptions* model, int* batch_size,
                              int* num_workers) {
  if (values.batch_size < 1) MEGALOC_THROW(InvalidArgument, "--batch_size must be >= 1");
  if (values.num_workers < 1) MEGALOC_THROW(InvalidArgument, "--num_workers must be >= 1");
  model->weights_path = ResolveWeightsPath(values.weights_path);
  model->device = values.device;
  model->num_threads = values.num_threads;
  model->use_bf16 = values.bf16;
  model->fast_aggregation = values.fast_aggregation;
  CheckModelCommandOptions(model);
  if (batch_size != nullptr) *batch_size = values.batch_size;
  if (num_workers != nullptr) *num_workers = ClampThreadCount("num_workers", values.num_workers);
}

void AddPreprocessingOptions(po::options_description& options,
                             int* resize_max,
                             std::vector<int>* resize,
                             bool* native,
                             const PreprocessingOptions& defaults) {
  if (defaults.mode == ResizeMode::kResizeMax) {
    options.add_options()
        ("resize_max", po::value<int>(resize_max)->default_value(defaults.resize_max),
         "Downscale so the longest side is at most this (hloc's megaloc conf; never upscales).");
  } else {
    options.add_options()
        ("resize_max", po::value<int>(resize_max),
         "Downscale so the longest side is at most this (hloc's megaloc conf is 1024; never "
         "upscales).");
  }
  const std::string fixed_default = defaults.mode == ResizeMode::kFixed
                                        ? " Default: " + std::to_string(defaults.width) + " " +
                                              std::to_string(defaults.height) + "."
                                        : "";
  const std::string native_default = defaults.mode == ResizeMode::kNative ? " This is the default." : "";
  options.add_options()
      ("resize", po::value<std::vector<int>>(resize)->multitoken(),
       ("Resize every image to W H (e.g. 322 322, the paper's evaluation size)." + fixed_default).c_str())
      ("native", po::bool_switch(native), ("No resize (the authors' default path)." + native_default).c_str())
      ("max_image_pixels", po::value<int64_t>()->default_value(defaults.max_image_pixels),
       "Refuse images with more pixels than this (checked from the file header before decoding; "
       "PIL's limit; 0: no limit).");
}

namespace {

// --resize_max / --resize / --native.
PreprocessingOptions ResolveResizeOptions(const po::variables_map& vm,
                                          int resize_max,
                                          const std::vector<int>& resize,
                                          bool native,
                                          const PreprocessingOptions& defaults) {
  const bool resize_max_given = vm.count("resize_max") && !vm["resize_max"].defaulted();
  const int num_modes = (resize_max_given ? 1 : 0) + (vm.count("resize") ? 1 : 0) + (native ? 1 : 0);
  if (num_modes > 1) {
    MEGALOC_THROW(InvalidArgument, "use only one of --resize_max, --resize W H and --native");
  }
  if (num_modes == 0 && defaults.mode != ResizeMode::kResizeMax) return defaults;
  PreprocessingOptions options;
  if (vm.count("resize")) {
    if (resize.size() != 2 || resize[0] <= 0 || resize[1] <= 0) {
      MEGALOC_THROW(InvalidArgument, "--resize expects two positive integers W H");
    }
    options.mode = ResizeMode::kFixed;
    options.width = resize[0];
    options.height = resize[1];
  } else if (native) {
    options.mode = ResizeMode::kNative;
  } else {
    if (resize_max <= 0) MEGALOC_THROW(InvalidArgument, "--resize_max must be positive");
    options.mode = ResizeMode::kResizeMax;
    options.resize_max = resize_max;
  }
  return options;
}

}  // namespace

PreprocessingOptions ResolvePreprocessingOptions(const po::variables_map& vm,
                                                 int resize_max,
                                                 const std::vector<int>& resize,
                                                 bool native,
                                                 const PreprocessingOptions& defaults) {
  const int64_t max_image_pixels =
      vm.count("max_image_pixels") ? vm["max_image_pixels"].as<int64_t>() : defaults.max_image_pixels;
  if (max_image_pixels < 0) MEGALOC_THROW(InvalidArgument, "--max_image_pixels must be >= 0");
  PreprocessingOptions resolved = ResolveResizeOptions(vm, resize_max, resize, native, defaults);
  resolved.max_image_pixels = max_image_pixels;
  if (resolved.mode == ResizeMode::kFixed && max_image_pixels > 0 &&
      static_cast<int64_t>(resolved.width) * resolved.height > max_image_pixels) {
    MEGALOC_THROW(InvalidArgument, "--resize " << resolved.width << " " << resolved.height
                                               << " makes images larger than --max_image_pixels "
                                               << max_image_pixels);
  }
  return resolved;
}

}  // namespace megaloc
