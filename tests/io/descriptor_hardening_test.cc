// Bad descriptor files and hostile conditions (issue 14's bad-input round): sizes from the file,
// NaN/Inf values, HDF5 links, journals that are not the reader's to replay or do not belong to the
// file, and a full disk. Each must end in one clear error naming the file and the reason, never in
// a crash or in lost data.

#include <fcntl.h>
#include <hdf5.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "megaloc/io/descriptor_store.h"
#include "megaloc/io/journal_vfd.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "tests/common/testing.h"

namespace megaloc {
namespace {

using ::megaloc::testing::TempDir;
using ::megaloc::testing::TestDataPath;

std::vector<float> Ramp(int dim, float scale) {
  std::vector<float> v(dim);
  for (int i = 0; i < dim; ++i) v[i] = scale * static_cast<float>(i + 1) / static_cast<float>(dim);
  return v;
}

// Runs `fn`, expecting an exception of type E whose message contains every needle.
template <typename E, typename Fn>
void ExpectError(Fn fn, const std::vector<std::string>& needles) {
  try {
    fn();
    ADD_FAILURE() << "no exception; expected one mentioning " << needles.front();
  } catch (const E& e) {
    const std::string what = e.what();
    for (const std::string& needle : needles) EXPECT_NE(what.find(needle), std::string::npos) << what;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

// A `global_descriptor` of `dims` that is chunked and never written: a few KB on disk whatever the
// size it declares (the file of the bad-input round).
void WriteSparseDescriptor(const std::string& path, const std::string& name,
                           const std::vector<hsize_t>& dims) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  const hid_t file = FileExists(path) ? H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT)
                                      : H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  const hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  std::vector<hsize_t> chunk(dims.size(), 1);
  chunk.back() = 1024;
  H5Pset_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data());
  const hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  const hid_t dset = H5Dcreate2(file, (name + "/global_descriptor").c_str(), H5T_IEEE_F32LE, space,
                                lcpl, dcpl, H5P_DEFAULT);
  ASSERT_GE(dset, 0);
  const hsize_t two = 2;
  const int64_t size[2] = {640, 480};
  const hid_t size_space = H5Screate_simple(1, &two, nullptr);
  const hid_t size_dset = H5Dcreate2(file, (name + "/image_size").c_str(), H5T_STD_I64LE, size_space,
                                     lcpl, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(size_dset, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, size);
  H5Dclose(size_dset);
  H5Sclose(size_space);
  H5Dclose(dset);
  H5Sclose(space);
  H5Pclose(dcpl);
  H5Pclose(lcpl);
  H5Fclose(file);
}

// Bad-input round #1: 2^32+48 elements (truncated to 48 by an int cast, then H5Dread wrote the whole
// dataset into a 48-float buffer: SIGSEGV) and 2^31+48 (std::vector max_size, no name).
// Turns the child-process probe of DescriptorFile::Open on for one test.
class ProbeScope {
 public:
  explicit ProbeScope(double stall_seconds) : saved_(GetDescriptorFileProbe()) {
    DescriptorFileProbeOptions options;
    options.enabled = true;
    options.stall_seconds = stall_seconds;
    SetDescriptorFileProbe(options);
  }
  ~ProbeScope() { SetDescriptorFileProbe(saved_); }

