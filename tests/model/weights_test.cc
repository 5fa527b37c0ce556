// Checkpoint readers/writers and the strict loader.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <caffe2/serialize/inline_container.h>

#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>

#include "megaloc/model/megaloc.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/sha256.h"
#include "tests/model/model_test_utils.h"

namespace megaloc {
namespace testing {
namespace {

std::string ReadLines(const std::string& path) { return ReadFileToString(path); }

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}


bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(WeightsTest, SafetensorsKeysShapesAndOrderMatchStateDict) {
  const std::string path = TinyPath("megaloc_tiny_v2.safetensors");
  std::map<std::string, std::string> metadata;
  const TensorMap tensors = ReadSafetensors(path, &metadata);
  EXPECT_EQ(tensors.size(), 49u);
  EXPECT_EQ(metadata["format"], "pt");
  EXPECT_EQ(tensors.at("aggregator.agg.dust_bin").dim(), 0);
  // The network's named_parameters() reproduce upstream's state_dict() order and shapes.
  const std::string keys = ReadLines(TinyPath("state_dict_v2_keys.txt"));
  MegaLocNet net = LoadTinyNet();
  std::string produced;
  for (const auto& item : net->named_parameters()) {
    std::string shape = "[";
    for (int64_t i = 0; i < item.value().dim(); ++i) {
      shape += (i ? ", " : "") + std::to_string(item.value().size(i));
    }
    shape += "]";
    produced += item.key() + "\t" + shape + "\n";
  }
  // key<TAB>shape<TAB>dtype per line; the first two columns must match exactly, in order.
  std::istringstream expected_lines(keys);
  std::istringstream produced_lines(produced);
  std::string expected_line;
  std::string produced_line;
  int lines = 0;
  while (std::getline(expected_lines, expected_line)) {
    if (expected_line.empty()) continue;
    ASSERT_TRUE(static_cast<bool>(std::getline(produced_lines, produced_line)));
    EXPECT_EQ(produced_line, expected_line.substr(0, expected_line.rfind('\t')));
    ++lines;
  }
  EXPECT_EQ(lines, 49);
  EXPECT_EQ(CountParameters(*net), 240313);
}

TEST(WeightsTest, V1TorchZipReadsOrderedDictAndEqualsV2) {
  const TensorMap v1 = ReadTorchZip(TinyPath("megaloc_tiny_v1.torch"));
  EXPECT_EQ(v1.size(), 50u);
  ASSERT_TRUE(v1.count("backbone.model.mask_token"));
  EXPECT_EQ(v1.at("backbone.model.mask_token").sizes(), (std::vector<int64_t>{1, 64}));
  const TensorMap canonical = CanonicalizeMegaLocKeys(v1);
  const TensorMap v2 = ReadSafetensors(TinyPath("megaloc_tiny_v2.safetensors"));
  ASSERT_EQ(canonical.size(), v2.size());
  for (const auto& item : v2) {
    ASSERT_TRUE(canonical.count(item.first)) << item.first;
    EXPECT_TRUE(torch::equal(canonical.at(item.first), item.second)) << item.first;
  }
  // Detected by content, not by extension.
  WeightsFormat format = WeightsFormat::kSafetensors;
  ReadTensorFile(TinyPath("megaloc_tiny_v1.torch"), &format);
  EXPECT_EQ(format, WeightsFormat::kTorchZip);
}

TEST(WeightsTest, V1AndV2GiveIdenticalDescriptors) {
  at::set_num_threads(1);
  ModelOptions options;
  options.num_threads = 1;
  options.weights_path = TinyPath("megaloc_tiny_v2.safetensors");
  MegaLocModel v2(options);
  options.weights_path = TinyPath("megaloc_tiny_v1.torch");
  MegaLocModel v1(options);
  EXPECT_EQ(v1.Info().weights_format, "torch-zip");
  EXPECT_EQ(v1.Info().num_heads, 4);
  PreprocessingOptions pre;
  pre.mode = ResizeMode::kNative;
  for (const char* image : {"images/test_300x500.png", "images/test_257x189_gray.png"}) {
    const PreprocessedImage input = LoadAndPreprocessImage(TinyPath(image), pre);
    const Eigen::VectorXf a = v1.Extract(input);
    const Eigen::VectorXf b = v2.Extract(input);
    EXPECT_EQ((a - b).cwiseAbs().maxCoeff(), 0.0f) << image;
  }
}

TEST(WeightsTest, WritersRoundTrip) {
  const std::string dir = TempDir();
  TensorMap tensors = ReadSafetensors(TinyPath("megaloc_tiny_v2.safetensors"));
  tensors["extra.half_source"] = torch::arange(6, torch::kFloat).reshape({2, 3});
  tensors["extra.int64"] = torch::arange(5, torch::kLong);
  const std::string st = JoinPaths(dir, "a.safetensors");
  const std::string zip = JoinPaths(dir, "a.torch");
  WriteSafetensors(st, tensors);
  WriteTorchZip(zip, tensors);
  EXPECT_EQ(DetectWeightsFormat(st), WeightsFormat::kSafetensors);
  EXPECT_EQ(DetectWeightsFormat(zip), WeightsFormat::kTorchZip);
  for (const std::string& path : {st, zip}) {
    const TensorMap back = ReadTensorFile(path);
    ASSERT_EQ(back.size(), tensors.size()) << path;
    for (const auto& item : tensors) {
      ASSERT_TRUE(back.count(item.first)) << path << " " << item.first;
      EXPECT_EQ(back.at(item.first).scalar_type(), item.second.scalar_type()) << item.first;
      EXPECT_TRUE(torch::equal(back.at(item.first), item.second)) << path << " " << item.first;
    }
  }
  // F16 / BF16 safetensors are widened to float32.
  TensorMap half;
  half["h"] = torch::tensor({0.5f, -2.0f, 1024.0f}).to(torch::kHalf);
  half["b"] = torch::tensor({0.5f, -2.0f, 3.0f}).to(torch::kBFloat16);
  const std::string half_path = JoinPaths(dir, "half.safetensors");
  WriteSafetensors(half_path, half);
  const TensorMap half_back = ReadSafetensors(half_path);
  EXPECT_EQ(half_back.at("h").scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::equal(half_back.at("h"), torch::tensor({0.5f, -2.0f, 1024.0f})));
  EXPECT_TRUE(torch::equal(half_back.at("b"), torch::tensor({0.5f, -2.0f, 3.0f})));
}

// Both writers go through the common output helper: a failed write (disk full; here RLIMIT_FSIZE,
// which fails writes with EFBIG the same way) names the file and the system's reason and leaves no
// .tmp nor a partial file; a device is refused instead of being replaced.
TEST(WeightsTest, WritersReportFailedWritesAndLeaveNoTemporary) {
  const std::string dir = TempDir();
  const TensorMap tensors = ReadSafetensors(TinyPath("megaloc_tiny_v2.safetensors"));
  for (const bool zip : {false, true}) {
    const std::string path = JoinPaths(dir, zip ? "full.torch" : "full.safetensors");
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      signal(SIGXFSZ, SIG_IGN);
      const rlimit limit = {16384, 16384};
      setrlimit(RLIMIT_FSIZE, &limit);
      try {
        zip ? WriteTorchZip(path, tensors) : WriteSafetensors(path, tensors);
        _exit(3);
      } catch (const IoError& e) {
        const std::string what = e.what();
        _exit(Contains(what, "File too large") && Contains(what, path) ? 0 : 4);
      } catch (...) {
        _exit(5);
      }
    }
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status)) << path;
    EXPECT_EQ(WEXITSTATUS(status), 0) << path;
    EXPECT_FALSE(FileExists(path + ".tmp")) << path;
    EXPECT_FALSE(FileExists(path)) << path;
  }
  EXPECT_TRUE(Contains(ThrownMessage<IoError>([&] { WriteSafetensors("/dev/null", tensors); }),
                       "/dev/null: cannot write the output"));
  EXPECT_TRUE(Contains(ThrownMessage<IoError>([&] { WriteTorchZip("/dev/null", tensors); }),
                       "/dev/null: cannot write the output"));
}

