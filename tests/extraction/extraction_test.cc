#include "megaloc/extraction/extraction.h"

#include <unistd.h>

#include <map>
#include <set>

#include <gtest/gtest.h>

#include "megaloc/io/descriptor_store.h"
#include "megaloc/io/image_list.h"
#include "megaloc/io/merge.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/sha256.h"
#include "tests/common/testing.h"
#include "tests/extraction/test_images.h"

namespace megaloc {
namespace {

using ::megaloc::testing::TempDir;
using ::megaloc::testing::TinyWeightsPath;
using ::megaloc::testing::WriteSceneImage;

// Six images in two folders; two pairs share a size (batching), one is non-square and large
// enough to be downscaled by resize_max=96.
std::string MakeCollection() {
  const std::string root = TempDir();
  WriteSceneImage(root, "a.png", 96, 80, 1);
  WriteSceneImage(root, "b.png", 96, 80, 2);
  WriteSceneImage(root, "seq1/c.png", 70, 112, 3);
  WriteSceneImage(root, "seq1/d.png", 70, 112, 4);
  WriteSceneImage(root, "seq1/deep/e.png", 64, 64, 5);
  WriteSceneImage(root, "seq2/f.png", 150, 100, 6);
  return root;
}

ExtractionOptions BaseOptions(const std::string& root, const std::string& output) {
  ExtractionOptions options;
  options.image_path = root;
  options.output_path = output;
  options.model.weights_path = TinyWeightsPath();
  options.model.num_threads = 1;
  options.preprocessing.mode = ResizeMode::kResizeMax;
  options.preprocessing.resize_max = 96;
  options.num_workers = 2;
  return options;
}

std::map<std::string, Eigen::VectorXf> ReadAll(const std::string& path) {
  auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kRead);
  std::map<std::string, Eigen::VectorXf> out;
  for (const std::string& name : file->ListNames()) out[name] = file->Read(name);
  return out;
}

const std::vector<std::string> kAllNames = {"a.png", "b.png", "seq1/c.png", "seq1/d.png",
                                            "seq1/deep/e.png", "seq2/f.png"};

// The file holds exactly MegaLocModel's own output for each image (batch 1: bit-identical;
// batches of equal-size images: within float noise), with the original image sizes.
TEST(Extraction, DescriptorsEqualDirectModelOutput) {
  const std::string root = MakeCollection();
  ExtractionOptions options = BaseOptions(root, JoinPaths(TempDir(), "f32.h5"));
  options.dtype = DescriptorDtype::kFloat32;
  std::vector<ExtractionProgress> progress;
  options.progress_callback = [&](const ExtractionProgress& p) { progress.push_back(p); };
  const ExtractionStats stats = RunExtraction(options);
  EXPECT_EQ(stats.num_images, 6u);
  EXPECT_EQ(stats.num_extracted, 6u);
  EXPECT_EQ(stats.num_failed, 0u);
  EXPECT_EQ(stats.descriptor_dim, 48);
  ASSERT_EQ(progress.size(), 6u);
  EXPECT_EQ(progress.back().num_done, 6u);
  EXPECT_EQ(progress.back().num_total, 6u);

  ModelOptions model_options;
  model_options.weights_path = TinyWeightsPath();
  model_options.num_threads = 1;
  MegaLocModel model(model_options);
  auto file = DescriptorFile::Open(options.output_path, DescriptorFile::Mode::kRead);
  EXPECT_EQ(file->ListNames(), kAllNames);
  for (const std::string& name : kAllNames) {
    SCOPED_TRACE(name);
    const PreprocessedImage image =
        LoadAndPreprocessImage(JoinPaths(root, name), options.preprocessing);
    const Eigen::VectorXf expected = model.Extract(image);
    EXPECT_EQ(file->Read(name), expected);
    EXPECT_NEAR(file->Read(name).norm(), 1.0, 1e-5);
    EXPECT_EQ(file->ImageSize(name),
              (std::pair<int64_t, int64_t>(image.original_width, image.original_height)));
  }
  EXPECT_EQ(file->ImageSize("seq2/f.png"), (std::pair<int64_t, int64_t>(150, 100)));
  // Provenance attributes.
  EXPECT_EQ(file->GetAttribute(kAttrPreprocessing), options.preprocessing.ToString());
  EXPECT_EQ(file->GetAttribute(kAttrDescriptorDim), "48");
  EXPECT_EQ(file->GetAttribute(kAttrDtype), "float32");
  EXPECT_EQ(file->GetAttribute(kAttrWeightsSha256), Sha256File(TinyWeightsPath()));
  EXPECT_EQ(file->Dtype("a.png"), DescriptorDtype::kFloat32);

  // float16 + batches of 2 (a/b and c/d share sizes): rounded model output.
  ExtractionOptions half = BaseOptions(root, JoinPaths(TempDir(), "f16.h5"));
  half.batch_size = 2;
  half.num_workers = 3;
  const ExtractionStats half_stats = RunExtraction(half);
  EXPECT_EQ(half_stats.num_extracted, 6u);
  auto half_file = DescriptorFile::Open(half.output_path, DescriptorFile::Mode::kRead);
  EXPECT_EQ(half_file->GetAttribute(kAttrDtype), "float16");
  for (const std::string& name : kAllNames) {
    EXPECT_EQ(half_file->Dtype(name), DescriptorDtype::kFloat16);
    const Eigen::VectorXf f32 = file->Read(name);
    const Eigen::VectorXf f16 = half_file->Read(name);
    for (int i = 0; i < f32.size(); ++i) {
      // Batching changes float32 results by ~1e-8, which can flip a float16 rounding by one ulp.
      EXPECT_NEAR(f16[i], f32[i], std::abs(f32[i]) * 1e-3 + 1e-6) << name << " " << i;
    }
  }
}

TEST(Extraction, SkipsExistingResumesAndOverwrites) {
  const std::string root = MakeCollection();
  const std::string output = JoinPaths(TempDir(), "feats.h5");
  ExtractionOptions options = BaseOptions(root, output);
  options.image_names = {"a.png", "seq1/c.png"};
  EXPECT_EQ(RunExtraction(options).num_extracted, 2u);
  const auto first = ReadAll(output);

  options.image_names.clear();  // whole collection: only the 4 others are computed
  ExtractionStats stats = RunExtraction(options);
  EXPECT_EQ(stats.num_skipped_existing, 2u);
  EXPECT_EQ(stats.num_extracted, 4u);
  auto all = ReadAll(output);
  EXPECT_EQ(all.size(), 6u);
  EXPECT_EQ(all.at("a.png"), first.at("a.png"));

  // Nothing left: no model needed, nothing written.
  stats = RunExtraction(options);
  EXPECT_EQ(stats.num_skipped_existing, 6u);
  EXPECT_EQ(stats.num_extracted, 0u);
  EXPECT_EQ(stats.descriptor_dim, 0);  // the model was not loaded

  // Overwrite: everything recomputed in place, same values.
  options.overwrite = true;
  stats = RunExtraction(options);
  EXPECT_EQ(stats.num_extracted, 6u);
  EXPECT_FALSE(stats.replaced_existing_file);
  EXPECT_EQ(ReadAll(output), all);

  // An image list selects a subset.
  options.overwrite = false;
  const std::string list = JoinPaths(TempDir(), "list.txt");
  WriteFileAtomically(list, "# subset\nseq2/f.png\n\nb.png\n");
  options.image_list_path = list;
  stats = RunExtraction(options);
  EXPECT_EQ(stats.num_images, 2u);
  EXPECT_EQ(stats.num_skipped_existing, 2u);
}

TEST(Extraction, AppendingWithOtherSettingsIsRejected) {
  const std::string root = MakeCollection();
  const std::string output = JoinPaths(TempDir(), "feats.h5");
  ExtractionOptions options = BaseOptions(root, output);
  options.image_names = {"a.png"};
  RunExtraction(options);

  ExtractionOptions other = options;
  other.image_names = {"b.png"};
  other.preprocessing.mode = ResizeMode::kFixed;
  other.preprocessing.width = 84;
  other.preprocessing.height = 84;
  try {
    RunExtraction(other);
    ADD_FAILURE() << "appending with other preprocessing succeeded";
  } catch (const FormatError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(output), std::string::npos) << what;
    EXPECT_NE(what.find("preprocessing"), std::string::npos) << what;
  }
  ExtractionOptions other_dtype = options;
  other_dtype.image_names = {"b.png"};
  other_dtype.dtype = DescriptorDtype::kFloat32;
  EXPECT_THROW(RunExtraction(other_dtype), FormatError);
  EXPECT_EQ(ReadAll(output).size(), 1u);  // untouched