 private:
  DescriptorFileProbeOptions saved_;
};

std::string FormatErrorOf(const std::function<void()>& action) {
  try {
    action();
  } catch (const FormatError& error) {
    return error.what();
  }
  return "no FormatError";
}

// Fuzz findings (tests/fuzz/findings/hdf5/): libhdf5 1.10.8 gets SIGSEGV listing the first (2.2
// fails an assertion; 1.14 returns an error), and every libhdf5 here loops forever reading the
// root attributes of the second. With the probe both are one FormatError naming the file, and this
// process never touches the file.
TEST(DescriptorHardening, ProbeTurnsLibhdf5CrashesAndHangsIntoErrors) {
  const ProbeScope probe(1.0);
  const std::string dir = TempDir();
  const std::string crash = JoinPaths(dir, "local_heap_null_read.h5");
  const std::string hang = JoinPaths(dir, "global_heap_hang.h5");
  WriteFileAtomically(crash, ReadFileToString(TestDataPath("corrupt_hdf5/local_heap_null_read.h5")));
  WriteFileAtomically(hang, ReadFileToString(TestDataPath("corrupt_hdf5/global_heap_hang.h5")));
  const std::string crash_error = FormatErrorOf([&] {
    auto file = DescriptorFile::Open(crash, DescriptorFile::Mode::kRead);
    file->ListNames();
  });
  EXPECT_EQ(crash_error.rfind(crash + ": ", 0), 0u) << crash_error;
  const std::string hang_error = FormatErrorOf([&] {
    auto file = DescriptorFile::Open(hang, DescriptorFile::Mode::kRead);
    file->Attributes();
  });
  EXPECT_EQ(hang_error.rfind(hang + ": corrupt HDF5 file: libhdf5 made no progress for 1 s", 0), 0u) << hang_error;
  // Appending (resuming extraction into the file) is guarded the same way; the file is unchanged.
  const std::string hang_bytes = ReadFileToString(hang);
  EXPECT_NE(FormatErrorOf([&] { DescriptorFile::Open(hang, DescriptorFile::Mode::kAppend); }).find("made no progress"),
            std::string::npos);
  EXPECT_EQ(ReadFileToString(hang), hang_bytes);
}

TEST(DescriptorHardening, ProbeLetsGoodFilesThrough) {
  const std::string path = JoinPaths(TempDir(), "good.h5");
  {
    auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kCreate);
    for (const std::string name : {"a.jpg", "seq/b.jpg"}) file->Write(name, Ramp(8, 0.1f).data(), 8, 1, 1);
    file->SetAttribute(kAttrModel, "MegaLoc");
  }
  const ProbeScope probe(5.0);
  for (int i = 0; i < 2; ++i) {  // opened twice: the same content through the probe either way
    auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kRead);
    EXPECT_EQ(file->ListNames(), (std::vector<std::string>{"a.jpg", "seq/b.jpg"}));
    EXPECT_EQ(file->GetAttribute(kAttrModel), "MegaLoc");
    EXPECT_EQ(file->Read("seq/b.jpg")(1), HalfToFloat(FloatToHalf(Ramp(8, 0.1f)[1])));  // stored as float16
  }
  auto appended = DescriptorFile::Open(path, DescriptorFile::Mode::kAppend);
  appended->Write("c.jpg", Ramp(8, 0.2f).data(), 8, 1, 1);
  EXPECT_EQ(appended->ListNames().size(), 3u);
}

// The probe child hands its listing and the descriptors' locations to the reader: the same names and
// values as a walk of the file, no walk; writers and files with bad datasets walk the file themselves.
TEST(DescriptorHardening, ProbeStructureStandsInForTheWalk) {
  const std::string path = JoinPaths(TempDir(), "structure.h5");
  {
    auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kCreate);
    file->Write("a.jpg", Ramp(1024, 0.1f).data(), 1024, 1, 1);
    file->Write("seq/b.jpg", Ramp(1024, 0.3f).data(), 1024, 1, 1, DescriptorDtype::kFloat32);
  }
  WriteSparseDescriptor(path, "chunked.jpg", {1024});  // chunked storage: read through HDF5
  std::vector<std::string> walked_names, walked_descriptors;
  DescriptorBlock walked;
  {
    auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kRead);
    EXPECT_FALSE(file->UsesProbedStructure());
    walked_names = file->ListNames();
    walked_descriptors = file->ListDescriptorNames();
    file->ReadBlock(walked_descriptors, 0, walked_descriptors.size(), &walked);
  }
  ASSERT_EQ(walked_descriptors, (std::vector<std::string>{"a.jpg", "chunked.jpg", "seq/b.jpg"}));
  const ProbeScope probe(5.0);
  {
    auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kRead);
    EXPECT_TRUE(file->UsesProbedStructure());
    EXPECT_EQ(file->ListNames(), walked_names);
    EXPECT_EQ(file->ListDescriptorNames(), walked_descriptors);
    std::vector<DescriptorFile::Location> locations(walked_descriptors.size());
    for (int pass = 0; pass < 2; ++pass) {
      DescriptorBlock got(3, 1024);
      file->ReadBlockLocated(walked_descriptors, 0, 3, 1024, "a.jpg", &locations, got.data());
      EXPECT_EQ(got, walked) << "pass " << pass;
    }
    EXPECT_GE(locations[0].offset, 0);
    EXPECT_EQ(locations[1].offset, DescriptorFile::Location::kThroughHdf5);
    EXPECT_GE(locations[2].offset, 0);
    EXPECT_EQ(locations[2].element_size, 4);
  }
  {
    auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kAppend);
    EXPECT_FALSE(file->UsesProbedStructure());
  }
  // A bad dataset stops the child's structure; the error is met here, naming the image.
  const std::string bad = JoinPaths(TempDir(), "bad_structure.h5");
  {
    auto file = DescriptorFile::Open(bad, DescriptorFile::Mode::kCreate);
    file->Write("a.jpg", Ramp(1024, 0.1f).data(), 1024, 1, 1);
  }
  WriteSparseDescriptor(bad, "rank2.jpg", {2, 1024});
  auto file = DescriptorFile::Open(bad, DescriptorFile::Mode::kRead);
  EXPECT_FALSE(file->UsesProbedStructure());
  EXPECT_EQ(file->ListDescriptorNames(), (std::vector<std::string>{"a.jpg", "rank2.jpg"}));
  ExpectError<FormatError>([&] { file->Dim("rank2.jpg"); }, {bad, "'rank2.jpg'", "shape (D,)"});
}

