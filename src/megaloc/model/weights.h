#pragma once

// INTERNAL header of the model library (uses at::Tensor): checkpoint files.
//
//  * safetensors (the official v2 `model.safetensors`): reader (F32/F16/BF16/F64 -> float32, plus
//    integer dtypes kept as is) and writer (F32, sorted names, metadata {"format": "pt"}).
//  * torch.save zip files (the v1 release `megaloc.torch`, DINOv2's `dinov2_vitb14_pretrain.pth`):
//    reader built on LibTorch's PyTorchStreamReader plus a small pickle interpreter for the
//    state-dict subset (OrderedDict / dict of `_rebuild_tensor_v2` tensors), and a writer that
//    produces the same layout as Python's torch.save of an OrderedDict.
//  * The MegaLoc loader rule: strip `module.`, map `backbone.model.` -> `backbone.`, drop
//    `backbone.model.mask_token`, then a strict key/shape check against the network.
//
// Every error is a FormatError / IoError whose message starts with the file path.

#include <ATen/ATen.h>

#include <map>
#include <string>
#include <vector>

namespace megaloc {

struct NetConfig;
class MegaLocNetImpl;

// Tensors by name (sorted). Tensors are CPU, contiguous, owning their memory.
using TensorMap = std::map<std::string, at::Tensor>;

enum class WeightsFormat {
  kSafetensors,
  kTorchZip,
};

// "safetensors" / "torch-zip".
std::string WeightsFormatName(WeightsFormat format);

// Detects the format from the first bytes of the file (zip local header -> torch-zip; plausible
// safetensors header -> safetensors). Throws IoError if unreadable, FormatError otherwise
// (including the legacy non-zip torch.save format, which is not supported).
WeightsFormat DetectWeightsFormat(const std::string& path);

// Reads every tensor of a safetensors file. Floating dtypes (F16, BF16, F32, F64) become float32;
// I64/I32/U8/BOOL keep their dtype. `metadata` receives "__metadata__" if not null. Validates the
// header (JSON, dtypes, shapes vs. byte ranges, offsets inside the file, no overlaps/gaps beyond
// the data section) and throws FormatError naming the file and the offending tensor.
TensorMap ReadSafetensors(const std::string& path,
                          std::map<std::string, std::string>* metadata = nullptr);

// Reads the tensors of a torch.save zip file whose top-level object is a dict or OrderedDict of
// tensors (also accepts {"state_dict": {...}} / {"model": {...}} wrappers). Floating tensors
// become float32. Throws FormatError naming the file and the reason.
TensorMap ReadTorchZip(const std::string& path);

// Either reader, chosen by DetectWeightsFormat. The raw name -> tensor map, keys as stored (e.g.
// DINOv2's `dinov2_vitb14_pretrain.pth` keys without any prefix).
TensorMap ReadTensorFile(const std::string& path, WeightsFormat* format = nullptr);

// Writes float32/int tensors as safetensors (names sorted, data in that order, 8-byte aligned
// header padded with spaces), atomically through WriteFileAtomically (path.tmp + fsync + rename;
// IoError with the system's reason on a failed write, no .tmp left; devices and FIFOs refused).
void WriteSafetensors(const std::string& path,
                      const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// Writes a torch.save-compatible zip (pickle protocol 2, top-level collections.OrderedDict of
// `torch._utils._rebuild_tensor_v2` tensors, one storage record per tensor, `version` = 3), as
// Python's torch.save(state_dict, path) does; readable by Python torch.load and ReadTorchZip.
void WriteTorchZip(const std::string& path, const TensorMap& tensors);

// Applies the MegaLoc key rule to a raw map: strip a leading `module.`, `backbone.model.` ->
// `backbone.`, drop `backbone.mask_token` / `backbone.model.mask_token`. Keys are otherwise kept.
// Two raw keys mapping to the same name is a FormatError naming `path`.
TensorMap CanonicalizeMegaLocKeys(const TensorMap& raw, const std::string& path = "");

// Architecture from canonical (v2) tensor shapes. Dimensions whose tensors are missing keep the
// official defaults (the strict check then reports the missing keys). `num_heads` > 0 is used as
// is, else embed_dim / 64.
NetConfig InferNetConfig(const TensorMap& canonical, int num_heads);

// "num_heads" from `config.json` in the directory of the weights file; -1 if absent/unreadable.
int ReadNumHeadsFromConfigJson(const std::string& weights_path);

// The state dict of a network (parameters and buffers, v2 names), detached CPU float32 copies
// sharing nothing with the network.
TensorMap NetStateDict(MegaLocNetImpl& net);

// Strict load: every parameter of `net` must be present with the same shape and no other key may
// exist; otherwise ONE FormatError "<path>: checkpoint does not match the MegaLoc architecture
// (<config>): missing keys [...]; unexpected keys [...]; mis-shaped keys [name: file [..] vs
// model [..], ...]". Copies values into the network's parameters (no grad); with `share_memory`
// the parameters adopt the map's (contiguous float32 CPU) tensors instead of copying them, which
// halves peak memory and page faults while loading (the map's tensors then alias the network).
void LoadStateDictStrict(MegaLocNetImpl& net, const TensorMap& canonical,
                         const std::string& path, bool share_memory = false);

// What ConvertMegaLocCheckpoint did.
struct ConversionStats {
  WeightsFormat input_format = WeightsFormat::kSafetensors;
  int64_t num_tensors = 0;      // written (v2 keys)
  int64_t num_parameters = 0;   // elements
  std::string architecture;     // NetConfig::ToString()
  std::string output_sha256;
};

// Reads a MegaLoc checkpoint in any supported form (v1 .torch, v2 safetensors, `module.` prefixed),
// validates it with the strict loader (num_heads as for MegaLocModel: > 0, else config.json
// beside the input, else embed_dim / 64) and writes it as float32 safetensors with the v2 key
// names. Throws FormatError / IoError naming the file.
ConversionStats ConvertMegaLocCheckpoint(const std::string& input_path,
                                         const std::string& output_path, int num_heads = -1);

}  // namespace megaloc