TEST(WeightsTest, ConvertV1ToV2) {
  const std::string out = JoinPaths(TempDir(), "converted.safetensors");
  const ConversionStats stats = ConvertMegaLocCheckpoint(TinyPath("megaloc_tiny_v1.torch"), out);
  EXPECT_EQ(stats.input_format, WeightsFormat::kTorchZip);
  EXPECT_EQ(stats.num_tensors, 49);
  EXPECT_EQ(stats.num_parameters, 240313);
  const TensorMap converted = ReadSafetensors(out);
  const TensorMap official = ReadSafetensors(TinyPath("megaloc_tiny_v2.safetensors"));
  ASSERT_EQ(converted.size(), official.size());
  for (const auto& item : official) {
    ASSERT_TRUE(converted.count(item.first)) << item.first;
    EXPECT_TRUE(torch::equal(converted.at(item.first), item.second)) << item.first;
  }
}

TEST(WeightsTest, ModulePrefixIsStripped) {
  TensorMap raw;
  raw["module.backbone.model.pos_embed"] = torch::zeros({1});
  raw["module.aggregator.linear.bias"] = torch::zeros({1});
  raw["backbone.model.mask_token"] = torch::zeros({1});
  const TensorMap canonical = CanonicalizeMegaLocKeys(raw);
  EXPECT_EQ(canonical.size(), 2u);
  EXPECT_TRUE(canonical.count("backbone.pos_embed"));
  EXPECT_TRUE(canonical.count("aggregator.linear.bias"));
  raw["backbone.pos_embed"] = torch::zeros({1});
  EXPECT_THROW(CanonicalizeMegaLocKeys(raw, "x.torch"), FormatError);
}