TEST(DescriptorHardening, HugeDatasetSizesAreRefusedBeforeAllocating) {
  const std::string path = JoinPaths(TempDir(), "huge.h5");
  WriteSparseDescriptor(path, "huge32.jpg", {(hsize_t{1} << 32) + 48});
  WriteSparseDescriptor(path, "huge31.jpg", {(hsize_t{1} << 31) + 48});
  WriteSparseDescriptor(path, "rank2.jpg", {1, (hsize_t{1} << 32) + 48});
  WriteSparseDescriptor(path, "overflow.jpg", {hsize_t{1} << 40, hsize_t{1} << 40});
  EXPECT_LT(ReadFileToString(path).size(), 64u * 1024);
  auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kRead);
  EXPECT_EQ(file->ListDescriptorNames(),
            (std::vector<std::string>{"huge31.jpg", "huge32.jpg", "overflow.jpg", "rank2.jpg"}));
  for (const std::string name : {"huge32.jpg", "huge31.jpg", "rank2.jpg"}) {
    SCOPED_TRACE(name);
    ExpectError<FormatError>([&] { file->Dim(name); }, {path, "'" + name + "'", "more than 16777216"});
    ExpectError<FormatError>([&] { file->Read(name); }, {path, "'" + name + "'", "more than"});
    DescriptorBlock block;
    ExpectError<FormatError>([&] { file->ReadBlock({name}, 0, 1, &block); }, {"'" + name + "'"});
    std::vector<uint16_t> half;
    int dim = 0;
    ExpectError<FormatError>([&] { file->ReadBlockHalf({name}, 0, 1, &half, &dim); }, {"'" + name + "'"});
  }
  ExpectError<FormatError>([&] { file->Dim("overflow.jpg"); }, {"'overflow.jpg'", "shape (D,)"});
}

// NaN and infinite values (broken weights) are refused on every read path, naming the image.
TEST(DescriptorHardening, NanAndInfDescriptorsAreRefused) {
  const std::string path = JoinPaths(TempDir(), "nan.h5");
  std::vector<float> nan = Ramp(16, 0.1f), inf = Ramp(16, 0.1f), good = Ramp(16, 0.1f);
  nan[3] = std::numeric_limits<float>::quiet_NaN();
  inf[7] = std::numeric_limits<float>::infinity();
  {
    auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kCreate);
    file->Write("good.jpg", good.data(), 16, 1, 1);
    file->Write("nan32.jpg", nan.data(), 16, 1, 1, DescriptorDtype::kFloat32);
    file->Write("inf16.jpg", inf.data(), 16, 1, 1, DescriptorDtype::kFloat16);
    file->Write("big16.jpg", Ramp(16, 1e6f).data(), 16, 1, 1, DescriptorDtype::kFloat16);  // -> inf
  }
  auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kRead);
  EXPECT_EQ(file->Read("good.jpg").size(), 16);
  ExpectError<FormatError>([&] { file->Read("nan32.jpg"); }, {path, "'nan32.jpg'", "NaN or infinite", "index 3"});
  ExpectError<FormatError>([&] { file->Read("inf16.jpg"); }, {"'inf16.jpg'", "index 7"});
  const std::vector<std::string> names = {"good.jpg", "big16.jpg"};
  DescriptorBlock block;
  ExpectError<FormatError>([&] { file->ReadBlock(names, 0, 2, &block); }, {"'big16.jpg'", "NaN or infinite"});
  std::vector<uint16_t> half;
  int dim = 0;
  ExpectError<FormatError>([&] { file->ReadBlockHalf({"nan32.jpg"}, 0, 1, &half, &dim); }, {"'nan32.jpg'"});
}