  // With overwrite the old content (other settings) is discarded.
  other.overwrite = true;
  const ExtractionStats stats = RunExtraction(other);
  EXPECT_TRUE(stats.replaced_existing_file);
  auto file = DescriptorFile::Open(output, DescriptorFile::Mode::kRead);
  EXPECT_EQ(file->ListNames(), std::vector<std::string>{"b.png"});
  EXPECT_EQ(file->GetAttribute(kAttrPreprocessing), other.preprocessing.ToString());
}

// A file from another tool (no attributes) with another dimension cannot be appended to.
TEST(Extraction, ForeignFileWithOtherDimensionIsRejected) {
  const std::string root = MakeCollection();
  const std::string output = JoinPaths(TempDir(), "hloc.h5");
  {
    auto file = DescriptorFile::Open(output, DescriptorFile::Mode::kCreate);
    const std::vector<float> v(8448, 0.01f);
    file->Write("other.jpg", v.data(), 8448, 10, 10);
  }
  ExtractionOptions options = BaseOptions(root, output);
  try {
    RunExtraction(options);
    ADD_FAILURE();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("8448-dimensional"), std::string::npos) << e.what();
  }
}

TEST(Extraction, BadImagesAreReportedAndSkipped) {
  const std::string root = MakeCollection();
  // Corrupt inputs, each named in its own failure line.
  WriteFileAtomically(JoinPaths(root, "zero.png"), "");
  WriteFileAtomically(JoinPaths(root, "text.jpg"), "this is not an image\n");
  std::string png = ReadFileToString(JoinPaths(root, "a.png"));
  WriteFileAtomically(JoinPaths(root, "truncated.png"), png.substr(0, png.size() / 3));
  std::string garbage(4096, '\0');
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<char>((i * 131 + 7) % 251);
  WriteFileAtomically(JoinPaths(root, "garbage.jpg"), garbage);
  WriteSceneImage(root, "tiny.png", 30, 30, 9);  // model input 28x28: 2x2 patches < 8 clusters
  WriteSceneImage(root, "with space.png", 96, 80, 10);  // unusable in hloc/COLMAP pair files
  ASSERT_EQ(symlink("moved/away.jpg", JoinPaths(root, "dangling.jpg").c_str()), 0);
  ExtractionOptions options = BaseOptions(root, JoinPaths(TempDir(), "feats.h5"));
  std::vector<ImageFailure> reported;
  options.failure_callback = [&](const ImageFailure& f) { reported.push_back(f); };
  const ExtractionStats stats = RunExtraction(options);
  EXPECT_EQ(stats.num_images, 13u);
  EXPECT_EQ(stats.num_extracted, 6u);
  EXPECT_EQ(stats.num_failed, 7u);
  ASSERT_EQ(reported.size(), 7u);
  std::set<std::string> failed;
  for (const ImageFailure& f : reported) {
    failed.insert(f.name);
    EXPECT_NE(f.reason.find(f.name), std::string::npos) << f.reason;
  }
  EXPECT_EQ(failed, (std::set<std::string>{"dangling.jpg", "garbage.jpg", "text.jpg", "tiny.png",
                                           "truncated.png", "with space.png", "zero.png"}));
  for (const ImageFailure& f : reported) {
    if (f.name == "tiny.png") { EXPECT_NE(f.reason.find("too small"), std::string::npos) << f.reason; }
    if (f.name == "with space.png") { EXPECT_NE(f.reason.find("whitespace"), std::string::npos) << f.reason; }
    if (f.name == "dangling.jpg") {
      EXPECT_NE(f.reason.find("dangling symbolic link"), std::string::npos) << f.reason;
    }
  }
  EXPECT_EQ(ReadAll(options.output_path).size(), 6u);
}

