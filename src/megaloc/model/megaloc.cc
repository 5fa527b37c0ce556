// MegaLocModel (megaloc.h): checkpoint loading, device/thread selection and batched inference.

#include <torch/torch.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <cmath>
#include <cstring>
#include <sstream>
#include <thread>

#include "megaloc/model/megaloc.h"
#include "megaloc/model/autocast.h"
#include "megaloc/model/megaloc_net.h"
#include "megaloc/model/weights.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/sha256.h"

namespace megaloc {

namespace {

bool IsValidDevice(const std::string& device) {
  if (device == "cpu" || device == "cuda" || device == "auto") return true;
  if (device.rfind("cuda:", 0) != 0 || device.size() == 5) return false;
  for (size_t i = 5; i < device.size(); ++i) {
    if (device[i] < '0' || device[i] > '9') return false;
  }
  return true;
}

torch::Device ResolveDevice(const std::string& device) {
  if (device == "cpu") return torch::Device(torch::kCPU);
  if (device == "auto") {
    return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  }
  if (!torch::cuda::is_available()) {
    MEGALOC_THROW(InvalidArgument, "device '" << device
                                              << "' requested but CUDA is not available (this "
                                                 "LibTorch build or machine has no CUDA device)");
  }
  const int index = device == "cuda" ? 0 : std::stoi(device.substr(5));
  if (index >= static_cast<int>(torch::cuda::device_count())) {
    MEGALOC_THROW(InvalidArgument, "device '" << device << "' does not exist ("
                                              << torch::cuda::device_count()
                                              << " CUDA devices)");
  }
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

}  // namespace

CpuBf16Support DetectCpuBf16Support() {
  CpuBf16Support support;
#if defined(__x86_64__) || defined(__i386__)
  unsigned int eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(0x80000000, &eax, &ebx, &ecx, &edx) && eax >= 0x80000004) {
    char brand[49] = {};
    for (unsigned int leaf = 0; leaf < 3; ++leaf) {
      __get_cpuid(0x80000002 + leaf, &eax, &ebx, &ecx, &edx);
      std::memcpy(brand + 16 * leaf, &eax, 4);
      std::memcpy(brand + 16 * leaf + 4, &ebx, 4);
      std::memcpy(brand + 16 * leaf + 8, &ecx, 4);
      std::memcpy(brand + 16 * leaf + 12, &edx, 4);
    }
    support.cpu_model = brand;
    const size_t first = support.cpu_model.find_first_not_of(' ');
    support.cpu_model = first == std::string::npos ? "" : support.cpu_model.substr(first);
  }
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & (1u << 27))) return support;  // OSXSAVE
  unsigned int xcr0_low = 0, xcr0_high = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
  const bool avx512_state = (xcr0_low & 0xE6) == 0xE6;             // SSE, AVX, opmask, ZMM
  const bool amx_state = (xcr0_low & (3u << 17)) == (3u << 17);    // XTILECFG, XTILEDATA
  unsigned int max_leaf = 0;
  __get_cpuid(0, &max_leaf, &ebx, &ecx, &edx);
  if (max_leaf < 7) return support;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  const unsigned int max_subleaf = eax;
  const bool avx512f = (ebx & (1u << 16)) != 0;
  support.amx_bf16 = amx_state && (edx & (1u << 22)) != 0;
  if (max_subleaf >= 1) {
    __cpuid_count(7, 1, eax, ebx, ecx, edx);
    support.avx512_bf16 = avx512_state && avx512f && (eax & (1u << 5)) != 0;
  }
#endif
  return support;
}

void ModelInputSize(int width, int height, int* model_width, int* model_height) {
  if (width % 14 != 0 || height % 14 != 0) {
    *model_width = static_cast<int>(RoundToMultiple(width, 14));
    *model_height = static_cast<int>(RoundToMultiple(height, 14));
  } else {
    *model_width = width;
    *model_height = height;
  }
}

bool ModelOptions::Check() const {
  CHECK_OPTION(!weights_path.empty());
  CHECK_OPTION(num_heads == -1 || num_heads > 0);
  CHECK_OPTION(num_threads == -1 || num_threads > 0);
  CHECK_OPTION(IsValidDevice(device));
  return true;
}