// `dimmix.h5`: the first image of a block has the odd dimension; the error names both images.
TEST(DescriptorHardening, DimensionMismatchNamesBothImages) {
  const std::string path = JoinPaths(TempDir(), "dimmix.h5");
  {
    auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kCreate);
    file->Write("a_odd.jpg", Ramp(7, 0.1f).data(), 7, 1, 1);
    file->Write("b.jpg", Ramp(8, 0.1f).data(), 8, 1, 1);
    file->Write("c.jpg", Ramp(8, 0.1f).data(), 8, 1, 1);
  }
  auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kRead);
  DescriptorBlock block;
  ExpectError<FormatError>([&] { file->ReadBlock({"a_odd.jpg", "b.jpg", "c.jpg"}, 0, 3, &block); },
                           {path, "'b.jpg'", "dimension 8 differs from 7, the dimension of 'a_odd.jpg'"});
}

hid_t OpenRaw(const std::string& path) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  return H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
}

// Images behind HDF5 links would vanish from the listing (the object visit sees an object once and
// never follows soft or external links): refused, naming the link.
TEST(DescriptorHardening, LinksAreRefusedNotDropped) {
  const std::string dir = TempDir();
  const std::string base = JoinPaths(dir, "base.h5");
  {
    auto file = DescriptorFile::Open(base, DescriptorFile::Mode::kCreate);
    for (const std::string name : {"a.jpg", "seq/b.jpg", "c.jpg"}) file->Write(name, Ramp(8, 0.1f).data(), 8, 1, 1);
  }
  const std::string plain = ReadFileToString(base);
  struct Case {
    std::string file;
    std::string needle;
    std::function<void(hid_t)> make;
  };
  const std::vector<Case> cases = {
      {"soft.h5", "'d.jpg' is an HDF5 soft link",
       [](hid_t f) { H5Lcreate_soft("/a.jpg", f, "d.jpg", H5P_DEFAULT, H5P_DEFAULT); }},
      {"external.h5", "'e.jpg' is an HDF5 external link",
       [&](hid_t f) { H5Lcreate_external(base.c_str(), "/a.jpg", f, "e.jpg", H5P_DEFAULT, H5P_DEFAULT); }},
      {"hard_group.h5", "'x.jpg' is a second hard link",
       [](hid_t f) { H5Lcreate_hard(f, "a.jpg", f, "x.jpg", H5P_DEFAULT, H5P_DEFAULT); }},
      {"hard_parent.h5", "'seq' is a second hard link",
       [](hid_t f) { H5Lcreate_hard(f, "seq", f, "alias", H5P_DEFAULT, H5P_DEFAULT); }},
      {"hard_dataset.h5", "'y.jpg/global_descriptor' is a second hard link",
       [](hid_t f) {
         const hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
         H5Pset_create_intermediate_group(lcpl, 1);
         H5Lcreate_hard(f, "a.jpg/global_descriptor", f, "y.jpg/global_descriptor", lcpl, H5P_DEFAULT);
         H5Lcreate_hard(f, "a.jpg/image_size", f, "y.jpg/image_size", lcpl, H5P_DEFAULT);
         H5Pclose(lcpl);
       }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.file);
    const std::string path = JoinPaths(dir, c.file);
    WriteFileAtomically(path, plain);
    const hid_t raw = OpenRaw(path);
    ASSERT_GE(raw, 0);
    c.make(raw);
    ASSERT_GE(H5Fclose(raw), 0);
    auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kRead);
    ExpectError<FormatError>([&] { file->ListNames(); }, {path, c.needle, "store every image as its own group"});
    ExpectError<FormatError>([&] { file->ListDescriptorNames(); }, {c.needle});
    file.reset();
    // A writer neither lists nor "repairs" (deletes) anything behind the link.
    ExpectError<FormatError>([&] { DescriptorFile::Open(path, DescriptorFile::Mode::kAppend); }, {c.needle});
  }
  // The plain file lists normally (the check costs no false alarm).
  EXPECT_EQ(DescriptorFile::Open(base, DescriptorFile::Mode::kRead)->ListNames().size(), 3u);
}