TEST(WeightsTest, StrictLoaderListsEveryMissingUnexpectedAndMisshapedKey) {
  const std::string dir = TempDir();
  TensorMap tensors = ReadSafetensors(TinyPath("megaloc_tiny_v2.safetensors"));
  tensors.erase("backbone.blocks.1.ls2.gamma");
  tensors.erase("aggregator.agg.dust_bin");
  tensors["aggregator.agg.extra_weight"] = torch::zeros({3});
  tensors["backbone.norm.bias"] = torch::zeros({65});
  const std::string path = JoinPaths(dir, "broken.safetensors");
  WriteSafetensors(path, tensors);
  // config.json beside it is absent: heads default to embed_dim / 64.
  ModelOptions options;
  options.weights_path = path;
  options.num_threads = 1;
  const std::string message = ThrownMessage<FormatError>([&] { MegaLocModel model(options); });
  EXPECT_TRUE(Contains(message, path)) << message;
  EXPECT_TRUE(Contains(message, "2 missing keys")) << message;
  EXPECT_TRUE(Contains(message, "backbone.blocks.1.ls2.gamma")) << message;
  EXPECT_TRUE(Contains(message, "aggregator.agg.dust_bin")) << message;
  EXPECT_TRUE(Contains(message, "1 unexpected keys [aggregator.agg.extra_weight]")) << message;
  EXPECT_TRUE(Contains(message, "backbone.norm.bias: file [65] vs model [64]")) << message;
}

TEST(WeightsTest, WrongArchitectureIsRejected) {
  // A generic (non-MegaLoc) state dict: every key unexpected, every MegaLoc key missing.
  const std::string path = JoinPaths(TempDir(), "other.safetensors");
  TensorMap other;
  other["fc.weight"] = torch::zeros({2, 2});
  WriteSafetensors(path, other);
  ModelOptions options;
  options.weights_path = path;
  const std::string message = ThrownMessage<FormatError>([&] { MegaLocModel model(options); });
  EXPECT_TRUE(Contains(message, path)) << message;
  EXPECT_TRUE(Contains(message, "unexpected keys [fc.weight]")) << message;
  EXPECT_TRUE(Contains(message, "missing keys")) << message;
}

