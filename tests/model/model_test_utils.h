#pragma once

// Helpers of the model tests (LibTorch).

#include <torch/torch.h>

#include <string>

#include "megaloc/model/megaloc_net.h"
#include "megaloc/model/weights.h"
#include "megaloc/util/npy.h"
#include "tests/common/testing.h"

namespace megaloc {
namespace testing {

inline std::string TinyPath(const std::string& relative) {
  return TestDataPath("megaloc_tiny/" + relative);
}

// float32 tensor from a .npy file.
inline torch::Tensor NpyToTensor(const std::string& path) {
  const NpyArray array = ReadNpy(path);
  std::vector<float> values = array.As<float>();
  return torch::from_blob(values.data(), array.shape, torch::kFloat).clone();
}

inline double MaxAbsDiff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

// The tiny fixture network loaded from `weights` (eval mode).
inline MegaLocNet LoadTinyNet(const std::string& weights = "megaloc_tiny_v2.safetensors") {
  const std::string path = TinyPath(weights);
  const TensorMap canonical = CanonicalizeMegaLocKeys(ReadTensorFile(path), path);
  MegaLocNet net(InferNetConfig(canonical, ReadNumHeadsFromConfigJson(path)));
  LoadStateDictStrict(*net, canonical, path);
  net->eval();
  return net;
}

}  // namespace testing
}  // namespace megaloc