// Makes `<path>.journal` complete and unapplied: a writer killed between writing and applying it.
void MakePendingJournal(const std::string& path) {
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    try {
      auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kAppend);
      file->Write("a.jpg", Ramp(32, 0.5f).data(), 32, 9, 9);  // overwrite: rewrites committed metadata
      file->Write("late.jpg", Ramp(32, 0.25f).data(), 32, 1, 1);
      setenv("MEGALOC_TEST_CRASH_AFTER_JOURNAL", "1", 1);
      file->Flush();
    } catch (...) {
    }
    _exit(2);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_TRUE(FileExists(path + ".journal"));
}

std::string WriteBaseFile(const std::string& path) {
  auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kCreate);
  for (int i = 0; i < 20; ++i) file->Write("img" + std::to_string(i) + ".jpg", Ramp(32, 0.1f).data(), 32, 1, 1);
  file->Write("a.jpg", Ramp(32, 0.1f).data(), 32, 1, 1);
  file.reset();
  return ReadFileToString(path);
}

// Bad-input round #2: a reader must never replay (and truncate) while a writer holds the lock.
TEST(DescriptorHardening, ReaderNeverReplaysWhileAWriterHoldsTheLock) {
  const std::string path = JoinPaths(TempDir(), "live.h5");
  WriteBaseFile(path);
  MakePendingJournal(path);
  const std::string before = ReadFileToString(path);
  const std::string journal = ReadFileToString(path + ".journal");
  {
    // A live writer (here: its lock).
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(flock(fd, LOCK_EX | LOCK_NB), 0);
    EXPECT_FALSE(internal::RecoverJournal(path, /*discard_incomplete=*/true));
    ExpectError<FormatError>([&] { DescriptorFile::Open(path, DescriptorFile::Mode::kRead); },
                             {path, "being written by another process"});
    EXPECT_EQ(ReadFileToString(path), before) << "a reader changed a file a writer holds";
    EXPECT_EQ(ReadFileToString(path + ".journal"), journal);
    close(fd);
  }
  // The writer is gone: the next reader finishes the commit.
  auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kRead);
  EXPECT_FALSE(FileExists(path + ".journal"));
  EXPECT_TRUE(file->Has("late.jpg"));
  EXPECT_EQ(file->ImageSize("a.jpg"), (std::pair<int64_t, int64_t>(9, 9)));
}

// Bad-input round #2: a stale journal is never applied to another file given the same name (copied
// over it in place, same inode, or moved there, new inode).
TEST(DescriptorHardening, StaleJournalIsNotAppliedToAnotherFile) {
  const std::string dir = TempDir();
  const std::string other = JoinPaths(dir, "other.h5");
  {
    auto file = DescriptorFile::Open(other, DescriptorFile::Mode::kCreate);
    for (int i = 0; i < 30; ++i) file->Write("o" + std::to_string(i) + ".jpg", Ramp(32, 0.3f).data(), 32, 2, 2);
  }
  const std::string other_bytes = ReadFileToString(other);
  for (const bool same_inode : {true, false}) {
    SCOPED_TRACE(same_inode ? "copied over in place" : "moved over");
    const std::string path = JoinPaths(dir, same_inode ? "cp.h5" : "mv.h5");
    WriteBaseFile(path);
    MakePendingJournal(path);
    if (same_inode) {
      ASSERT_EQ(testing::RunShell("cp '" + other + "' '" + path + "'"), 0);  // truncates and rewrites
    } else {
      ASSERT_EQ(testing::RunShell("cp '" + other + "' '" + path + ".new' && mv '" + path + ".new' '" + path + "'"), 0);
    }
    {
      auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kRead);
      EXPECT_EQ(file->ListNames().size(), 30u);
      EXPECT_EQ(file->Read("o5.jpg")[0], HalfToFloat(FloatToHalf(0.3f / 32)));
    }
    EXPECT_EQ(ReadFileToString(path), other_bytes) << "a stale journal was applied";
    EXPECT_TRUE(FileExists(path + ".journal"));  // readers leave it to writers
    {
      auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kAppend);
      EXPECT_EQ(file->ListNames().size(), 30u);
    }
    EXPECT_FALSE(FileExists(path + ".journal"));  // the writer discarded it
  }
}