// A zip archive as torch.save writes it (stored records under "archive/"), with the given records.
void WriteTorchArchive(const std::string& path, const std::vector<std::pair<std::string, std::string>>& records) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  caffe2::serialize::PyTorchStreamWriter writer([&file](const void* data, size_t size) {
    file.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
    return size;
  });
  for (const auto& record : records) {
    writer.writeRecord(record.first, record.second.data(), record.second.size());
  }
  writer.writeEndOfFile();
}

// data.pkl of an OrderedDict {"w": float tensor of `sizes`} on storage "0" of `numel_bytes`
// (an 8-byte LONG1 numel), as WriteTorchZip lays it out.
std::string StateDictPickle(const std::string& numel_le8, int64_t size0) {
  auto str = [](const std::string& text) {
    std::string out = "X";
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((text.size() >> (8 * i)) & 0xff));
    return out + text;
  };
  auto int32 = [](int32_t v) {
    std::string out = "J";
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return out;
  };
  std::string p = "\x80\x02" "ccollections\nOrderedDict\n)R(";
  p += str("w") + "ctorch._utils\n_rebuild_tensor_v2\n((" + str("storage") + "ctorch\nFloatStorage\n" +
       str("0") + str("cpu") + "\x8a\x08" + numel_le8 + "tQ" + int32(0) + "(" + int32(static_cast<int32_t>(size0)) +
       "t(" + int32(1) + "t\x89" "ccollections\nOrderedDict\n)RtRu.";
  return p;
}

// Issue 14, bad inputs 5, 8 and 10 for torch.save files: a 2 M-deep data.pkl (SIGSEGV), a data.pkl
// whose central directory says it inflates to 2 GB (read before any check), a storage numel far
// beyond its record (c10 backtrace).
TEST(WeightsTest, HostileTorchZipsAreFormatErrors) {
  const std::string dir = TempDir();
  const std::string deep = JoinPaths(dir, "deep.torch");
  WriteTorchArchive(deep, {{"data.pkl", "\x80\x02N" + std::string(2000000, '\x85') + "."}});
  std::string message = ThrownMessage<FormatError>([&] { ReadTorchZip(deep); });
  EXPECT_TRUE(Contains(message, deep) && Contains(message, "nest deeper than 1000")) << message;

  // A valid one-tensor file first (8 floats), then the same with a storage numel of 2^60.
  const std::string ok = JoinPaths(dir, "ok.torch");
  const std::string eight("\x08\0\0\0\0\0\0\0", 8);
  WriteTorchArchive(ok, {{"data.pkl", StateDictPickle(eight, 8)}, {"data/0", std::string(32, '\0')}});
  const TensorMap tensors = ReadTorchZip(ok);
  ASSERT_EQ(tensors.count("w"), 1u);
  EXPECT_EQ(tensors.at("w").numel(), 8);
  const std::string huge = JoinPaths(dir, "huge_numel.torch");
  WriteTorchArchive(huge, {{"data.pkl", StateDictPickle(std::string("\0\0\0\0\0\0\0\x10", 8), 8)},
                           {"data/0", std::string(32, '\0')}});
  message = ThrownMessage<FormatError>([&] { ReadTorchZip(huge); });
  EXPECT_TRUE(Contains(message, huge) && Contains(message, "too few for 1152921504606846976"))
      << message;
  // A tensor of 2^31 elements on a storage of 8 (size larger than the storage).
  const std::string big = JoinPaths(dir, "big_view.torch");
  WriteTorchArchive(big, {{"data.pkl", StateDictPickle(eight, 0x7fffffff)}, {"data/0", std::string(32, '\0')}});
  message = ThrownMessage<FormatError>([&] { ReadTorchZip(big); });
  EXPECT_TRUE(Contains(message, big) && Contains(message, "exceeds its storage")) << message;

  // Zip bomb: the central directory entry of data.pkl says deflated, 2 GB uncompressed.
  std::string patched = ReadFileToString(ok);
  const size_t entry = patched.find("PK\x01\x02");
  ASSERT_NE(entry, std::string::npos);
  patched.replace(entry + 10, 2, std::string("\x08\0", 2));     // method: deflate
  patched.replace(entry + 24, 4, std::string("\0\0\0\x80", 4));  // uncompressed size: 2^31
  const std::string bomb = JoinPaths(dir, "bomb.torch");
  WriteBytes(bomb, patched);
  message = ThrownMessage<FormatError>([&] { ReadTorchZip(bomb); });
  EXPECT_TRUE(Contains(message, bomb) && Contains(message, "data.pkl inflates to 2147483648 bytes"))
      << message;
}

