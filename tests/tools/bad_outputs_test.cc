// The bad-input round of issue 14 through the real `megaloc` executable: outputs that are devices,
// FIFOs, directories, symbolic links or one of the inputs; descriptor files with absurd sizes, NaN
// values or mixed dimensions; a full disk. Each ends with one ERROR line naming the file and the
// reason and a non-zero exit (never a signal), and leaves inputs and earlier outputs intact.

#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "megaloc/io/descriptor_store.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/string_utils.h"
#include "tests/common/testing.h"

namespace megaloc {
namespace {

using ::megaloc::testing::MegalocExecutable;
using ::megaloc::testing::RunShell;
using ::megaloc::testing::TempDir;
using ::megaloc::testing::TestDataPath;

struct CommandRun {
  int status = -1;  // exit status; 124 if it hung (timeout), -1 if killed by a signal
  std::string output;
};

// `megaloc <args>` with stdout+stderr captured; `prefix` runs first in the same shell (e.g. limits).
CommandRun Megaloc(const std::string& args, const std::string& prefix = "") {
  const std::string log = JoinPaths(TempDir(), "megaloc.log");
  CommandRun run;
  run.status = RunShell(prefix + " timeout 120 '" + MegalocExecutable() + "' " + args + " > '" + log + "' 2>&1");
  run.output = FileExists(log) ? ReadFileToString(log) : "";
  return run;
}

// One clear error: exit status 1, a single line starting with ERROR that holds every needle.
void ExpectCleanError(const CommandRun& run, const std::vector<std::string>& needles) {
  EXPECT_EQ(run.status, 1) << run.output;
  size_t lines = 0;
  std::string error_line;
  for (const std::string& line : Split(run.output, '\n')) {
    if (line.rfind("ERROR", 0) == 0) {
      ++lines;
      error_line = line;
    }
  }
  EXPECT_EQ(lines, 1u) << run.output;
  for (const std::string& needle : needles) EXPECT_NE(error_line.find(needle), std::string::npos) << run.output;
}

std::vector<float> Unit(int dim, int seed) {
  std::vector<float> v(dim);
  double norm = 0;
  for (int i = 0; i < dim; ++i) {
    v[i] = std::sin(static_cast<float>(seed * 31 + i * 7));
    norm += v[i] * v[i];
  }
  for (float& x : v) x = static_cast<float>(x / std::sqrt(norm));
  return v;
}

void WriteDescriptors(const std::string& path, int num_images, int dim, const std::string& prefix = "img") {
  auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kCreate);
  for (int i = 0; i < num_images; ++i) {
    file->Write(prefix + std::to_string(i) + ".jpg", Unit(dim, i).data(), dim, 64, 48);
  }
}

bool IsFifo(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0 && S_ISFIFO(st.st_mode);
}

std::string Pairs(const std::string& descriptors, const std::string& output) {
  return "pairs --descriptors '" + descriptors + "' --output_path '" + output + "' --num_matched 2";
}

// #3, #4: pairs outputs.
TEST(BadOutputs, PairsOutputs) {
  const std::string dir = TempDir();
  const std::string h5 = JoinPaths(dir, "global.h5");
  WriteDescriptors(h5, 6, 16);
  const std::string original = ReadFileToString(h5);
  // The output (or the scores) is the descriptor file: refused before anything is written.
  ExpectCleanError(Megaloc(Pairs(h5, h5)), {h5, "same file as the input"});
  const std::string hard = JoinPaths(dir, "hard_link.h5");
  ASSERT_EQ(link(h5.c_str(), hard.c_str()), 0);
  ExpectCleanError(Megaloc(Pairs(h5, JoinPaths(dir, "p.txt")) + " --scores_path '" + hard + "'"),
                   {hard, "same file as the input"});
  EXPECT_EQ(ReadFileToString(h5), original);
  EXPECT_FALSE(FileExists(JoinPaths(dir, "p.txt")));
  // A FIFO (no reader: a plain open would block forever), a directory.
  const std::string fifo = JoinPaths(dir, "fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0644), 0);
  ExpectCleanError(Megaloc(Pairs(h5, fifo)), {fifo, "FIFO", "regular files only"});
  EXPECT_TRUE(IsFifo(fifo));
  ExpectCleanError(Megaloc(Pairs(h5, dir)), {dir, "is a directory"});
  // The same file twice.
  ExpectCleanError(Megaloc(Pairs(h5, JoinPaths(dir, "p.txt")) + " --scores_path '" + JoinPaths(dir, "p.txt") + "'"),
                   {"same file is given for two outputs"});
  // A symbolic link is written through.
  const std::string link_path = JoinPaths(dir, "pairs_link.txt");
  ASSERT_EQ(symlink("pairs_target.txt", link_path.c_str()), 0);
  const CommandRun ok = Megaloc(Pairs(h5, link_path));
  ASSERT_EQ(ok.status, 0) << ok.output;
  struct stat st;
  ASSERT_EQ(lstat(link_path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(Split(ReadFileToString(JoinPaths(dir, "pairs_target.txt")), '\n').size(), 13u);  // 12 + ""
}

// Disk full in `pairs`: the reason, no .tmp left, the old pairs file kept.
TEST(BadOutputs, PairsDiskFull) {
  const std::string dir = TempDir();
  const std::string h5 = JoinPaths(dir, "global.h5");
  WriteDescriptors(h5, 300, 16, "a_rather_long_image_name_to_fill_the_pairs_file_");
  const std::string pairs = JoinPaths(dir, "pairs.txt");
  WriteFileAtomically(pairs, "old\n");
  // RLIMIT_FSIZE (1 KiB blocks) fails writes with EFBIG, like a full disk with ENOSPC.
  ExpectCleanError(Megaloc(Pairs(h5, pairs), "trap '' XFSZ; ulimit -f 8;"), {pairs, "File too large"});
  EXPECT_FALSE(FileExists(pairs + ".tmp"));
  EXPECT_EQ(ReadFileToString(pairs), "old\n");
}

// A chunked, never written `global_descriptor` that declares `length` elements (a few KB).
void AddSparseDescriptor(const std::string& path, const std::string& name, hsize_t length) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  const hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  const hsize_t chunk = 1024;
  H5Pset_chunk(dcpl, 1, &chunk);
  const hid_t space = H5Screate_simple(1, &length, nullptr);
  const hid_t dset = H5Dcreate2(file, (name + "/global_descriptor").c_str(), H5T_IEEE_F32LE, space, lcpl, dcpl,
                                H5P_DEFAULT);
  ASSERT_GE(dset, 0);
  const hsize_t two = 2;
  const int64_t size[2] = {64, 48};
  const hid_t size_space = H5Screate_simple(1, &two, nullptr);
  const hid_t size_dset =
      H5Dcreate2(file, (name + "/image_size").c_str(), H5T_STD_I64LE, size_space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(size_dset, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, size);
  H5Dclose(size_dset);
  H5Sclose(size_space);
  H5Dclose(dset);
  H5Sclose(space);
  H5Pclose(dcpl);
  H5Pclose(lcpl);
  H5Fclose(file);
}

// #1 and #10: absurd sizes, NaN/Inf, mixed dimensions through `pairs` and `merge`.
TEST(BadOutputs, BadDescriptorFiles) {
  const std::string dir = TempDir();
  for (const hsize_t length : {(hsize_t{1} << 32) + 48, (hsize_t{1} << 31) + 48}) {
    SCOPED_TRACE(length);
    const std::string h5 = JoinPaths(dir, "huge.h5");
    WriteDescriptors(h5, 4, 16);
    AddSparseDescriptor(h5, "huge.jpg", length);
    ExpectCleanError(Megaloc(Pairs(h5, JoinPaths(dir, "p.txt"))), {h5, "'huge.jpg'", "more than 16777216"});
    const std::string merged = JoinPaths(dir, "merged.h5");
    ExpectCleanError(Megaloc("merge --input_paths '" + h5 + "' --output_path '" + merged + "'"),
                     {h5, "'huge.jpg'", "more than"});
    EXPECT_FALSE(FileExists(merged));
  }
  // NaN / Inf: refused, naming the file and the image (also for the FAISS backends).
  const std::string nan = JoinPaths(dir, "nan.h5");
  WriteDescriptors(nan, 5, 16);
  {
    auto file = DescriptorFile::Open(nan, DescriptorFile::Mode::kAppend);
    std::vector<float> v = Unit(16, 9);
    v[2] = std::numeric_limits<float>::infinity();
    file->Write("inf.jpg", v.data(), 16, 64, 48, DescriptorDtype::kFloat32);
  }
  for (const std::string backend : {"exact", "faiss_ivf", "faiss_hnsw"}) {
    SCOPED_TRACE(backend);
    const CommandRun run = Megaloc(Pairs(nan, JoinPaths(dir, "p.txt")) + " --backend " + backend);
    if (run.output.find("requires FAISS") != std::string::npos) continue;
    ExpectCleanError(run, {nan, "'inf.jpg'", "NaN or infinite"});
  }
  // Mixed dimensions (not in the first image): `pairs` names both images, `merge` refuses before
  // writing and leaves an existing output untouched.
  const std::string mixed = JoinPaths(dir, "dimmix.h5");
  WriteDescriptors(mixed, 5, 16);
  {
    auto file = DescriptorFile::Open(mixed, DescriptorFile::Mode::kAppend);
    file->Write("img3.jpg", Unit(12, 3).data(), 12, 64, 48);
  }
  ExpectCleanError(Megaloc(Pairs(mixed, JoinPaths(dir, "p.txt"))), {mixed, "'img3.jpg'", "12", "16"});
  const std::string out = JoinPaths(dir, "out.h5");
  WriteDescriptors(out, 2, 16, "kept");
  const std::string before = ReadFileToString(out);
  ExpectCleanError(Megaloc("merge --input_paths '" + mixed + "' --output_path '" + out + "'"),
                   {mixed, "'img3.jpg'", "dimension 12"});
  EXPECT_EQ(ReadFileToString(out), before);
  const std::string fresh = JoinPaths(dir, "fresh.h5");
  ExpectCleanError(Megaloc("merge --input_paths '" + mixed + "' --output_path '" + fresh + "'"), {"'img3.jpg'"});
  EXPECT_FALSE(FileExists(fresh));
  EXPECT_FALSE(FileExists(fresh + ".merging"));
}

// #6: merge on a full disk: a clean error (no crash at exit), the output untouched, then resumable.
TEST(BadOutputs, MergeDiskFull) {
  const std::string dir = TempDir();
  const std::string in = JoinPaths(dir, "in.h5");
  WriteDescriptors(in, 300, 1024);
  const std::string out = JoinPaths(dir, "out.h5");
  WriteDescriptors(out, 3, 1024, "earlier");
  const std::string before = ReadFileToString(out);
  const std::string merge = "merge --input_paths '" + in + "' --output_path '" + out + "'";
  ExpectCleanError(Megaloc(merge, "trap '' XFSZ; ulimit -f 256;"), {out, "File too large", "left unchanged"});
  EXPECT_EQ(ReadFileToString(out), before);
  EXPECT_FALSE(FileExists(out + ".merging"));
  EXPECT_FALSE(FileExists(out + ".merging.journal"));
  const CommandRun ok = Megaloc(merge);
  ASSERT_EQ(ok.status, 0) << ok.output;
  EXPECT_EQ(DescriptorFile::Open(out, DescriptorFile::Mode::kRead)->ListNames().size(), 303u);
}

// #3, #4 for the other commands: outputs that are inputs or not regular files.
TEST(BadOutputs, OtherCommands) {
  const std::string dir = TempDir();
  const std::string fifo = JoinPaths(dir, "fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0644), 0);
  const std::string a = JoinPaths(dir, "a.h5");
  const std::string b = JoinPaths(dir, "b.h5");
  WriteDescriptors(a, 3, 8, "a");
  WriteDescriptors(b, 3, 8, "b");
  const std::string a_bytes = ReadFileToString(a);
  // merge
  const std::string a_link = JoinPaths(dir, "a_link.h5");
  ASSERT_EQ(symlink(a.c_str(), a_link.c_str()), 0);
  ExpectCleanError(Megaloc("merge --input_paths '" + a + "' '" + b + "' --output_path '" + a_link + "'"),
                   {a_link, "same file as the input"});
  ExpectCleanError(Megaloc("merge --input_paths '" + a + "' --output_path '" + fifo + "'"), {fifo, "FIFO"});
  EXPECT_EQ(ReadFileToString(a), a_bytes);
  // extract: the output is the weights (a copy), or a FIFO.
  const std::string weights = JoinPaths(dir, "weights.safetensors");
  WriteFileAtomically(weights, ReadFileToString(TestDataPath("megaloc_tiny/megaloc_tiny_v2.safetensors")));
  const std::string weights_bytes = ReadFileToString(weights);
  const std::string images = TestDataPath("sample_images");
  for (const std::string& output : {weights, fifo}) {
    const CommandRun run = Megaloc("extract --image_path '" + images + "' --weights_path '" + weights +
                            "' --output_path '" + output + "' --quiet");
    ExpectCleanError(run, {output});
  }
  EXPECT_EQ(ReadFileToString(weights), weights_bytes);
  EXPECT_TRUE(IsFifo(fifo));
  // convert_weights
  ExpectCleanError(Megaloc("convert_weights --input_path '" + weights + "' --output_path '" + weights + "'"),
                   {weights, "same file as the input"});
  ExpectCleanError(Megaloc("convert_weights --input_path '" + weights + "' --output_path '" + fifo + "'"),
                   {fifo, "FIFO"});
  EXPECT_EQ(ReadFileToString(weights), weights_bytes);
  // revisitop_eval (model-free form): results or ranks over the ground truth, or into a FIFO.
  const std::string gnd = JoinPaths(dir, "gnd_golden.pkl");
  WriteFileAtomically(gnd, ReadFileToString(TestDataPath("revisitop/gnd_golden.pkl")));
  const std::string gnd_bytes = ReadFileToString(gnd);
  const std::string eval = "revisitop_eval --gnd_path '" + gnd + "' --ranks_path '" +
                           TestDataPath("revisitop/ranks_golden.npy") + "' --output_path ";
  ExpectCleanError(Megaloc(eval + "'" + gnd + "'"), {gnd, "same file as the input"});
  ExpectCleanError(Megaloc(eval + "'" + fifo + "'"), {fifo, "FIFO"});
  EXPECT_EQ(ReadFileToString(gnd), gnd_bytes);
  // colmap_matcher: megaloc never writes the database (checked before it is even opened).
  const std::string database = JoinPaths(dir, "database.db");
  WriteFileAtomically(database, "not touched");
  const std::string matcher = "colmap_matcher --num_matched 5 --database_path '" + database + "' --image_path '" + images + "'";
  const CommandRun help = Megaloc("colmap_matcher --help");
  if (help.status == 0) {
    ExpectCleanError(Megaloc(matcher + " --pairs_path '" + database + "'"), {database, "same file as the input"});
    ExpectCleanError(Megaloc(matcher + " --log_path '" + database + "'"), {database, "same file as the input"});
    ExpectCleanError(Megaloc(matcher + " --pairs_path '" + fifo + "'"), {fifo, "FIFO"});
    // The query-expansion options are pairs' (one registration), refused by name.
    ExpectCleanError(Megaloc(matcher + " --qe_num -1"), {"--qe_num"});
    ExpectCleanError(Megaloc(matcher + " --dba_alpha -2"), {"--dba_alpha"});
    EXPECT_EQ(ReadFileToString(database), "not touched");
  }
}

// libhdf5 1.10.8 gets SIGSEGV listing this fuzz finding (2.2: a failed assertion): `megaloc` reads
// the structure of input files in a child process first, so the user gets one error line.
TEST(BadInput, Libhdf5CrashOnACorruptFileIsOneError) {
  const std::string dir = TempDir();
  const std::string input = JoinPaths(dir, "corrupt.h5");
  WriteFileAtomically(input, ReadFileToString(TestDataPath("corrupt_hdf5/local_heap_null_read.h5")));
  const std::string output = JoinPaths(dir, "pairs.txt");
  ExpectCleanError(Megaloc("pairs --num_matched 2 --descriptors '" + input + "' --output_path '" + output + "'"),
                   {input, "corrupt"});
  ExpectCleanError(Megaloc("merge --input_paths '" + input + "' --output_path '" + JoinPaths(dir, "m.h5") + "'"),
                   {input, "corrupt"});
  EXPECT_FALSE(FileExists(output));
  EXPECT_FALSE(FileExists(JoinPaths(dir, "m.h5")));
}

}  // namespace
}  // namespace megaloc

namespace megaloc {
namespace {

// `megaloc` runs the model commands in megaloc_torch (tools/megaloc.cc); without it, one error line.
TEST(BadInput, MissingTorchExecutableIsOneError) {
  ExpectCleanError(Megaloc("extract --help", "MEGALOC_TORCH_EXECUTABLE=/nonexistent/megaloc_torch"),
                   {"megaloc extract", "megaloc_torch", "/nonexistent/megaloc_torch"});
  // pairs and merge need no LibTorch: they run without it.
  EXPECT_EQ(Megaloc("pairs --help", "MEGALOC_TORCH_EXECUTABLE=/nonexistent/megaloc_torch").status, 0);
}

}  // namespace
}  // namespace megaloc
