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

// A .npy file with the given header dict and data bytes (version 1.0).
std::string NpyBytes(const std::string& dict, const std::string& data = "") {
  std::string header = dict;
  header += std::string((64 - (10 + header.size() + 1) % 64) % 64, ' ') + "\n";
  std::string bytes = std::string("\x93NUMPY\x01\x00", 8);
  bytes.push_back(static_cast<char>(header.size() & 0xff));
  bytes.push_back(static_cast<char>(header.size() >> 8));
  return bytes + header + data;
}

// Issue 14, bad input 10: `(-8, 3)` was read as (8, 3); malformed headers gave stoi / stoll /
// bad_alloc without a file name; the data was allocated from the header before the size check.
TEST(Npy, MalformedHeadersNameTheFileAndTheReason) {
  const std::string dir = testing::TempDir();
  const std::string data(96, '\0');
  struct Case {
    std::string dict;
    std::string fragment;
  };
  const std::vector<Case> cases = {
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (-8, 3), }", "malformed .npy shape"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (8, x), }", "malformed .npy shape"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999, 3), }",
       "overflows"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
       "overflows"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 3), }",
       "truncated .npy data"},
      {"{'descr': '<fz', 'fortran_order': False, 'shape': (8, 3), }", "unsupported .npy dtype"},
      {"{'descr': '<f99999999999', 'fortran_order': False, 'shape': (8, 3), }",
       "unsupported .npy dtype"},
      {"{'descr': '<f4x', 'fortran_order': False, 'shape': (8, 3), }", "unsupported .npy dtype"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': 8, }", "malformed .npy shape"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (8, 3", "malformed .npy shape"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string path = dir + "/bad" + std::to_string(i) + ".npy";
    std::ofstream(path, std::ios::binary) << NpyBytes(cases[i].dict, data);
    try {
      ReadNpy(path);
      ADD_FAILURE() << "accepted " << cases[i].dict;
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(cases[i].fragment), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    }
    EXPECT_THROW(ParseNpy(NpyBytes(cases[i].dict, data), "mem.npy"), FormatError);
  }
  // Found by tests/fuzz/npy_fuzzer: a shape that is not a tuple ran to the header's newline, and
  // the raw bytes made a two-line message. Quoted header text is escaped now.
  try {
    ParseNpy(NpyBytes("{'descr': '<i8', 'fortran_order': False, 'shape': \xe0\xd9    "), "fz.npy");
    ADD_FAILURE() << "accepted";
  } catch (const FormatError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_NE(message.find("fz.npy: malformed .npy shape \\xe0\\xd9"), std::string::npos) << message;
  }
  // A header length beyond the file (version 2: 4-byte length) is a truncation, not bad_alloc.
  std::string huge = std::string("\x93NUMPY\x02\x00\xff\xff\xff\xff", 12) + "{}";
  EXPECT_THROW(ParseNpy(huge, "huge.npy"), FormatError);
  // Valid shapes still parse: (), (5,), (2, 3) with and without spaces.
  EXPECT_TRUE(ParseNpy(NpyBytes("{'descr': '<f8', 'fortran_order': False, 'shape': (), }",
                                std::string(8, '\0')), "a").shape.empty());
  EXPECT_EQ(ParseNpy(NpyBytes("{'descr': '|u1', 'fortran_order': False, 'shape': (5,), }",
                              std::string(5, '\0')), "b").shape, (std::vector<int64_t>{5}));
  EXPECT_EQ(ParseNpy(NpyBytes("{'descr': '<i8', 'fortran_order': False, 'shape': (2,3), }",
                              std::string(48, '\0')), "c").shape, (std::vector<int64_t>{2, 3}));
}

}  // namespace
}  // namespace megaloc
