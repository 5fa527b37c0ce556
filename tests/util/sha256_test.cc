#include "megaloc/util/sha256.h"

#include <fstream>

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

}  // namespace
}  // namespace megaloc
