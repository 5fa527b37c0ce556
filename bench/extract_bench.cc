// Extraction benchmark (docs/perf/extract.md): images/s and peak RSS of the real `megaloc extract`
// command on N generated photo-like JPEG images.
//
//   extract_bench [--num_images N=64] [--width W=640] [--height H=480] [--batch_size B=1]
//                 [--num_workers K=2] [--num_threads T=-1] [--commit_interval S=1]
//                 [--extra "more extract flags"] [--megaloc PATH] [--dir DIR] [--repeat R=1]
//
//   extract_bench --store N [--dim D=8448] [--commit_every C=64] [--dir DIR]
//       HDF5 store only: writes N random float16 descriptors (hloc layout, C images per atomic
//       commit), then times reopening for append (crash repair scan), listing, and reading
//       everything back with ReadBlock / ReadBlockHalf.
//
//   extract_bench --make_full_weights PATH
//       Writes a full-size MegaLoc checkpoint (official v2 safetensors keys and shapes, 228,639,553
//       parameters, 915 MB) with seeded random values, for timing the real architecture without
//       downloading the official weights (speed does not depend on the values).
//
// Weights: $MEGALOC_BENCH_WEIGHTS, default the tiny test model (tests/data/megaloc_tiny). The
// images are generated once per (N, W, H) under DIR (default: a temp dir). Each repetition extracts
// into a fresh output file in a child process; wall time, peak RSS of the child (wait4 ru_maxrss)
// and the load average are printed as one "RESULT ..." line.

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "megaloc/io/descriptor_store.h"
#include "megaloc/util/file_utils.h"

namespace {

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one;
  in >> one;
  return one;
}

void MakeImage(const std::string& path, int width, int height, int seed) {
  cv::RNG rng(seed);
  cv::Mat image(height, width, CV_8UC3);
  for (int y = 0; y < height; ++y) {
    const double t = static_cast<double>(y) / height;
    image.row(y).setTo(cv::Scalar(200 - 80 * t, 170 - 40 * t, 120 + 60 * t));
  }
  for (int i = 0; i < 40; ++i) {
    const cv::Point a(rng.uniform(0, width), rng.uniform(0, height));
    const cv::Point b(a.x + rng.uniform(10, width / 4), a.y + rng.uniform(10, height / 3));
    cv::rectangle(image, a, b, cv::Scalar(rng.uniform(0, 255), rng.uniform(0, 255), rng.uniform(0, 255)), -1);
  }
  cv::Mat noise(image.size(), CV_8UC3);
  rng.fill(noise, cv::RNG::UNIFORM, 0, 12);
  image += noise;
  cv::GaussianBlur(image, image, cv::Size(3, 3), 0.8);
  cv::imwrite(path, image, {cv::IMWRITE_JPEG_QUALITY, 90});
}

// The repository root (this file is bench/extract_bench.cc; CMake compiles it by absolute path).
std::string SourceDir() {
  std::string file = __FILE__;
  file = file.substr(0, file.rfind('/'));
  return file.substr(0, file.rfind('/'));
}