bool UsesBf16(const ModelOptions& options) {
  if (!options.use_bf16) return false;
  const bool cuda = options.device.rfind("cuda", 0) == 0 ||
                    (options.device == "auto" && torch::cuda::is_available());
  return cuda || DetectCpuBf16Support().Native();
}

MegaLocModel::MegaLocModel(const ModelOptions& options) : impl_(std::make_unique<Impl>()) {
  if (!options.Check()) {
    MEGALOC_THROW(InvalidArgument, "invalid model options (weights_path='"
                                       << options.weights_path << "', device='" << options.device
                                       << "', num_threads=" << options.num_threads
                                       << ", num_heads=" << options.num_heads << ")");
  }
  impl_->options = options;
  impl_->forward_options.fast_aggregation = options.fast_aggregation;
  impl_->device = ResolveDevice(options.device);
  if (options.use_bf16 && !impl_->device.is_cuda()) {
    // oneDNN emulates bf16 matmuls without AVX512-BF16/AMX: slower than fp32 (measured).
    const CpuBf16Support cpu = DetectCpuBf16Support();
    if (!cpu.Native()) {
      impl_->options.use_bf16 = false;
      std::ostringstream note;
      note << "--bf16 ignored: this CPU (" << (cpu.cpu_model.empty() ? "unknown" : cpu.cpu_model)
           << ") has no native bf16 matmul (AVX512-BF16 or AMX), where bf16 is slower than "
              "fp32; running fp32";
      impl_->info.precision_note = note.str();
      MEGALOC_LOG(Warning) << impl_->info.precision_note;
    }
  }
  impl_->info.precision = impl_->options.use_bf16 ? "bf16" : "fp32";
  const int threads = options.num_threads > 0 ? options.num_threads : UsableCores();
  if (options.num_threads <= 0 && !impl_->device.is_cuda()) {
    // The first window spans the loading below (single-threaded), so the first forward already
    // runs with the cores the rest of the machine leaves free.
    impl_->governor = std::make_unique<ThreadGovernor>(threads);
    impl_->governor->Update();
  }
  at::set_num_threads(threads);
  impl_->threads = threads;

  const std::string& path = options.weights_path;
  WeightsFormat format = WeightsFormat::kSafetensors;
  TensorMap canonical = CanonicalizeMegaLocKeys(ReadTensorFile(path, &format), path);
  int num_heads = options.num_heads;
  if (num_heads <= 0) num_heads = ReadNumHeadsFromConfigJson(path);
  impl_->config = InferNetConfig(canonical, num_heads);
  if (impl_->config.embed_dim % impl_->config.num_heads != 0) {
    MEGALOC_THROW(FormatError, path << ": embed_dim " << impl_->config.embed_dim
                                    << " is not divisible by num_heads "
                                    << impl_->config.num_heads);
  }
  {
    torch::NoGradGuard no_grad;
    {
      const SkipParameterInit skip;  // every parameter is replaced by the checkpoint's below
      impl_->net = MegaLocNet(impl_->config);
    }
    LoadStateDictStrict(*impl_->net, canonical, path, /*share_memory=*/true);
    canonical.clear();
    impl_->net->eval();
    impl_->net->to(impl_->device);
    if (impl_->options.use_bf16) {
      // Autocast runs every Linear in bf16 and rounds its fp32 weight and bias to bf16 at every
      // forward (its cast cache lives for one autocast scope). Rounding them once here gives the
      // same values (the same round-to-nearest-even cast) without 0.9 GB of conversions per image,
      // and halves their memory. Everything else keeps its fp32 parameters.
      for (const auto& module : impl_->net->modules(/*include_self=*/false)) {
        if (auto* dense = module->as<DenseImpl>()) {
          dense->weight.set_data(dense->weight.to(at::kBFloat16));
          dense->bias.set_data(dense->bias.to(at::kBFloat16));
        }
      }
    }
  }

  ModelInfo& info = impl_->info;
  const NetConfig& config = impl_->config;
  info.embed_dim = static_cast<int>(config.embed_dim);
  info.depth = static_cast<int>(config.depth);
  info.num_heads = static_cast<int>(config.num_heads);
  info.patch_size = static_cast<int>(config.patch_size);
  info.pos_embed_grid = static_cast<int>(config.pos_embed_grid);
  info.num_clusters = static_cast<int>(config.num_clusters);
  info.cluster_dim = static_cast<int>(config.cluster_dim);
  info.token_dim = static_cast<int>(config.token_dim);
  info.salad_dim = static_cast<int>(config.SaladDim());
  info.descriptor_dim = static_cast<int>(config.descriptor_dim);
  info.num_parameters = CountParameters(*impl_->net);
  info.weights_format = WeightsFormatName(format);
  info.weights_sha256 = Sha256File(path);
  info.device = impl_->device.str();
}

