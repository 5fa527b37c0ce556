// Runs the real `megaloc extract` / `megaloc merge` executables.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <thread>

#include <gtest/gtest.h>

#include "megaloc/io/descriptor_store.h"
#include "megaloc/util/file_utils.h"
#include "tests/common/testing.h"
#include "tests/extraction/test_images.h"

namespace megaloc {
namespace {

using ::megaloc::testing::MegalocExecutable;
using ::megaloc::testing::RunShell;
using ::megaloc::testing::TempDir;
using ::megaloc::testing::TinyWeightsPath;
using ::megaloc::testing::WriteSceneImage;

std::map<std::string, Eigen::VectorXf> ReadAll(const std::string& path) {
  auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kRead);
  std::map<std::string, Eigen::VectorXf> out;
  for (const std::string& name : file->ListNames()) out[name] = file->Read(name);
  return out;
}

std::string ExtractCommand(const std::string& root, const std::string& output) {
  return MegalocExecutable() + " extract --image_path " + root + " --output_path " + output +
         " --weights_path " + TinyWeightsPath() + " --num_threads 1 --num_workers 1 --resize_max 112";
}

// kill -9 in the middle of a run leaves a readable file with the finished batches; a rerun
// computes only the rest, and the result equals an uninterrupted run.
TEST(ExtractCommand, KillAndResume) {
  ASSERT_TRUE(FileExists(MegalocExecutable())) << MegalocExecutable();
  const std::string root = TempDir();
  const int kNumImages = 60;
  for (int i = 0; i < kNumImages; ++i) {
    WriteSceneImage(root, "seq" + std::to_string(i % 3) + "/img" + std::to_string(100 + i) + ".png",
                    160, 120, i);
  }
  const std::string dir = TempDir();
  const std::string reference = JoinPaths(dir, "reference.h5");
  const auto reference_start = std::chrono::steady_clock::now();
  ASSERT_EQ(RunShell(ExtractCommand(root, reference) + " --quiet"), 0);
  const double reference_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - reference_start).count();
  ASSERT_EQ(ReadAll(reference).size(), static_cast<size_t>(kNumImages));

