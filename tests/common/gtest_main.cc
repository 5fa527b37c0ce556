// Shared GoogleTest main: deterministic std RNG state, quiet library logging unless asked.
#include <cstdlib>
#include <random>

#include <gtest/gtest.h>

#include "megaloc/util/logging.h"

namespace {

class ReseedEnvironment : public ::testing::EmptyTestEventListener {
  void OnTestStart(const ::testing::TestInfo&) override { std::srand(0); }
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::UnitTest::GetInstance()->listeners().Append(new ReseedEnvironment);
  if (std::getenv("MEGALOC_TEST_VERBOSE") == nullptr) megaloc::SetLogLevel(1);
  return RUN_ALL_TESTS();
}
