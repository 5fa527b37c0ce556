// Full-size MegaLoc (ViT-B/14 12x768, SALAD 64x256, 8448-d) with random weights: parameter count,
// both checkpoint formats at 915 MB, identical descriptors after reloading. Label `slow`.

#include <gtest/gtest.h>

#include "megaloc/model/megaloc.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/timer.h"
#include "tests/model/model_test_utils.h"

namespace megaloc {
namespace testing {
namespace {

TEST(FullSizeTest, RandomCheckpointRoundTripsThroughBothFormats) {
  at::set_num_threads(1);
  const NetConfig config;  // official architecture
  MegaLocNet net(config);
  ASSERT_EQ(CountParameters(*net), 228639553);
  {
    torch::NoGradGuard no_grad;
    torch::manual_seed(0);
    net->backbone->cls_token.normal_(0.0, 0.5);
    net->backbone->pos_embed.normal_(0.0, 0.5);
    for (auto& item : net->named_parameters()) {
      if (item.key().find(".ls") != std::string::npos) item.value().uniform_(0.05, 0.5);
    }
    net->aggregator->agg->dust_bin.fill_(1.2);
  }
  net->eval();
  TensorMap state;
  for (const auto& item : net->named_parameters()) state[item.key()] = item.value().detach();
  EXPECT_EQ(state.size(), 189u);

  const std::string dir = TempDir();
  const std::string st_path = JoinPaths(dir, "full.safetensors");
  const std::string zip_path = JoinPaths(dir, "full.torch");
  WriteSafetensors(st_path, state);
  WriteTorchZip(zip_path, state);
  state.clear();

  torch::manual_seed(1);
  const torch::Tensor input = torch::randn({1, 3, 224, 224});
  torch::Tensor reference;
  {
    c10::InferenceMode guard;
    reference = net->forward(input);
  }
  ASSERT_EQ(reference.size(1), 8448);
  net = nullptr;  // free 915 MB before reloading

  PreprocessedImage image;
  image.width = image.original_width = 224;
  image.height = image.original_height = 224;
  image.data.assign(input.data_ptr<float>(), input.data_ptr<float>() + input.numel());
  for (const std::string& path : {st_path, zip_path}) {
    Timer timer;
    ModelOptions options;
    options.weights_path = path;
    options.num_threads = 1;
    MegaLocModel model(options);
    const double load_seconds = timer.ElapsedSeconds();
    const ModelInfo& info = model.Info();
    EXPECT_EQ(info.num_parameters, 228639553);
    EXPECT_EQ(info.embed_dim, 768);
    EXPECT_EQ(info.depth, 12);
    EXPECT_EQ(info.num_heads, 12);  // embed_dim / 64 (no config.json)
    EXPECT_EQ(info.num_clusters, 64);
    EXPECT_EQ(info.salad_dim, 16640);
    EXPECT_EQ(info.descriptor_dim, 8448);
    EXPECT_EQ(info.weights_format, path == st_path ? "safetensors" : "torch-zip");
    const Eigen::VectorXf descriptor = model.Extract(image);
    float max_diff = 0.0f;
    for (int i = 0; i < 8448; ++i) {
      max_diff = std::max(max_diff, std::abs(descriptor[i] - reference[0][i].item<float>()));
    }
    std::printf("[full] %s: load %.1f s, descriptor max|diff| vs in-memory net = %g\n",
                info.weights_format.c_str(), load_seconds, max_diff);
    EXPECT_EQ(max_diff, 0.0f) << path;
    EXPECT_NEAR(descriptor.norm(), 1.0f, 1e-5);
  }
}

}  // namespace
}  // namespace testing
}  // namespace megaloc