MegaLocModel::~MegaLocModel() = default;

const ModelInfo& MegaLocModel::Info() const { return impl_->info; }

int MegaLocModel::DescriptorDim() const { return impl_->info.descriptor_dim; }

bool MegaLocModel::AcceptsSize(int width, int height) const {
  if (width <= 0 || height <= 0) return false;
  int64_t h = 0;
  int64_t w = 0;
  impl_->net->BackboneInputSize(height, width, &h, &w);
  const int64_t patch = impl_->config.patch_size;
  return (h / patch) * (w / patch) > impl_->config.num_clusters;
}

DescriptorMatrix MegaLocModel::Extract(const std::vector<const PreprocessedImage*>& images) {
  MEGALOC_CHECK_MSG(!images.empty(), "Extract needs at least one image");
  const int width = images[0]->width;
  const int height = images[0]->height;
  for (const PreprocessedImage* image : images) {
    MEGALOC_CHECK_MSG(image->width == width && image->height == height,
                      "all images of a batch must have the same size (" << width << "x" << height
                                                                        << " vs " << image->width
                                                                        << "x" << image->height
                                                                        << ")");
    MEGALOC_CHECK_EQ(image->data.size(), static_cast<size_t>(3) * width * height);
  }
  impl_->net->CheckInputSize(height, width);
  const int64_t batch = static_cast<int64_t>(images.size());
  torch::Tensor input = torch::empty({batch, 3, height, width}, torch::kFloat);
  for (int64_t b = 0; b < batch; ++b) {
    std::memcpy(input[b].data_ptr<float>(), images[b]->data.data(),
                images[b]->data.size() * sizeof(float));
  }
  if (impl_->governor != nullptr) {
    const int threads = impl_->governor->Update();
    if (threads != impl_->threads) {
      MEGALOC_LOG(Debug) << "LibTorch threads " << impl_->threads << " -> " << threads << " (other processes used "
                         << impl_->governor->OtherCores() << " cores)";
      at::set_num_threads(threads);
      impl_->threads = threads;
    }
  }
  torch::Tensor output;
  {
    c10::InferenceMode inference_mode;
    input = input.to(impl_->device);
    const Bf16AutocastScope autocast(impl_->options.use_bf16, impl_->device.is_cuda() ? at::kCUDA : at::kCPU);
    output = impl_->net->forward(input, impl_->forward_options);
    output = output.to(torch::kCPU, torch::kFloat).contiguous();
  }
  DescriptorMatrix descriptors(batch, output.size(1));
  std::memcpy(descriptors.data(), output.data_ptr<float>(), output.numel() * sizeof(float));
  return descriptors;
}

Eigen::VectorXf MegaLocModel::Extract(const PreprocessedImage& image) {
  const DescriptorMatrix descriptors = Extract(std::vector<const PreprocessedImage*>{&image});
  return descriptors.row(0).transpose();
}

ModelInfo ConvertCheckpointToSafetensors(const std::string& input_path,
                                         const std::string& output_path, int num_heads,
                                         std::string* input_format) {
  const ConversionStats stats = ConvertMegaLocCheckpoint(input_path, output_path, num_heads);
  if (input_format) *input_format = WeightsFormatName(stats.input_format);
  // Reload the written file with the heads used for the input.
  if (num_heads <= 0) num_heads = ReadNumHeadsFromConfigJson(input_path);
  return ReadCheckpointInfo(output_path, num_heads);
}

ModelInfo ReadCheckpointInfo(const std::string& weights_path, int num_heads) {
  ModelOptions options;
  options.weights_path = weights_path;
  options.num_heads = num_heads;
  options.device = "cpu";
  options.num_threads = std::max(1, at::get_num_threads());
  return MegaLocModel(options).Info();
}

}  // namespace megaloc