double Since(const std::chrono::steady_clock::time_point& start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Full-size v2 state_dict (docs/model.md) with random values, as safetensors.
int MakeFullWeights(const std::string& path) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> tensors = {
      {"backbone.cls_token", {1, 1, 768}},
      {"backbone.pos_embed", {1, 1370, 768}},
      {"backbone.patch_embed.proj.weight", {768, 3, 14, 14}},
      {"backbone.patch_embed.proj.bias", {768}},
      {"backbone.norm.weight", {768}},
      {"backbone.norm.bias", {768}},
      {"aggregator.agg.dust_bin", {}},
      {"aggregator.agg.token_features.0.weight", {512, 768}},
      {"aggregator.agg.token_features.0.bias", {512}},
      {"aggregator.agg.token_features.2.weight", {256, 512}},
      {"aggregator.agg.token_features.2.bias", {256}},
      {"aggregator.agg.cluster_features.0.weight", {512, 768, 1, 1}},
      {"aggregator.agg.cluster_features.0.bias", {512}},
      {"aggregator.agg.cluster_features.3.weight", {256, 512, 1, 1}},
      {"aggregator.agg.cluster_features.3.bias", {256}},
      {"aggregator.agg.score.0.weight", {512, 768, 1, 1}},
      {"aggregator.agg.score.0.bias", {512}},
      {"aggregator.agg.score.3.weight", {64, 512, 1, 1}},
      {"aggregator.agg.score.3.bias", {64}},
      {"aggregator.linear.weight", {8448, 16640}},
      {"aggregator.linear.bias", {8448}},
  };
  for (int i = 0; i < 12; ++i) {
    const std::string b = "backbone.blocks." + std::to_string(i) + ".";
    for (const auto& [name, shape] : std::vector<std::pair<std::string, std::vector<int64_t>>>{
             {"norm1.weight", {768}}, {"norm1.bias", {768}}, {"attn.qkv.weight", {2304, 768}},
             {"attn.qkv.bias", {2304}}, {"attn.proj.weight", {768, 768}}, {"attn.proj.bias", {768}},
             {"ls1.gamma", {768}}, {"norm2.weight", {768}}, {"norm2.bias", {768}},
             {"mlp.fc1.weight", {3072, 768}}, {"mlp.fc1.bias", {3072}},
             {"mlp.fc2.weight", {768, 3072}}, {"mlp.fc2.bias", {768}}, {"ls2.gamma", {768}}}) {
      tensors.push_back({b + name, shape});
    }
  }
  std::sort(tensors.begin(), tensors.end());
  std::string header = "{\"__metadata__\":{\"format\":\"pt\"}";
  uint64_t offset = 0;
  for (const auto& [name, shape] : tensors) {
    uint64_t count = 1;
    std::string dims;
    for (const int64_t d : shape) {
      count *= static_cast<uint64_t>(d);
      dims += (dims.empty() ? "" : ",") + std::to_string(d);
    }
    header += ",\"" + name + "\":{\"dtype\":\"F32\",\"shape\":[" + dims +
              "],\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(offset + 4 * count) + "]}";
    offset += 4 * count;
  }
  header += "}";
  while ((8 + header.size()) % 8 != 0) header += ' ';
  std::ofstream out(path, std::ios::binary);
  const uint64_t header_size = header.size();
  out.write(reinterpret_cast<const char*>(&header_size), 8);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  cv::RNG rng(0);
  for (const auto& [name, shape] : tensors) {
    uint64_t count = 1;
    for (const int64_t d : shape) count *= static_cast<uint64_t>(d);
    const int64_t fan_in = shape.size() >= 2 ? count / static_cast<uint64_t>(shape[0]) : 1;
    std::vector<float> values(count);
    const bool is_weight = shape.size() >= 2;
    for (float& v : values) {
      if (name.find("gamma") != std::string::npos) v = static_cast<float>(rng.uniform(0.05, 0.5));
      else if (name.find("norm") != std::string::npos && name.find("weight") != std::string::npos)
        v = static_cast<float>(1.0 + rng.gaussian(0.1));
      else if (name == "aggregator.agg.dust_bin") v = 1.0f;
      else if (name.find("token") != std::string::npos && shape.size() == 3) v = static_cast<float>(rng.gaussian(0.5));
      else if (name.find("pos_embed") != std::string::npos) v = static_cast<float>(rng.gaussian(0.5));
      else if (is_weight) v = static_cast<float>(rng.uniform(-1.0, 1.0) / std::sqrt(static_cast<double>(fan_in)));
      else v = static_cast<float>(rng.uniform(-0.05, 0.05));
    }
    out.write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(4 * count));
  }
  if (!out) {
    std::cerr << "cannot write " << path << std::endl;
    return 1;
  }
  std::printf("wrote %s: %zu tensors, %.1f MB\n", path.c_str(), tensors.size(), (8 + header.size() + offset) / 1e6);
  return 0;
}