// Issue 14, bad input 10: overflowing safetensors shapes gave c10 backtraces.
// Fuzzing finding (torch_zip_fuzzer): a `version` record holding a non-number with a newline
// ("\xb3\n"); LibTorch quotes it in its message, which must be escaped to keep the error one line.
TEST(WeightsTest, LibTorchMessagesQuotingFileBytesStayOneLine) {
  const std::string path = TestDataPath("fuzz_regressions/torch_zip_version_not_a_number.torch");
  const std::string message = ThrownMessage<FormatError>([&] { ReadTorchZip(path); });
  EXPECT_TRUE(Contains(message, path + ": not a readable torch.save zip archive")) << message;
  EXPECT_FALSE(Contains(message, "\n")) << message;
  for (const char c : message) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << message;
}

TEST(WeightsTest, OverflowingSafetensorsShapesAreFormatErrors) {
  const std::string dir = TempDir();
  auto write = [&](const std::string& name, const std::string& header, size_t data_bytes) {
    const std::string path = JoinPaths(dir, name);
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
    WriteBytes(path, bytes + header + std::string(data_bytes, '\0'));
    return path;
  };
  // 2^32 * 2^32 * 16 elements wrap to 0 = data_offsets [0, 0].
  std::string path = write("wrap.safetensors",
                           "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
                           "\"data_offsets\":[0,0]}}",
                           0);
  std::string message = ThrownMessage<FormatError>([&] { ReadSafetensors(path); });
  EXPECT_TRUE(Contains(message, path) && Contains(message, "'w'") && Contains(message, "overflows"))
      << message;
  // numel * 4 wraps 64 bits: 2^62 floats claim 0 bytes.
  path = write("wrap4.safetensors",
               "{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]}}", 0);
  message = ThrownMessage<FormatError>([&] { ReadSafetensors(path); });
  EXPECT_TRUE(Contains(message, path) && Contains(message, "needs more bytes")) << message;
  // An empty tensor with a huge dimension is fine (0 elements).
  path = write("empty.safetensors",
               "{\"w\":{\"dtype\":\"F32\",\"shape\":[1099511627776,0],\"data_offsets\":[0,0]}}", 0);
  EXPECT_EQ(ReadSafetensors(path).at("w").numel(), 0);
}

// Issue 14, bad input 10: NaN/Inf weights loaded silently and gave NaN descriptors.
TEST(WeightsTest, NonFiniteWeightsAreRefusedNamingTheTensor) {
  const std::string dir = TempDir();
  TensorMap tensors = ReadSafetensors(TinyPath("megaloc_tiny_v2.safetensors"));
  tensors["aggregator.linear.weight"] = tensors["aggregator.linear.weight"].clone();
  tensors["aggregator.linear.weight"].view(-1)[3] = std::numeric_limits<float>::quiet_NaN();
  tensors["aggregator.linear.weight"].view(-1)[5] = std::numeric_limits<float>::infinity();
  const std::string path = JoinPaths(dir, "nan.safetensors");
  WriteSafetensors(path, tensors);
  std::ofstream(JoinPaths(dir, "config.json")) << ReadFileToString(TinyPath("config.json"));
  ModelOptions options;
  options.weights_path = path;
  options.num_threads = 1;
  const std::string message = ThrownMessage<FormatError>([&] { MegaLocModel model(options); });
  EXPECT_TRUE(Contains(message, path + ": tensor 'aggregator.linear.weight' has 2 NaN/Inf value(s)"))
      << message;
}