// inference_precision records the precision that ran: --bf16 on a CPU without native bf16 matmul
// runs float32 (with a warning) and must be recorded as float32, so that the file can be appended
// to by a float32 run and is never mislabelled.
TEST(Extraction, PrecisionAttributeIsWhatRan) {
  const std::string root = MakeCollection();
  ExtractionOptions options = BaseOptions(root, JoinPaths(TempDir(), "feats.h5"));
  options.model.use_bf16 = true;
  const bool native = DetectCpuBf16Support().Native();
  EXPECT_EQ(UsesBf16(options.model), native);
  ::testing::internal::CaptureStderr();
  RunExtraction(options);
  const std::string log = ::testing::internal::GetCapturedStderr();
  const std::string expected = native ? "bfloat16-autocast" : "float32";
  EXPECT_EQ(DescriptorFile::Open(options.output_path, DescriptorFile::Mode::kRead)
                ->GetAttribute(kAttrPrecision),
            expected);
  if (!native) { EXPECT_NE(log.find("--bf16 ignored"), std::string::npos) << log; }
  // ExtractionAttributes: predicted from the options, or the loaded model's precision.
  for (const auto& [key, value] : ExtractionAttributes(options, 0, "")) {
    if (key == kAttrPrecision) { EXPECT_EQ(value, expected); }
  }
  for (const auto& [key, value] : ExtractionAttributes(options, 0, "", "fp32")) {
    if (key == kAttrPrecision) { EXPECT_EQ(value, "float32"); }
  }
  // Appending to it with the same --bf16 is fine; without --bf16 it is fine where bf16 did not run.
  WriteSceneImage(root, "g.png", 64, 64, 11);
  ExtractionStats stats = RunExtraction(options);
  EXPECT_EQ(stats.num_extracted, 1u);
  if (!native) {
    WriteSceneImage(root, "h.png", 64, 64, 12);
    options.model.use_bf16 = false;
    stats = RunExtraction(options);
    EXPECT_EQ(stats.num_extracted, 1u);
  }
}