  // The file appears (empty) with its first commit; the kill comes a fraction of the rest of the
  // reference run later. Polling for the file keeps the model load time (which varies a lot with the
  // machine's load) out of the delay; the fraction adapts if a kill came too early or too late.
  const std::string output = JoinPaths(dir, "killed.h5");
  size_t num_partial = 0;
  double fraction = 0.4;
  for (int attempt = 0; attempt < 8 && (num_partial == 0 || num_partial >= static_cast<size_t>(kNumImages));
       ++attempt) {
    std::remove(output.c_str());
    const auto start = std::chrono::steady_clock::now();
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      execl("/bin/sh", "sh", "-c",
            ("exec " + ExtractCommand(root, output) + " --quiet --commit_interval 0").c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
    const auto deadline = start + std::chrono::duration<double>(10.0 + 5.0 * reference_seconds);
    int status = 0;
    bool exited = false;
    while (!FileExists(output) && std::chrono::steady_clock::now() < deadline) {
      if (waitpid(pid, &status, WNOHANG) == pid) {
        exited = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (!exited) {
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::this_thread::sleep_for(
          std::chrono::duration<double>(fraction * std::max(0.05, reference_seconds - elapsed)));
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      exited = !WIFSIGNALED(status);
    }
    num_partial = FileExists(output) ? ReadAll(output).size() : 0;
    if (exited || num_partial >= static_cast<size_t>(kNumImages)) {
      fraction *= 0.5;
    } else if (num_partial == 0) {
      fraction *= 1.5;
    }
  }
  ASSERT_GT(num_partial, 0u) << "never killed mid-run";
  ASSERT_LT(num_partial, static_cast<size_t>(kNumImages));

  // The interrupted file opens and every listed image is complete and correct.
  const auto partial = ReadAll(output);
  const auto expected = ReadAll(reference);
  EXPECT_GT(partial.size(), 0u);
  EXPECT_LT(partial.size(), static_cast<size_t>(kNumImages));
  for (const auto& [name, descriptor] : partial) EXPECT_EQ(descriptor, expected.at(name)) << name;

  // Resume: only the rest is computed.
  const std::string log = JoinPaths(dir, "resume.log");
  ASSERT_EQ(RunShell(ExtractCommand(root, output) + " 2> " + log), 0) << ReadFileToString(log);
  const std::string text = ReadFileToString(log);
  EXPECT_NE(text.find("Extracted " + std::to_string(kNumImages - partial.size()) + " of " +
                      std::to_string(kNumImages) + " images (" + std::to_string(partial.size()) +
                      " already in the file)"),
            std::string::npos)
      << text;
  EXPECT_EQ(ReadAll(output), expected);
  // And a third run has nothing to do.
  ASSERT_EQ(RunShell(ExtractCommand(root, output) + " 2> " + log), 0);
  EXPECT_NE(ReadFileToString(log).find("nothing to do"), std::string::npos) << ReadFileToString(log);
}

TEST(ExtractCommand, ExitCodesAndMessages) {
  ASSERT_TRUE(FileExists(MegalocExecutable()));
  const std::string root = TempDir();
  WriteSceneImage(root, "good.png", 96, 80, 1);
  WriteFileAtomically(JoinPaths(root, "broken.jpg"), "not a jpeg");
  const std::string dir = TempDir();
  const std::string log = JoinPaths(dir, "log.txt");
  const std::string output = JoinPaths(dir, "feats.h5");
  // A bad image: non-zero exit, one line naming it, the good image still written.
  EXPECT_NE(RunShell(ExtractCommand(root, output) + " 2> " + log), 0);
  std::string text = ReadFileToString(log);
  EXPECT_NE(text.find("ERROR: "), std::string::npos) << text;
  EXPECT_NE(text.find("broken.jpg"), std::string::npos) << text;
  EXPECT_NE(text.find("1 of 2 images could not be processed"), std::string::npos) << text;
  EXPECT_EQ(ReadAll(output).size(), 1u);

  // Missing weights: a clear error with the download URL.
  const std::string env = "env -u MEGALOC_WEIGHTS HOME=" + dir + " ";
  EXPECT_NE(RunShell(env + MegalocExecutable() + " extract --image_path " + root +
                     " --output_path " + JoinPaths(dir, "x.h5") + " 2> " + log),
            0);
  text = ReadFileToString(log);
  EXPECT_NE(text.find("huggingface.co/gberton/MegaLoc"), std::string::npos) << text;
  // $MEGALOC_WEIGHTS is used when --weights_path is absent.
  std::remove(JoinPaths(root, "broken.jpg").c_str());
  for (int k = 1; k <= 2; ++k) WriteSceneImage(root, "more" + std::to_string(k) + ".png", 84, 84, 10 + k);
  const std::string all = JoinPaths(dir, "all.h5");
  EXPECT_EQ(RunShell("MEGALOC_WEIGHTS=" + TinyWeightsPath() + " " + MegalocExecutable() +
                     " extract --quiet --num_threads 1 --resize_max 112 --image_path " + root +
                     " --output_path " + all + " 2> " + log),
            0)
      << ReadFileToString(log);
  EXPECT_EQ(ReadAll(all).size(), 3u);
  // Conflicting resize options; non-HDF5 output.
  EXPECT_NE(RunShell(ExtractCommand(root, JoinPaths(dir, "y.h5")) + " --native 2> " + log), 0);
  EXPECT_NE(ReadFileToString(log).find("only one of"), std::string::npos);
  WriteFileAtomically(JoinPaths(dir, "text.h5"), "hello");
  EXPECT_NE(RunShell(ExtractCommand(root, JoinPaths(dir, "text.h5")) + " 2> " + log), 0);
  EXPECT_NE(ReadFileToString(log).find("not an HDF5 file"), std::string::npos) << ReadFileToString(log);

  // Shards + merge on the command line equal a single run.
  std::string shards;
  for (int k = 1; k <= 2; ++k) {
    const std::string shard = JoinPaths(dir, "s" + std::to_string(k) + ".h5");
    ASSERT_EQ(RunShell(ExtractCommand(root, shard) + " --quiet --shard " + std::to_string(k) + "/2"), 0);
    shards += " " + shard;
  }
  ASSERT_EQ(RunShell(MegalocExecutable() + " merge --quiet --input_paths" + shards +
                     " --output_path " + JoinPaths(dir, "merged.h5")),
            0);
  EXPECT_EQ(ReadAll(JoinPaths(dir, "merged.h5")), ReadAll(all));
  EXPECT_NE(RunShell(MegalocExecutable() + " merge --input_paths " + JoinPaths(dir, "missing.h5") +
                     " --output_path " + JoinPaths(dir, "m2.h5") + " 2> " + log),
            0);
  EXPECT_NE(ReadFileToString(log).find("missing.h5"), std::string::npos);
}

// Issue 14, bad inputs 8-10: one image never aborts the run, and option errors are one plain line.
TEST(ExtractCommand, BadImagesAndOptionsAreOneClearLineEach) {
  ASSERT_TRUE(FileExists(MegalocExecutable()));
  const std::string dir = TempDir();
  const std::string log = JoinPaths(dir, "log.txt");
  // An HDF5 name collision: the file holds image `sub.png` (first collection); the second
  // collection has `sub.png/x.png` (a group inside that image's group). Only that image fails.
  const std::string first = TempDir();
  WriteSceneImage(first, "sub.png", 96, 80, 1);
  const std::string output = JoinPaths(dir, "feats.h5");
  ASSERT_EQ(RunShell(ExtractCommand(first, output) + " --quiet"), 0);
  const std::string second = TempDir();
  WriteSceneImage(second, "sub.png/x.png", 96, 80, 2);
  WriteSceneImage(second, "good.png", 96, 80, 3);
  EXPECT_EQ(RunShell(ExtractCommand(second, output) + " 2> " + log), 1);
  std::string text = ReadFileToString(log);
  EXPECT_NE(text.find("cannot store 'sub.png/x.png': 'sub.png' is also an image"), std::string::npos)
      << text;
  EXPECT_NE(text.find("1 of 2 images could not be processed"), std::string::npos) << text;
  EXPECT_EQ(ReadAll(output).size(), 2u);  // sub.png and good.png

  // A decompression bomb (here: a limit below the image size) fails alone, naming the file.
  const std::string limited = JoinPaths(dir, "limited.h5");
  EXPECT_EQ(RunShell(ExtractCommand(second, limited) + " --max_image_pixels 1000 2> " + log), 1);
  text = ReadFileToString(log);
  EXPECT_NE(text.find("good.png: image of 96x80 = 7680 pixels exceeds --max_image_pixels 1000"),
            std::string::npos)
      << text;

  // Option errors: one line, no "[file.cc:N] Check failed", no backtrace.
  const std::string base = MegalocExecutable() + " extract --image_path " + second +
                           " --output_path " + JoinPaths(dir, "x.h5") + " --weights_path " +
                           TinyWeightsPath();
  const std::vector<std::pair<std::string, std::string>> bad_options = {
      {"--device bogus", "ERROR: --device 'bogus' is not one of cpu, cuda, cuda:N, auto"},
      {"--num_threads 0", "ERROR: --num_threads must be -1 (all cores) or >= 1, not 0"},
      {"--batch_size 0", "ERROR: --batch_size must be >= 1"},
      {"--max_image_pixels -1", "ERROR: --max_image_pixels must be >= 0"},
      // Was a LibTorch backtrace per image; refused up front now.
      {"--resize 99999 99999",
       "ERROR: --resize 99999 99999 makes images larger than --max_image_pixels 89478485"},
  };
  for (const auto& [options, expected] : bad_options) {
    EXPECT_EQ(RunShell(base + " " + options + " 2> " + log), 1) << options;
    text = ReadFileToString(log);
    EXPECT_NE(text.find(expected), std::string::npos) << options << ": " << text;
    EXPECT_EQ(text.find("Check failed"), std::string::npos) << text;
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  }
  // --num_threads beyond the cores: clamped with a warning, the run succeeds.
  const std::string list = JoinPaths(dir, "list.txt");
  WriteFileAtomically(list, "good.png\n");
  EXPECT_EQ(RunShell(base + " --quiet --resize_max 112 --num_threads 100000 --image_list " + list +
                     " 2> " + log),
            0)
      << ReadFileToString(log);
  EXPECT_NE(ReadFileToString(log).find("WARNING: --num_threads 100000 exceeds the"), std::string::npos)
      << ReadFileToString(log);
}

}  // namespace
}  // namespace megaloc