TEST(WeightsTest, TruncatedGarbageAndWrongFormatFilesNameTheFile) {
  const std::string dir = TempDir();
  const std::string st_bytes = ReadFileToString(TinyPath("megaloc_tiny_v2.safetensors"));
  const std::string zip_bytes = ReadFileToString(TinyPath("megaloc_tiny_v1.torch"));

  const std::string truncated_st = JoinPaths(dir, "truncated.safetensors");
  WriteBytes(truncated_st, st_bytes.substr(0, st_bytes.size() - 1000));
  std::string message = ThrownMessage<FormatError>([&] { ReadTensorFile(truncated_st); });
  EXPECT_TRUE(Contains(message, truncated_st) && Contains(message, "truncated")) << message;

  const std::string header_only = JoinPaths(dir, "header_cut.safetensors");
  WriteBytes(header_only, st_bytes.substr(0, 100));
  message = ThrownMessage<FormatError>([&] { ReadSafetensors(header_only); });
  EXPECT_TRUE(Contains(message, header_only)) << message;

  const std::string truncated_zip = JoinPaths(dir, "truncated.torch");
  WriteBytes(truncated_zip, zip_bytes.substr(0, zip_bytes.size() / 2));
  message = ThrownMessage<FormatError>([&] { ReadTensorFile(truncated_zip); });
  EXPECT_TRUE(Contains(message, truncated_zip)) << message;

  const std::string garbage = JoinPaths(dir, "garbage.safetensors");
  WriteBytes(garbage, "this is not a checkpoint at all, just some text\n");
  message = ThrownMessage<FormatError>([&] { ReadTensorFile(garbage); });
  EXPECT_TRUE(Contains(message, garbage) && Contains(message, "not a checkpoint")) << message;

  const std::string empty = JoinPaths(dir, "empty.torch");
  WriteBytes(empty, "");
  message = ThrownMessage<FormatError>([&] { ReadTensorFile(empty); });
  EXPECT_TRUE(Contains(message, empty) && Contains(message, "empty")) << message;

  // A PNG image given as weights.
  const std::string png = TinyPath("images/test_100x70.png");
  message = ThrownMessage<FormatError>([&] { ReadTensorFile(png); });
  EXPECT_TRUE(Contains(message, png)) << message;

  // Bad JSON header.
  const std::string bad_json = JoinPaths(dir, "bad_json.safetensors");
  std::string bytes(8, '\0');
  const std::string header = "{\"a\": [1, 2";
  bytes[0] = static_cast<char>(header.size());
  WriteBytes(bad_json, bytes + header + "      ");
  message = ThrownMessage<FormatError>([&] { ReadSafetensors(bad_json); });
  EXPECT_TRUE(Contains(message, bad_json) && Contains(message, "JSON")) << message;

  // Offsets that do not match the shape.
  const std::string bad_offsets = JoinPaths(dir, "bad_offsets.safetensors");
  const std::string header2 =
      "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}";
  std::string bytes2(8, '\0');
  bytes2[0] = static_cast<char>(header2.size());
  WriteBytes(bad_offsets, bytes2 + header2 + std::string(16, '\0'));
  message = ThrownMessage<FormatError>([&] { ReadSafetensors(bad_offsets); });
  EXPECT_TRUE(Contains(message, bad_offsets) && Contains(message, "'w'")) << message;

  // A zip that is not a torch.save file.
  const std::string not_torch = JoinPaths(dir, "not_torch.zip");
  {
    const std::string tmp = JoinPaths(dir, "nt");
    WriteTorchZip(tmp, {});
    // Valid archive with data.pkl but a top-level list instead of a dict.
    WriteBytes(not_torch, ReadFileToString(tmp));
  }
  EXPECT_NO_THROW(ReadTorchZip(not_torch));  // an empty OrderedDict is a valid (empty) state dict
  ModelOptions options;
  options.weights_path = not_torch;
  message = ThrownMessage<FormatError>([&] { MegaLocModel model(options); });
  EXPECT_TRUE(Contains(message, not_torch) && Contains(message, "missing keys")) << message;

  // Missing file.
  const std::string missing = JoinPaths(dir, "missing.safetensors");
  message = ThrownMessage<IoError>([&] { ReadTensorFile(missing); });
  EXPECT_TRUE(Contains(message, missing) && Contains(message, "no such file")) << message;
}

}  // namespace
}  // namespace testing
}  // namespace megaloc

