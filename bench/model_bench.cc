// model_bench: CPU time of the full-size MegaLoc forward (random weights; speed does not depend on
// the values) at a fixed input size.
//
//   model_bench [--threads 2] [--size 322 | --height H --width W] [--batch 1] [--iterations 5]
//               [--bf16] [--fast_agg] [--attention auto|plain|blocked|fused] [--query_block N]
//               [--malloc default] [--depth 12] [--openblas_threads N] [--weights_path file]
//
// --depth N < 12 runs only N transformer blocks (random weights): the activation peak of one block
// is the same as in the full model, so it measures memory variants in a fraction of the time.
//
// Prints one line per iteration and the median seconds/image. The first (warm-up) call is reported
// separately. malloc is tuned as in the `megaloc` executable (tools/megaloc.cc).

#include <ATen/autocast_mode.h>
#include <dlfcn.h>
#include <malloc.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "megaloc/model/autocast.h"
#include "megaloc/model/megaloc.h"
#include "megaloc/model/megaloc_net.h"
#include "megaloc/model/weights.h"
#include "megaloc/util/timer.h"

namespace megaloc {
#ifdef MEGALOC_NO_BLAS_SHIM
const char* BlasShimName() { return "system libblas.so.3"; }
#else
const char* BlasShimName();  // tools/blas_shim.cc
#endif
}  // namespace megaloc

namespace {

int IntArg(int argc, char** argv, const char* name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return std::atoi(argv[i + 1]);
  }
  return fallback;
}

bool FlagArg(int argc, char** argv, const char* name) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return true;
  }
  return false;
}

std::string StringArg(int argc, char** argv, const char* name) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  const bool default_malloc = StringArg(argc, argv, "--malloc") == "default";
  if (!default_malloc) {
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    mallopt(M_TOP_PAD, 64 << 20);
  }
  const int threads = IntArg(argc, argv, "--threads", 2);
  const int size = IntArg(argc, argv, "--size", 322);
  const int height = IntArg(argc, argv, "--height", size);
  const int width = IntArg(argc, argv, "--width", size);
  const int batch = IntArg(argc, argv, "--batch", 1);
  const int iterations = IntArg(argc, argv, "--iterations", 5);
  const int openblas_threads = IntArg(argc, argv, "--openblas_threads", -1);
  const bool bf16 = FlagArg(argc, argv, "--bf16");
  megaloc::ForwardOptions forward_options;
  forward_options.fast_aggregation = FlagArg(argc, argv, "--fast_agg");
  const std::string attention = StringArg(argc, argv, "--attention");
  using Kernel = megaloc::ForwardOptions::AttentionKernel;
  if (attention == "plain") forward_options.attention = Kernel::kPlain;
  if (attention == "blocked") forward_options.attention = Kernel::kBlocked;
  if (attention == "fused") forward_options.attention = Kernel::kFused;
  forward_options.attention_query_block = IntArg(argc, argv, "--query_block", 0);
  at::set_num_threads(threads);
  if (openblas_threads > 0) {
    using SetThreads = void (*)(int);
    auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
    if (set) set(openblas_threads);
    std::printf("openblas_set_num_threads(%d): %s\n", openblas_threads, set ? "ok" : "not found");
  }

  megaloc::NetConfig config;
  config.depth = IntArg(argc, argv, "--depth", 12);
  megaloc::MegaLocNet net(config);
  const std::string weights = StringArg(argc, argv, "--weights_path");
  if (!weights.empty()) {
    const megaloc::TensorMap canonical =
        megaloc::CanonicalizeMegaLocKeys(megaloc::ReadTensorFile(weights), weights);
    megaloc::LoadStateDictStrict(*net, canonical, weights);
  }
  net->eval();
  torch::manual_seed(0);
  const torch::Tensor input = torch::randn({batch, 3, height, width});
  std::printf("model_bench: %dx%d, batch %d, %d threads, %s, %s aggregation, attention %s, "
              "malloc %s, BLAS %s, %lld parameters\n",
              width, height, batch, threads, bf16 ? "bf16 autocast" : "fp32",
              forward_options.fast_aggregation ? "bmm" : "repeat+mul+sum",
              attention.empty() ? "auto" : attention.c_str(), default_malloc ? "default" : "tuned",
              megaloc::BlasShimName(),
              static_cast<long long>(megaloc::CountParameters(*net)));
  std::vector<double> seconds;
  torch::Tensor reference;
  for (int i = 0; i <= iterations; ++i) {
    c10::InferenceMode guard;
    megaloc::Timer timer;
    torch::Tensor output;
    {
      megaloc::Bf16AutocastScope autocast(bf16, torch::kCPU);
      output = net->forward(input, forward_options);
    }
    const double elapsed = timer.ElapsedSeconds();
    if (i == 0) {
      reference = output.to(torch::kFloat);
      std::printf("warm-up: %.3f s\n", elapsed);
    } else {
      seconds.push_back(elapsed / batch);
      std::printf("iteration %d: %.3f s (%.3f s/image)\n", i, elapsed, elapsed / batch);
    }
  }
  std::sort(seconds.begin(), seconds.end());
  const double median = seconds.empty() ? 0.0 : seconds[seconds.size() / 2];
  std::printf("median: %.3f s/image (%.2f images/s); peak RSS %.2f GB\n", median,
              median > 0 ? 1.0 / median : 0.0,
              static_cast<double>(megaloc::PeakResidentMemoryBytes()) / 1e9);
  return 0;
}
