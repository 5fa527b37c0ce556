// Trainer: options, freezing, per-sub-batch backward, checkpoints/resume, a tiny learning run.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "megaloc/model/megaloc.h"
#include "megaloc/model/weights.h"
#include "megaloc/train/losses.h"
#include "megaloc/train/trainer.h"
#include "megaloc/train/trainer_internal.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "tests/common/testing.h"
#include "tests/train/synthetic_sources.h"

namespace megaloc {
namespace {

namespace fs = std::filesystem;

// Tiny architecture in the spirit of tests/data/megaloc_tiny/config.json (own random init).
TrainArchitecture TinyArchitecture(int patch = 14, int grid = 4) {
  TrainArchitecture a;
  a.embed_dim = 32;
  a.depth = 2;
  a.num_heads = 2;
  a.patch_size = patch;
  a.pos_embed_grid = grid;
  a.mlp_hidden_dim = 64;
  a.num_clusters = 8;
  a.cluster_dim = 16;
  a.token_dim = 16;
  a.salad_mlp_dim = 32;
  a.descriptor_dim = 32;
  return a;
}

// Place p: a distinct procedural pattern (colour pair, stripe angle and frequency, a blob); each
// image is a jittered view (phase shift, brightness, noise) drawn from `seed`.
cv::Mat PlaceImage(int place, int size, uint64_t seed) {
  std::mt19937 rng(static_cast<uint32_t>(seed * 7919 + place * 104729 + 1));
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const double angle = place * 2.399;  // golden angle
  const double freq = 0.25 + 0.12 * (place % 5);
  const cv::Vec3d c1(40 + (place * 53) % 200, 40 + (place * 97) % 200, 40 + (place * 151) % 200);
  const cv::Vec3d c2(255 - c1[1], 255 - c1[2], 255 - c1[0]);
  const double phase = u(rng) * 2.0, gain = 0.85 + 0.3 * u(rng);
  const double bx = size * (0.2 + 0.6 * ((place * 37) % 11) / 10.0), by = size * (0.2 + 0.6 * ((place * 17) % 7) / 6.0);
  const double dx = (u(rng) - 0.5) * size * 0.1, dy = (u(rng) - 0.5) * size * 0.1;
  cv::Mat img(size, size, CV_8UC3);
  std::normal_distribution<double> noise(0.0, 8.0);
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x) {
      const double s = std::sin(freq * (x * std::cos(angle) + y * std::sin(angle)) + phase);
      const double w = 0.5 + 0.5 * s;
      const bool blob = std::hypot(x - bx - dx, y - by - dy) < size * 0.15;
      for (int c = 0; c < 3; ++c) {
        double v = blob ? 255.0 - c1[c] : (w * c1[c] + (1 - w) * c2[c]);
        v = v * gain + noise(rng);
        img.at<cv::Vec3b>(y, x)[c] = cv::saturate_cast<uint8_t>(v);
      }
    }
  return img;
}

// GSV-Cities layout with `places` places of `per_place` images, and a VPR validation set with one
// database and one query image per place (places 100 m apart).
void MakeSyntheticData(const std::string& root, int places, int per_place, int size) {
  std::string csv = "place_id,year,month,northdeg,city_id,lat,lon,panoid\n";
  for (int p = 0; p < places; ++p) {
    for (int k = 0; k < per_place; ++k) {
      char name[256];
      std::snprintf(name, sizeof(name), "Synth_%07d_2020_01_%03d_45.%d_7.%d_pano%d.png", p, k * 40, p, k, k);
      const std::string path = root + "/gsv/Images/Synth/" + name;
      fs::create_directories(fs::path(path).parent_path());
      ASSERT_TRUE(cv::imwrite(path, PlaceImage(p, size, k)));
      csv += std::to_string(p) + ",2020,1,0,Synth,45,7,p\n";
    }
    for (int q = 0; q < 2; ++q) {
      const std::string path = root + "/val/" + (q == 0 ? "database" : "queries") + "/@" +
                               std::to_string(1000 + 100 * p) + "@5000@32@T@.png";
      fs::create_directories(fs::path(path).parent_path());
      ASSERT_TRUE(cv::imwrite(path, PlaceImage(p, size, 100 + q)));
    }
  }
  fs::create_directories(root + "/gsv/Dataframes");
  std::ofstream(root + "/gsv/Dataframes/Synth.csv") << csv;
}

TrainOptions TinyOptions(const std::string& root, const std::string& out) {
  TrainOptions o;
  o.output_path = out;
  o.architecture = TinyArchitecture();
  o.num_trainable_blocks = 1;
  o.gsv_root = root + "/gsv";
  o.gsv_cities = {"Synth"};
  o.sampler.places_per_batch = 6;
  o.sampler.images_per_place = 4;
  o.image_size = 56;
  o.val_root = root + "/val";
  o.val_image_size = 56;
  o.validate_every = 0;
  o.num_threads = 1;
  o.num_workers = 2;
  o.lr = 1e-3;
  o.lr_schedule_iterations = 0;
  o.device = "cpu";
  return o;
}

// ------------------------------------------------------------------------------------------------

TEST(TrainOptions, JsonRoundTripAndErrors) {
  TrainOptions o;
  o.output_path = "/x";
  o.gsv_root = "/g";
  o.lr = 1e-4;
  o.sampler.places_per_batch = 7;
  o.scannet.angle = "optical_axis";
  const TrainOptions back = TrainOptions::FromJson(o.ToJson(), "test");
  EXPECT_EQ(back.ToJson(), o.ToJson());
  EXPECT_EQ(back.sampler.places_per_batch, 7);
  EXPECT_TRUE(back.Check());
  EXPECT_THROW(TrainOptions::FromJson("{\"lrr\": 1}", "cfg.json"), InvalidArgument);
  EXPECT_THROW(TrainOptions::FromJson("{\"sampler\": {\"bogus\": 1}}", "cfg.json"), InvalidArgument);
  EXPECT_THROW(TrainOptions::FromJson("{\"lr\": \"fast\"}", "cfg.json"), InvalidArgument);
  EXPECT_THROW(TrainOptions::FromJson("{", "cfg.json"), FormatError);
  // Issue 14, bad input 10: `--set num_iterations=1e30` became -2147483648.
  for (const char* bad : {"{\"num_iterations\": 1e30}", "{\"num_iterations\": 2.5}",
                          "{\"num_iterations\": 18446744073709551615}",
                          "{\"sampler\": {\"places_per_batch\": 1e12}}"}) {
    try {
      TrainOptions::FromJson(bad, "cfg.json");
      ADD_FAILURE() << "accepted " << bad;
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("is not an integer in"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(TrainOptions::FromJson("{\"num_iterations\": 1e3}", "cfg.json").num_iterations, 1000);
  TrainOptions none;
  none.output_path = "/x";
  EXPECT_FALSE(none.Check());  // no data source
}

TEST(TrainOptions, DefaultsAndLinearLR) {
  TrainOptions o;
  EXPECT_EQ(o.num_iterations, 40000);
  EXPECT_EQ(o.sampler.places_per_batch, 32);
  EXPECT_EQ(o.sampler.images_per_place, 4);
  EXPECT_EQ(o.image_size, 224);
  EXPECT_EQ(o.num_trainable_blocks, 4);
  EXPECT_DOUBLE_EQ(o.weight_decay, 9.5e-9);
  EXPECT_DOUBLE_EQ(LearningRateAt(o, 0), 6e-5);
  EXPECT_NEAR(LearningRateAt(o, 2000), 6e-5 * 0.6, 1e-18);
  EXPECT_NEAR(LearningRateAt(o, 4000), 1.2e-5, 1e-18);
  EXPECT_NEAR(LearningRateAt(o, 39999), 1.2e-5, 1e-18);
  o.warmup_iterations = 10;
  EXPECT_NEAR(LearningRateAt(o, 0), 6e-6 * (1 + (0.2 - 1) * 0.0), 1e-18);
}

TEST(Trainer, FullSizeParameterSplit) {
  // The official architecture: 228,639,553 parameters, 170,419,009 trainable with 4 blocks.
  MegaLocNet net(NetConfig{});
  const auto trainable = FreezeForTraining(*net, 4);
  int64_t n_train = 0, n_all = 0;
  for (const auto& p : trainable) n_train += p.numel();
  for (const auto& p : net->parameters()) n_all += p.numel();
  EXPECT_EQ(n_all, 228639553);
  EXPECT_EQ(n_train, 170419009);
  EXPECT_EQ(n_all - n_train, 58220544);
}

TEST(Trainer, PerSubBatchBackwardEqualsSummedLoss) {
  // fp64, dropout off, 28x28 images with patch 7 (16 patches), 4 clusters.
  TrainArchitecture a = TinyArchitecture(7, 4);
  a.depth = 4;
  a.num_clusters = 4;
  a.dropout = 0.0;
  MegaLocNet net(NetConfigFromArchitecture(a));
  RandomInitialize(*net, 3);
  net->to(torch::kDouble);
  const auto trainable = FreezeForTraining(*net, 2);
  torch::manual_seed(11);
  std::vector<torch::Tensor> images, labels;
  for (int d = 0; d < 3; ++d) {
    images.push_back(torch::randn({12, 3, 28, 28}, torch::kDouble));
    labels.push_back(torch::arange(12, torch::kLong).div(3, "floor"));
  }
  MultiSimilarityOptions ms;
  ForwardOptions fo;
  fo.fast_aggregation = false;
  // (a) one backward per sub-batch.
  for (size_t d = 0; d < 3; ++d) {
    MultiSimilarityLoss(TrainingForward(*net, images[d], 2, fo).to(torch::kDouble), labels[d], ms).backward();
  }
  std::vector<torch::Tensor> g1;
  for (auto& p : trainable) {
    g1.push_back(p.grad().clone());
    p.mutable_grad() = torch::Tensor();
  }
  // (b) one backward of the summed loss.
  torch::Tensor total = torch::zeros({}, torch::kDouble);
  for (size_t d = 0; d < 3; ++d) total = total + MultiSimilarityLoss(TrainingForward(*net, images[d], 2, fo).to(torch::kDouble), labels[d], ms);
  total.backward();
  double max_diff = 0, max_grad = 0;
  for (size_t i = 0; i < trainable.size(); ++i) {
    max_diff = std::max(max_diff, (trainable[i].grad() - g1[i]).abs().max().item<double>());
    max_grad = std::max(max_grad, g1[i].abs().max().item<double>());
  }
  EXPECT_GT(max_grad, 1e-6) << "gradients must be non-trivial";
  EXPECT_LT(max_diff, 1e-12);
  // Frozen parameters get no gradient; the training forward equals the inference forward.
  for (auto& item : net->named_parameters()) {
    if (!item.value().requires_grad()) { EXPECT_FALSE(item.value().grad().defined()) << item.key(); }
  }
  net->eval();
  torch::NoGradGuard ng;
  EXPECT_LT((TrainingForward(*net, images[0], 2, fo) - net->forward(images[0], fo)).abs().max().item<double>(), 1e-12);
}

TEST(Trainer, GradientClipping) {
  torch::Tensor a = torch::zeros({2}, torch::requires_grad());
  torch::Tensor b = torch::zeros({1}, torch::requires_grad());
  a.mutable_grad() = torch::tensor({3.0f, 0.0f});
  b.mutable_grad() = torch::tensor({4.0f});
  EXPECT_DOUBLE_EQ(ClipGradNorm({a, b}, 0.0), 5.0);  // norm only
  EXPECT_FLOAT_EQ(a.grad()[0].item<float>(), 3.0f);
  EXPECT_DOUBLE_EQ(ClipGradNorm({a, b}, 10.0), 5.0);  // below the limit: unchanged
  EXPECT_FLOAT_EQ(b.grad()[0].item<float>(), 4.0f);
  EXPECT_DOUBLE_EQ(ClipGradNorm({a, b}, 1.0), 5.0);
  EXPECT_NEAR(a.grad()[0].item<float>(), 0.6f, 1e-6);
  EXPECT_NEAR(b.grad()[0].item<float>(), 0.8f, 1e-6);
}

TEST(Trainer, DinoV2InitialisationCopiesTheBackbone) {
  const std::string dir = testing::TempDir();
  TrainArchitecture a = TinyArchitecture();
  MegaLocNet ref(NetConfigFromArchitecture(a));
  RandomInitialize(*ref, 5);
  TensorMap dino;
  for (auto& [k, v] : NetStateDict(*ref)) {
    if (k.rfind("backbone.", 0) == 0) dino[k.substr(9)] = v;
  }
  dino["mask_token"] = torch::zeros({1, a.embed_dim});
  WriteTorchZip(dir + "/dinov2_tiny.pth", dino);
  TrainOptions o;
  o.init_weights = dir + "/dinov2_tiny.pth";
  o.architecture = a;
  o.seed = 9;
  std::string what;
  MegaLocNet net = BuildNetwork(o, &what);
  EXPECT_NE(what.find("DINOv2"), std::string::npos);
  const TensorMap got = NetStateDict(*net);
  for (const auto& [k, v] : dino) {
    if (k == "mask_token") continue;
    EXPECT_TRUE(torch::equal(got.at("backbone." + k), v)) << k;
  }
  EXPECT_EQ(got.at("aggregator.linear.weight").size(0), 32);
  // A mis-shaped backbone is one clear error naming the file.
  dino["blocks.0.mlp.fc1.weight"] = torch::zeros({3, 3});
  WriteTorchZip(dir + "/dinov2_bad.pth", dino);
  o.init_weights = dir + "/dinov2_bad.pth";
  try {
    BuildNetwork(o, &what);
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("dinov2_bad.pth"), std::string::npos) << e.what();
  }
}

TEST(Trainer, FrozenStayFrozenCheckpointAndExactResume) {
  const std::string root = testing::TempDir() + "/data";
  MakeSyntheticData(root, 12, 5, 56);
  // Initial weights as a MegaLoc safetensors checkpoint (random tiny net) + config.json.
  const std::string init_dir = testing::TempDir() + "/init";
  fs::create_directories(init_dir);
  MegaLocNet init(NetConfigFromArchitecture(TinyArchitecture()));
  RandomInitialize(*init, 1);
  const TensorMap init_state = NetStateDict(*init);
  WriteSafetensors(init_dir + "/tiny.safetensors", init_state);
  std::ofstream(init_dir + "/config.json") << "{\"num_heads\": 2}\n";

  TrainOptions o = TinyOptions(root, testing::TempDir() + "/run_a");
  o.init_weights = init_dir + "/tiny.safetensors";
  o.num_iterations = 4;
  o.checkpoint_every = 2;
  o.keep_checkpoints = 0;
  o.val_root.clear();
  const TrainStats a = RunTraining(o);
  ASSERT_EQ(a.iterations.size(), 4u);
  ASSERT_EQ(a.checkpoints.size(), 2u);
  EXPECT_TRUE(FileExists(o.output_path + "/train_log.jsonl"));
  // Frozen tensors unchanged, trained ones changed.
  const TensorMap after = ReadSafetensors(a.checkpoints.back());
  ASSERT_EQ(after.size(), init_state.size());
  for (const auto& [k, v] : init_state) {
    const bool frozen = k == "backbone.cls_token" || k == "backbone.pos_embed" ||
                        k.rfind("backbone.patch_embed.", 0) == 0 || k.rfind("backbone.blocks.0.", 0) == 0;
    if (frozen) {
      EXPECT_TRUE(torch::equal(after.at(k), v)) << k << " must stay frozen";
    } else if (k != "aggregator.agg.dust_bin") {
      EXPECT_FALSE(torch::equal(after.at(k), v)) << k << " must be trained";
    }
  }
  // The checkpoint loads like `megaloc extract` loads weights (strict, heads from config.json).
  {
    TensorMap canonical = CanonicalizeMegaLocKeys(after, a.checkpoints.back());
    MegaLocNet loaded(InferNetConfig(canonical, ReadNumHeadsFromConfigJson(a.checkpoints.back())));
    LoadStateDictStrict(*loaded, canonical, a.checkpoints.back());
    EXPECT_EQ(loaded->config.num_heads, 2);
    // ... and through the public inference API used by `megaloc extract`.
    ModelOptions mo;
    mo.weights_path = a.checkpoints.back();
    mo.device = "cpu";
    mo.num_threads = 1;
    MegaLocModel model(mo);
    EXPECT_EQ(model.Info().num_heads, 2);
    EXPECT_EQ(model.DescriptorDim(), 32);
    PreprocessingOptions pre;
    pre.mode = ResizeMode::kFixed;
    pre.width = pre.height = 56;
    const PreprocessedImage img = LoadAndPreprocessImage(root + "/val/queries/@1000@5000@32@T@.png", pre);
    const Eigen::VectorXf d = model.Extract(img);
    loaded->eval();
    torch::NoGradGuard ng;
    const torch::Tensor x = torch::from_blob(const_cast<float*>(img.data.data()), {1, 3, 56, 56}, torch::kFloat);
    const torch::Tensor ref = loaded->forward(x);
    for (int k = 0; k < 32; ++k) EXPECT_NEAR(d(k), ref[0][k].item<float>(), 1e-5);
  }
  // Resume: 2 iterations, then "latest" -> the same iterations 2..3 and the same final weights.
  TrainOptions ob = o;
  ob.output_path = testing::TempDir() + "/run_b";
  ob.num_iterations = 2;
  RunTraining(ob);
  ob.num_iterations = 4;
  ob.resume = "latest";
  const TrainStats b = RunTraining(ob);
  EXPECT_EQ(b.start_iteration, 2);
  ASSERT_EQ(b.iterations.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(b.iterations[i].iteration, a.iterations[2 + i].iteration);
    EXPECT_DOUBLE_EQ(b.iterations[i].total_loss, a.iterations[2 + i].total_loss);
  }
  const TensorMap resumed = ReadSafetensors(b.checkpoints.back());
  for (const auto& [k, v] : after) EXPECT_TRUE(torch::equal(resumed.at(k), v)) << k;
  // Resume from a checkpoint without its state file -> clear error.
  ob.resume = init_dir + "/tiny.safetensors";
  EXPECT_THROW(RunTraining(ob), IoError);
}

TEST(Trainer, AllFiveSourcesGiveSixSubBatches) {
  using namespace train_testing;  // NOLINT
  const std::string root = testing::TempDir() + "/five";
  MakeGsv(root + "/gsv", 6);
  MakeMslsCity(root + "/msls", "trondheim", 0.0, 3);
  MakeMslsCity(root + "/msls", "sf", 1e6, 3);
  MakeMegaScenes(root + "/megascenes");
  MakeScanNet(root + "/scannet");
  MakeSfxl(root + "/sf_xl", 3);
  TrainOptions o;
  o.output_path = testing::TempDir() + "/run_five";
  o.architecture = TinyArchitecture();
  o.num_trainable_blocks = 1;
  o.gsv_root = root + "/gsv";
  o.gsv_cities = {"Boston", "PRS"};
  o.msls_root = root + "/msls";
  o.clique.num_batches = 3;
  o.clique_image_size = 56;
  o.megascenes_root = root + "/megascenes";
  o.scannet_root = root + "/scannet";
  o.sfxl_root = root + "/sf_xl";
  o.sampler.places_per_batch = 3;
  o.image_size = 56;
  o.num_iterations = 2;
  o.num_threads = 1;
  o.device = "cpu";
  std::vector<std::string> messages;
  TrainCallbacks cb;
  cb.on_message = [&](const std::string& m) { messages.push_back(m); };
  const TrainStats s = RunTraining(o, cb);
  ASSERT_EQ(s.iterations.size(), 2u);
  std::vector<std::string> sources;
  for (const auto& sb : s.iterations[0].sub_batches) {
    sources.push_back(sb.source);
    EXPECT_TRUE(std::isfinite(sb.loss));
  }
  EXPECT_EQ(sources, (std::vector<std::string>{"gsv", "msls", "megascenes", "scannet", "sfxl_lateral",
                                               "sfxl_frontal"}));
  EXPECT_NEAR(s.iterations[0].total_loss,
              [&] { double t = 0; for (const auto& sb : s.iterations[0].sub_batches) t += sb.loss; return t; }(), 1e-9);
  EXPECT_GT(s.iterations[0].images_per_second, 0.0);
  EXPECT_GT(s.iterations[0].peak_memory_bytes, 0u);
  // The CliqueMining descriptors were computed with the initial model and cached.
  EXPECT_TRUE(FileExists(o.output_path + "/msls_cluster_descriptors.npy"));
}

TEST(TrainCli, ConfigFlagsAndErrors) {
  const std::string exe = testing::MegalocExecutable();
  if (!FileExists(exe)) GTEST_SKIP() << exe << " not built (build the `megaloc` target)";
  using namespace train_testing;  // NOLINT
  const std::string root = testing::TempDir() + "/cli";
  MakeGsv(root + "/gsv", 8);
  const std::string out = root + "/out";
  TrainOptions o;
  o.architecture = TinyArchitecture();
  o.num_trainable_blocks = 1;
  o.gsv_cities = {"Boston", "PRS"};
  o.sampler.places_per_batch = 3;
  o.image_size = 56;
  o.num_iterations = 2;
  o.num_threads = 1;
  o.device = "cpu";
  WriteText(root + "/cfg.json", o.ToJson());
  const std::string log = root + "/log.txt";
  ASSERT_EQ(testing::RunShell(exe + " train --config " + root + "/cfg.json --output_path " + out + " --gsv_root " +
                              root + "/gsv --set checkpoint_every=1 --set keep_checkpoints=1 > " + log + " 2>&1"),
            0)
      << ReadFileToString(log);
  const std::string text = ReadFileToString(log);
  EXPECT_NE(text.find("iter 2/2"), std::string::npos) << text;
  EXPECT_TRUE(FileExists(out + "/checkpoints/iter_00000002.safetensors"));
  EXPECT_TRUE(FileExists(out + "/checkpoints/iter_00000002.state"));
  EXPECT_FALSE(FileExists(out + "/checkpoints/iter_00000001.safetensors")) << "keep_checkpoints=1";
  EXPECT_TRUE(FileExists(out + "/checkpoints/config.json"));
  // Resume at the end: nothing to do, exit 0.
  EXPECT_EQ(testing::RunShell(exe + " train --config " + root + "/cfg.json --output_path " + out + " --gsv_root " +
                              root + "/gsv --resume latest > " + log + " 2>&1"),
            0);
  // Errors: one ERROR line, non-zero exit.
  EXPECT_NE(testing::RunShell(exe + " train --config " + root + "/missing.json 2> " + log), 0);
  EXPECT_NE(ReadFileToString(log).find("ERROR: " + root + "/missing.json"), std::string::npos);
  EXPECT_NE(testing::RunShell(exe + " train --config " + root + "/cfg.json --set nope=1 2> " + log), 0);
  EXPECT_NE(ReadFileToString(log).find("unknown training option 'nope'"), std::string::npos);
  EXPECT_NE(testing::RunShell(exe + " train --output_path " + out + " --gsv_root " + root + "/nothing 2> " + log), 0);
  EXPECT_NE(ReadFileToString(log).find("nothing: GSV-Cities root does not exist"), std::string::npos);
}

TEST(Trainer, CorruptImageIsOneClearError) {
  const std::string root = testing::TempDir() + "/corrupt";
  MakeSyntheticData(root, 6, 4, 56);
  const std::string bad = root + "/gsv/Images/Synth/Synth_0000003_2020_01_040_45.3_7.1_pano1.png";
  ASSERT_TRUE(FileExists(bad));
  WriteFileAtomically(bad, "this is not an image");
  TrainOptions o = TinyOptions(root, testing::TempDir() + "/run_corrupt");
  o.val_root.clear();
  o.num_iterations = 3;
  try {
    RunTraining(o);
    FAIL() << "expected ImageError";
  } catch (const ImageError& e) {
    EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
  }
}

TEST(TrainerSlow, TinyRunHalvesLossAndImprovesRecall) {
  const std::string root = testing::TempDir() + "/learn";
  MakeSyntheticData(root, 16, 5, 56);
  TrainOptions o = TinyOptions(root, testing::TempDir() + "/run_learn");
  o.num_iterations = 50;
  o.checkpoint_every = 50;
  o.sampler.places_per_batch = 8;
  o.augment.enabled = false;
  o.lr = 2e-3;
  o.seed = 4;
  const TrainStats s = RunTraining(o);
  ASSERT_EQ(s.iterations.size(), 50u);
  ASSERT_EQ(s.validations.size(), 2u);
  auto mean = [&](int from, int to) {
    double m = 0;
    for (int i = from; i < to; ++i) m += s.iterations[i].total_loss;
    return m / (to - from);
  };
  const double first = mean(0, 3), last = mean(45, 50);
  std::cout << "loss " << first << " -> " << last << "; R@1 " << s.validations[0].recalls[0] << " -> "
            << s.validations[1].recalls[0] << std::endl;
  EXPECT_LT(last, 0.5 * first);
  EXPECT_GT(s.validations[1].recalls[0], s.validations[0].recalls[0]);
}

}  // namespace
}  // namespace megaloc