namespace megaloc {
namespace testing {
namespace {

TEST(WeightsTest, PublicConvertAndInfo) {
  const std::string out = JoinPaths(TempDir(), "v2.safetensors");
  std::string input_format;
  const ModelInfo info = ConvertCheckpointToSafetensors(TinyPath("megaloc_tiny_v1.torch"), out,
                                                        /*num_heads=*/4, &input_format);
  EXPECT_EQ(input_format, "torch-zip");
  EXPECT_EQ(info.weights_format, "safetensors");
  EXPECT_EQ(info.num_parameters, 240313);
  EXPECT_EQ(info.num_heads, 4);
  const ModelInfo tiny = ReadCheckpointInfo(TinyPath("megaloc_tiny_v2.safetensors"));
  EXPECT_EQ(tiny.num_heads, 4);
  EXPECT_EQ(tiny.descriptor_dim, 48);
  EXPECT_EQ(tiny.weights_sha256.size(), 64u);
  EXPECT_THROW(ReadCheckpointInfo(TinyPath("images/test_100x70.png")), FormatError);
}

}  // namespace
}  // namespace testing
}  // namespace megaloc

namespace megaloc {
namespace testing {
namespace {

// The real `megaloc` executable (built with the project).
TEST(WeightsCliTest, ModelInfoAndConvertWeights) {
  const std::string dir = TempDir();
  const std::string exe = MegalocExecutable();
  ASSERT_TRUE(FileExists(exe)) << exe << " not built";
  const std::string log = JoinPaths(dir, "out.txt");
  ASSERT_EQ(RunShell(exe + " model_info --weights_path " + TinyPath("megaloc_tiny_v2.safetensors") +
                     " > " + log + " 2>&1"),
            0);
  std::string out = ReadFileToString(log);
  EXPECT_TRUE(Contains(out, "num_parameters:  240,313")) << out;
  EXPECT_TRUE(Contains(out, "heads 4")) << out;
  EXPECT_TRUE(Contains(out, Sha256File(TinyPath("megaloc_tiny_v2.safetensors")))) << out;

  const std::string converted = JoinPaths(dir, "v1.safetensors");
  ASSERT_EQ(RunShell(exe + " convert_weights --input_path " + TinyPath("megaloc_tiny_v1.torch") +
                     " --output_path " + converted + " --num_heads 4 > " + log + " 2>&1"),
            0);
  out = ReadFileToString(log);
  EXPECT_TRUE(Contains(out, "(torch-zip)")) << out;
  const TensorMap back = ReadSafetensors(converted);
  EXPECT_EQ(back.size(), 49u);

  // Errors: one ERROR line naming the file, exit code 1.
  const std::string png = TinyPath("images/test_100x70.png");
  EXPECT_EQ(RunShell(exe + " model_info --weights_path " + png + " > " + log + " 2>&1"), 1);
  out = ReadFileToString(log);
  EXPECT_TRUE(Contains(out, "ERROR: " + png)) << out;
  EXPECT_EQ(RunShell(exe + " convert_weights --input_path " + png + " --output_path " +
                     JoinPaths(dir, "x.safetensors") + " > " + log + " 2>&1"),
            1);
  EXPECT_FALSE(FileExists(JoinPaths(dir, "x.safetensors")));
  EXPECT_EQ(RunShell(exe + " model_info > " + log + " 2>&1"), 1);
}

}  // namespace
}  // namespace testing
}  // namespace megaloc