int StoreBench(int n, int dim, int commit_every, std::string dir) {
  using megaloc::DescriptorFile;
  if (dir.empty()) dir = megaloc::CreateTempDirectory("megaloc_store_bench");
  const std::string path = dir + "/store_" + std::to_string(n) + ".h5";
  std::vector<float> v(dim);
  cv::RNG rng(1);
  for (float& x : v) x = static_cast<float>(rng.gaussian(1.0) / std::sqrt(dim));
  auto start = std::chrono::steady_clock::now();
  {
    auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kCreate);
    for (int i = 0; i < n; ++i) {
      v[i % dim] += 1e-3f;
      file->Write("seq" + std::to_string(i % 100) + "/img_" + std::to_string(i) + ".jpg", v.data(),
                  dim, 640, 480);
      if ((i + 1) % commit_every == 0) file->Flush();
    }
  }
  const double write_s = Since(start);
  start = std::chrono::steady_clock::now();
  auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kAppend);
  const double open_append_s = Since(start);
  file.reset();
  start = std::chrono::steady_clock::now();
  file = DescriptorFile::Open(path, DescriptorFile::Mode::kRead);
  const std::vector<std::string> names = file->ListDescriptorNames();
  const double list_s = Since(start);
  start = std::chrono::steady_clock::now();
  megaloc::DescriptorBlock block;
  double checksum = 0;
  for (size_t b = 0; b < names.size(); b += 1024) {
    file->ReadBlock(names, b, std::min(names.size(), b + 1024), &block);
    checksum += block(0, 0);
  }
  const double read_s = Since(start);
  start = std::chrono::steady_clock::now();
  std::vector<uint16_t> bits;
  int d = 0;
  for (size_t b = 0; b < names.size(); b += 1024) {
    file->ReadBlockHalf(names, b, std::min(names.size(), b + 1024), &bits, &d);
    checksum += bits[0];
  }
  const double read_half_s = Since(start);
  struct stat st;
  stat(path.c_str(), &st);
  std::printf(
      "RESULT store images=%d dim=%d commit_every=%d file_mib=%.1f write_s=%.2f "
      "write_images_per_s=%.0f open_append_s=%.3f open_list_s=%.3f read_block_s=%.2f "
      "read_block_mib_per_s=%.0f read_half_s=%.2f load=%s (checksum %.3g)\n",
      n, dim, commit_every, st.st_size / 1048576.0, write_s, n / write_s, open_append_s, list_s,
      read_s, st.st_size / 1048576.0 / read_s, read_half_s, LoadAverage().c_str(), checksum);
  file.reset();
  std::remove(path.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--make_full_weights") return MakeFullWeights(argv[i + 1]);
    if (std::string(argv[i]) == "--store") {
      int dim = 8448, commit_every = 64;
      std::string dir;
      for (int j = 1; j + 1 < argc; j += 2) {
        const std::string key = argv[j];
        if (key == "--dim") dim = std::stoi(argv[j + 1]);
        if (key == "--commit_every") commit_every = std::stoi(argv[j + 1]);
        if (key == "--dir") dir = argv[j + 1];
      }
      return StoreBench(std::stoi(argv[i + 1]), dim, commit_every, dir);
    }
  }
  int num_images = 64, width = 640, height = 480, batch_size = 1, num_workers = 2, num_threads = -1,
      repeat = 1;
  std::string commit_interval = "1", extra, megaloc, dir;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--num_images") num_images = std::stoi(value);
    else if (key == "--width") width = std::stoi(value);
    else if (key == "--height") height = std::stoi(value);
    else if (key == "--batch_size") batch_size = std::stoi(value);
    else if (key == "--num_workers") num_workers = std::stoi(value);
    else if (key == "--num_threads") num_threads = std::stoi(value);
    else if (key == "--commit_interval") commit_interval = value;
    else if (key == "--extra") extra = value;
    else if (key == "--megaloc") megaloc = value;
    else if (key == "--dir") dir = value;
    else if (key == "--repeat") repeat = std::stoi(value);
    else {
      std::cerr << "unknown option " << key << std::endl;
      return 2;
    }
  }
  if (megaloc.empty()) {
    // bench/extract_bench -> tools/megaloc in the same build tree.
    char self[4096];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    std::string exe = n > 0 ? std::string(self, n) : argv[0];
    megaloc = exe.substr(0, exe.rfind('/')) + "/../tools/megaloc";
  }
  const char* env_weights = std::getenv("MEGALOC_BENCH_WEIGHTS");
  const std::string weights = env_weights != nullptr && *env_weights != '\0'
                                  ? env_weights
                                  : SourceDir() + "/tests/data/megaloc_tiny/megaloc_tiny_v2.safetensors";
  if (dir.empty()) dir = megaloc::CreateTempDirectory("megaloc_extract_bench");
  const std::string images = dir + "/images_" + std::to_string(num_images) + "_" +
                             std::to_string(width) + "x" + std::to_string(height);
  if (!megaloc::DirectoryExists(images)) {
    megaloc::CreateDirectories(images);
    for (int i = 0; i < num_images; ++i) {
      char name[64];
      std::snprintf(name, sizeof(name), "/seq%d/img_%05d.jpg", i % 4, i);
      megaloc::CreateDirectories(images + "/seq" + std::to_string(i % 4));
      MakeImage(images + name, width, height, i);
    }
  }
  for (int r = 0; r < repeat; ++r) {
    const std::string output = dir + "/out_" + std::to_string(getpid()) + "_" + std::to_string(r) + ".h5";
    std::remove(output.c_str());
    const std::string command =
        "exec " + megaloc + " extract --quiet --image_path " + images + " --output_path " + output +
        " --weights_path " + weights + " --batch_size " + std::to_string(batch_size) +
        " --num_workers " + std::to_string(num_workers) + " --num_threads " +
        std::to_string(num_threads) + " --commit_interval " + commit_interval + " " + extra;
    const std::string load_before = LoadAverage();
    const auto start = std::chrono::steady_clock::now();
    const pid_t pid = fork();
    if (pid == 0) {
      execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    int status = 0;
    struct rusage usage;
    wait4(pid, &status, 0, &usage);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::cerr << "extract failed: " << command << std::endl;
      return 1;
    }
    const auto file = megaloc::DescriptorFile::Open(output, megaloc::DescriptorFile::Mode::kRead);
    const size_t written = file->ListNames().size();
    std::printf(
        "RESULT images=%d size=%dx%d batch=%d workers=%d threads=%d commit_interval=%s written=%zu "
        "seconds=%.2f images_per_second=%.2f peak_rss_mib=%.0f user_s=%.2f sys_s=%.2f "
        "load_before=%s load_after=%s extra='%s'\n",
        num_images, width, height, batch_size, num_workers, num_threads, commit_interval.c_str(),
        written, seconds, num_images / seconds, usage.ru_maxrss / 1024.0,
        usage.ru_utime.tv_sec + usage.ru_utime.tv_usec * 1e-6,
        usage.ru_stime.tv_sec + usage.ru_stime.tv_usec * 1e-6, load_before.c_str(),
        LoadAverage().c_str(), extra.c_str());
    std::fflush(stdout);
    std::remove(output.c_str());
  }
  return 0;
}