// Three shards merged equal one run over everything, bit for bit.
TEST(Extraction, ShardsMergedEqualSingleRun) {
  const std::string root = MakeCollection();
  const std::string dir = TempDir();
  ExtractionOptions single = BaseOptions(root, JoinPaths(dir, "all.h5"));
  RunExtraction(single);
  std::vector<std::string> shard_paths;
  size_t total = 0;
  for (int k = 1; k <= 3; ++k) {
    ExtractionOptions options = BaseOptions(root, JoinPaths(dir, "shard" + std::to_string(k) + ".h5"));
    options.shard_index = k;
    options.num_shards = 3;
    total += RunExtraction(options).num_extracted;
    shard_paths.push_back(options.output_path);
  }
  EXPECT_EQ(total, 6u);
  const MergeStats merge = MergeDescriptorFiles(shard_paths, JoinPaths(dir, "merged.h5"));
  EXPECT_EQ(merge.num_written, 6u);
  EXPECT_EQ(ReadAll(JoinPaths(dir, "merged.h5")), ReadAll(single.output_path));
  auto merged = DescriptorFile::Open(JoinPaths(dir, "merged.h5"), DescriptorFile::Mode::kRead);
  auto all = DescriptorFile::Open(single.output_path, DescriptorFile::Mode::kRead);
  EXPECT_EQ(merged->GetAttribute(kAttrPreprocessing), all->GetAttribute(kAttrPreprocessing));
  EXPECT_EQ(merged->GetAttribute(kAttrWeightsSha256), all->GetAttribute(kAttrWeightsSha256));
  for (const std::string& name : kAllNames) {
    EXPECT_EQ(merged->ImageSize(name), all->ImageSize(name));
    EXPECT_EQ(merged->Dtype(name), DescriptorDtype::kFloat16);
  }
  merged.reset();
  // Merging again (identical duplicates) is fine and idempotent.
  const MergeStats again = MergeDescriptorFiles({single.output_path}, JoinPaths(dir, "merged.h5"));
  EXPECT_EQ(again.num_written, 0u);
  EXPECT_EQ(again.num_already_in_output, 6u);

  // A conflicting duplicate is an error naming the image and both files; the output is untouched.
  const std::string conflict = JoinPaths(dir, "conflict.h5");
  {
    auto file = DescriptorFile::Open(conflict, DescriptorFile::Mode::kCreate);
    const std::vector<float> v(48, 0.1f);
    file->Write("a.png", v.data(), 48, 96, 80);
    for (const auto& [key, value] : all->Attributes()) file->SetAttribute(key, value);
  }
  try {
    MergeDescriptorFiles({single.output_path, conflict}, JoinPaths(dir, "out2.h5"));
    ADD_FAILURE();
  } catch (const FormatError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("'a.png'"), std::string::npos) << what;
    EXPECT_NE(what.find("conflict.h5"), std::string::npos) << what;
  }
  EXPECT_FALSE(FileExists(JoinPaths(dir, "out2.h5")));
  // Inconsistent attributes are an error too.
  {
    auto file = DescriptorFile::Open(conflict, DescriptorFile::Mode::kAppend);
    file->Delete("a.png");
    const std::vector<float> v(48, 0.1f);
    file->Write("new.png", v.data(), 48, 96, 80);
    file->SetAttribute(kAttrPreprocessing, "native");
  }
  try {
    MergeDescriptorFiles({single.output_path, conflict}, JoinPaths(dir, "out3.h5"));
    ADD_FAILURE();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("preprocessing"), std::string::npos) << e.what();
  }
  EXPECT_THROW(MergeDescriptorFiles({single.output_path}, single.output_path), InvalidArgument);
}

TEST(Extraction, OptionsAreChecked) {
  ExtractionOptions options;
  EXPECT_FALSE(options.Check());
  options.image_path = TempDir();
  options.output_path = JoinPaths(options.image_path, "x.h5");
  EXPECT_TRUE(options.Check());
  options.batch_size = 0;
  EXPECT_FALSE(options.Check());
  options.batch_size = 1;
  options.shard_index = 3;
  options.num_shards = 2;
  EXPECT_FALSE(options.Check());
  options.shard_index = 1;
  EXPECT_THROW(RunExtraction(options), InvalidArgument);  // no weights
  options.model.weights_path = TinyWeightsPath();
  options.image_path = JoinPaths(options.image_path, "missing");
  EXPECT_THROW(RunExtraction(options), IoError);
}

}  // namespace
}  // namespace megaloc
