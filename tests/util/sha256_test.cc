#include "megaloc/util/sha256.h"

#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "tests/common/testing.h"

namespace megaloc {
namespace {

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(Sha256Hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(Sha256Hex(two_blocks.data(), two_blocks.size()),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, FileEqualsIncremental) {
  const std::string path = testing::TempDir() + "/f.bin";
  std::string content(3 << 20, 'x');
  for (size_t i = 0; i < content.size(); i += 7) content[i] = static_cast<char>(i);
  std::ofstream(path, std::ios::binary) << content;
  EXPECT_EQ(Sha256File(path), Sha256Hex(content.data(), content.size()));
}

// The SHA-NI path (where the CPU has it) and the portable code give the same digests: known vectors
// (one million 'a', FIPS 180-2) and random buffers of every length around block boundaries, fed
// whole and in odd pieces.
TEST(Sha256, ShaExtensionsEqualPortable) {
  const bool hardware = internal::Sha256UsesShaExtensions();
  std::mt19937 rng(5);
  std::string data(5000, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  const std::string million(1000000, 'a');
  std::vector<std::string> digests[2];
  for (int mode = 0; mode < 2; ++mode) {
    internal::SetSha256ShaExtensions(mode == 1);
    EXPECT_EQ(Sha256Hex(million.data(), million.size()),
              "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    for (size_t n : {0, 1, 55, 56, 63, 64, 65, 127, 128, 129, 1000, 4999}) {
      Sha256 pieces;
      for (size_t i = 0; i < n; i += 37) pieces.Update(data.data() + i, std::min<size_t>(37, n - i));
      const std::string whole = Sha256Hex(data.data(), n);
      EXPECT_EQ(pieces.HexDigest(), whole) << n;
      digests[mode].push_back(whole);
    }
  }
  internal::SetSha256ShaExtensions(true);
  EXPECT_EQ(internal::Sha256UsesShaExtensions(), hardware);
  EXPECT_EQ(digests[0], digests[1]);
  if (!hardware) GTEST_SKIP() << "this CPU has no SHA extensions: only the portable code ran";
}

}  // namespace
}  // namespace megaloc
