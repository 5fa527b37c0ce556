#include "megaloc/util/npy.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "megaloc/util/logging.h"
#include "tests/common/testing.h"

namespace megaloc {
namespace {

TEST(Npy, RoundTripFloatAndInt) {
  const std::string dir = testing::TempDir();
  const std::vector<float> values = {1.5f, -2.f, 3.25f, 0.f, 1e-8f, 7.f};
  WriteNpy(dir + "/a.npy", {2, 3}, values.data());
  const NpyArray array = ReadNpy(dir + "/a.npy");
  EXPECT_EQ(array.dtype, "f4");
  EXPECT_EQ(array.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(array.As<float>(), values);
  EXPECT_EQ(array.As<double>()[2], 3.25);

  const std::vector<int64_t> ints = {5, -1, 1LL << 40};
  WriteNpy(dir + "/b.npy", {3}, ints.data());
  EXPECT_EQ(ReadNpy(dir + "/b.npy").As<int64_t>(), ints);
}

TEST(Npy, HeaderIsAlignedTo64Bytes) {
  const std::string dir = testing::TempDir();
  const double value = 4.0;
  WriteNpy(dir + "/s.npy", {1}, &value);
  std::ifstream file(dir + "/s.npy", std::ios::binary | std::ios::ate);
  EXPECT_EQ((static_cast<int64_t>(file.tellg()) - 8) % 64, 0);
}

TEST(Npy, RejectsBadFiles) {
  const std::string dir = testing::TempDir();
  EXPECT_THROW(ReadNpy(dir + "/missing.npy"), IoError);
  std::ofstream(dir + "/bad.npy") << "not numpy";
  EXPECT_THROW(ReadNpy(dir + "/bad.npy"), FormatError);
  const std::vector<float> values(100, 1.f);
  WriteNpy(dir + "/t.npy", {100}, values.data());
  std::filesystem::resize_file(dir + "/t.npy", 200);
  try {
    ReadNpy(dir + "/t.npy");
    FAIL() << "truncated file accepted";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("t.npy"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos);
  }
}

}  // namespace
}  // namespace megaloc