// Bad-input round #6: a full disk (here RLIMIT_FSIZE, which fails writes with EFBIG the same way):
// a clear error with the system's reason, no crash at exit, the last commit intact, resumable.
TEST(DescriptorHardening, DiskFullKeepsTheLastCommitAndExitsCleanly) {
  const std::string path = JoinPaths(TempDir(), "full.h5");
  const std::vector<float> v = Ramp(2048, 0.01f);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int code = 10;
    try {
      auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kCreate);
      for (int i = 0; i < 20; ++i) file->Write("first/" + std::to_string(i) + ".jpg", v.data(), 2048, 1, 1);
      file->Flush();
      signal(SIGXFSZ, SIG_IGN);
      struct stat st;
      stat(path.c_str(), &st);
      const rlimit limit = {static_cast<rlim_t>(st.st_size + 64 * 1024), static_cast<rlim_t>(st.st_size + 64 * 1024)};
      setrlimit(RLIMIT_FSIZE, &limit);
      code = 11;
      try {
        for (int i = 0; i < 1000; ++i) {
          file->Write("second/" + std::to_string(i) + ".jpg", v.data(), 2048, 1, 1);
          if (i % 10 == 9) file->Flush();
        }
      } catch (const IoError& e) {
        const std::string what = e.what();
        code = what.find("File too large") != std::string::npos && what.find(path) != std::string::npos ? 0 : 12;
        try {  // the writer stays failed: no later write or flush pretends to succeed
          file->Write("third.jpg", v.data(), 2048, 1, 1);
          file->Flush();
          code = 13;
        } catch (const IoError&) {
        }
      }
    } catch (...) {
      code = 14;
    }
    H5close();  // what exit() does: HDF5 closes what is left (it crashed here before)
    _exit(code);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << "the writer crashed (signal " << WTERMSIG(status) << ")";
  EXPECT_EQ(WEXITSTATUS(status), 0);
  auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kAppend);
  const std::vector<std::string> names = file->ListNames();
  EXPECT_GE(names.size(), 20u);
  for (const std::string& name : names) EXPECT_EQ(file->Read(name)[100], HalfToFloat(FloatToHalf(v[100]))) << name;
  file->Write("resumed.jpg", v.data(), 2048, 1, 1);
  file->Flush();
  EXPECT_TRUE(file->Has("resumed.jpg"));
}

// Bad-input round #3: descriptor files are never created over a FIFO or a directory; a symbolic
// link is written through (the link stays).
TEST(DescriptorHardening, WritersRefuseNonRegularOutputsAndFollowLinks) {
  const std::string dir = TempDir();
  const std::string fifo = JoinPaths(dir, "fifo.h5");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0644), 0);
  for (auto mode : {DescriptorFile::Mode::kCreate, DescriptorFile::Mode::kAppend}) {
    ExpectError<IoError>([&] { DescriptorFile::Open(fifo, mode); }, {fifo, "FIFO"});
  }
  ExpectError<IoError>([&] { DescriptorFile::Open(fifo, DescriptorFile::Mode::kRead); }, {fifo, "not a regular file"});
  struct stat st;
  ASSERT_EQ(lstat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  const std::string link_to_fifo = JoinPaths(dir, "link_to_fifo.h5");
  ASSERT_EQ(symlink(fifo.c_str(), link_to_fifo.c_str()), 0);
  ExpectError<IoError>([&] { DescriptorFile::Open(link_to_fifo, DescriptorFile::Mode::kCreate); },
                       {link_to_fifo, "links to a FIFO"});

  const std::string target = JoinPaths(dir, "real.h5");
  const std::string link = JoinPaths(dir, "link.h5");
  ASSERT_EQ(symlink("real.h5", link.c_str()), 0);  // dangling, relative
  {
    auto file = DescriptorFile::Open(link, DescriptorFile::Mode::kCreate);
    file->Write("a.jpg", Ramp(8, 0.1f).data(), 8, 1, 1);
  }
  ASSERT_EQ(lstat(link.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode)) << "the link was replaced";
  EXPECT_TRUE(DescriptorFile::Open(target, DescriptorFile::Mode::kRead)->Has("a.jpg"));
  {
    auto file = DescriptorFile::Open(link, DescriptorFile::Mode::kAppend);
    file->Write("b.jpg", Ramp(8, 0.1f).data(), 8, 1, 1);
  }
  EXPECT_EQ(DescriptorFile::Open(target, DescriptorFile::Mode::kRead)->ListNames().size(), 2u);
  ASSERT_EQ(lstat(link.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
}

}  // namespace
}  // namespace megaloc
