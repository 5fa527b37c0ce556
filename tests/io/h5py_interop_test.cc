// Interoperability with the Python side of hloc: files written by DescriptorFile are read with
// h5py (Debian's python3-h5py, installed by scripts/install_deps.sh) exactly as hloc reads them:
// `list_h5_names` (parents of every dataset), `fd[name]["global_descriptor"]` as float16 / float32,
// `image_size` as int64 (width, height), no datasets other than the two per image.

#include <cmath>
#include <fstream>
#include <vector>

#include <gtest/gtest.h>

#include "megaloc/io/descriptor_store.h"
#include "megaloc/util/file_utils.h"
#include "tests/common/testing.h"

namespace megaloc {
namespace {

constexpr const char* kPython = "/usr/bin/python3";

bool HavePythonH5py() {
  return FileExists(kPython) &&
         testing::RunShell(std::string(kPython) + " -c 'import h5py, numpy' > /dev/null 2>&1") == 0;
}

// Writes the Python check into `dir` and runs it on `h5_path`; returns its exit status.
int RunPythonCheck(const std::string& dir, const std::string& h5_path, const std::string& expected_path) {
  const std::string script = dir + "/check.py";
  std::ofstream(script) << R"PY(
import sys, h5py, numpy as np
path, expected_path = sys.argv[1], sys.argv[2]
expected = {}
for line in open(expected_path):
    name, dtype, w, h, *values = line.split()
    expected[name] = (dtype, int(w), int(h), np.array([float(v) for v in values], dtype=np.float32))
names = set()
def visit(_, obj):
    if isinstance(obj, h5py.Dataset):
        names.add(obj.parent.name.strip("/"))
with h5py.File(path, "r") as fd:
    fd.visititems(visit)
    assert names == set(expected), (sorted(names), sorted(expected))
    for name, (dtype, w, h, values) in expected.items():
        group = fd[name]
        assert set(group.keys()) == {"global_descriptor", "image_size"}, list(group.keys())
        d = group["global_descriptor"]
        assert d.dtype == np.dtype(dtype), (name, d.dtype)
        assert d.shape == values.shape, (name, d.shape)
        got = d.__array__()
        want = values.astype(np.float16) if dtype == "float16" else values
        assert np.array_equal(got, want), (name, got, want)
        size = group["image_size"]
        assert size.dtype == np.dtype("int64") and size.shape == (2,), (size.dtype, size.shape)
        assert list(size[()]) == [w, h], (name, size[()])
print("ok")
)PY";
  return testing::RunShell(std::string(kPython) + " " + script + " " + h5_path + " " + expected_path +
                           " > " + dir + "/python.log 2>&1");
}

TEST(H5pyInterop, HlocReadsOurFloat16AndFloat32Files) {
  if (!HavePythonH5py()) {
    GTEST_SKIP() << "python3-h5py is not installed (scripts/install_deps.sh installs it)";
  }
  const std::string dir = testing::TempDir();
  const std::string path = dir + "/feats.h5";
  std::ofstream expected(dir + "/expected.txt");
  {
    auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kCreate);
    struct Entry {
      const char* name;
      DescriptorDtype dtype;
      int width, height;
    };
    const Entry entries[] = {{"a.jpg", DescriptorDtype::kFloat16, 640, 480},
                             {"seq1/b.png", DescriptorDtype::kFloat16, 1024, 768},
                             {"seq1/deep/c.jpg", DescriptorDtype::kFloat32, 31, 2000}};
    int seed = 1;
    for (const Entry& e : entries) {
      std::vector<float> values(37);
      double norm = 0;
      for (size_t i = 0; i < values.size(); ++i) {
        values[i] = static_cast<float>(std::sin(seed * 12.9898 + i * 78.233));
        norm += values[i] * values[i];
      }
      for (float& v : values) v = static_cast<float>(v / std::sqrt(norm));
      values[3] = 1e-6f;  // subnormal in float16
      ++seed;
      file->Write(e.name, values.data(), static_cast<int>(values.size()), e.width, e.height, e.dtype);
      expected << e.name << " " << (e.dtype == DescriptorDtype::kFloat16 ? "float16" : "float32")
               << " " << e.width << " " << e.height;
      expected.precision(9);
      for (float v : values) expected << " " << v;
      expected << "\n";
    }
    file->Flush();
  }
  expected.close();
  const int status = RunPythonCheck(dir, path, dir + "/expected.txt");
  EXPECT_EQ(status, 0) << ReadFileToString(dir + "/python.log");
}

TEST(H5pyInterop, TheCheckFailsOnAWrongExpectation) {
  // The Python check above can fail: a wrong image size must be caught.
  if (!HavePythonH5py()) GTEST_SKIP() << "python3-h5py is not installed";
  const std::string dir = testing::TempDir();
  const std::string path = dir + "/feats.h5";
  const std::vector<float> values = {0.6f, 0.8f};
  {
    auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kCreate);
    file->Write("x.jpg", values.data(), 2, 10, 20);
    file->Flush();
  }
  std::ofstream(dir + "/expected.txt") << "x.jpg float16 20 10 0.6 0.8\n";
  EXPECT_NE(RunPythonCheck(dir, path, dir + "/expected.txt"), 0);
}

// Files written the way hloc writes them (h5py, create_dataset per image, default and "latest" format)
// are read by direct byte reads after the first pass (ReadBlockLocated), with the values of H5Dread.
TEST(H5pyInterop, HlocWrittenFilesAreReadDirectly) {
  if (!HavePythonH5py()) {
    GTEST_SKIP() << "python3-h5py is not installed (scripts/install_deps.sh installs it)";
  }
  const std::string dir = testing::TempDir();
  std::ofstream(dir + "/write.py") << R"PY(
import sys, h5py, numpy as np
rng = np.random.default_rng(3)
for libver, path in (("earliest", sys.argv[1]), ("latest", sys.argv[2])):
    with h5py.File(path, "w", libver=libver) as fd:
        for i in range(12):
            name = ("seq%d/" % (i % 3)) + "img%02d.jpg" % i
            v = rng.standard_normal(300).astype(np.float32)
            v /= np.linalg.norm(v)
            grp = fd.create_group(name)
            grp.create_dataset("global_descriptor", data=v.astype(np.float16) if i % 4 else v)
            grp.create_dataset("image_size", data=np.array([640, 480]))
)PY";
  const std::string earliest = dir + "/earliest.h5", latest = dir + "/latest.h5";
  ASSERT_EQ(testing::RunShell(std::string(kPython) + " " + dir + "/write.py " + earliest + " " + latest +
                              " > " + dir + "/python.log 2>&1"),
            0)
      << ReadFileToString(dir + "/python.log");
  for (const std::string& path : {earliest, latest}) {
    auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kRead);
    const std::vector<std::string> names = file->ListDescriptorNames();
    ASSERT_EQ(names.size(), 12u);
    DescriptorBlock expected;
    file->ReadBlock(names, 0, names.size(), &expected);
    std::vector<DescriptorFile::Location> locations(names.size());
    for (int pass = 0; pass < 2; ++pass) {
      DescriptorBlock got(12, 300);
      file->ReadBlockLocated(names, 0, names.size(), 300, names[0], &locations, got.data());
      EXPECT_EQ(got, expected) << path << " pass " << pass;
    }
    int float32 = 0;
    for (const auto& location : locations) {
      EXPECT_GE(location.offset, 0) << path;
      float32 += location.element_size == 4 ? 1 : 0;
    }
    EXPECT_EQ(float32, 3) << path;
  }
}

}  // namespace
}  // namespace megaloc
