#include "megaloc/util/logging.h"

#include <gtest/gtest.h>

namespace megaloc {
namespace {

struct DemoOptions {
  int batch_size = 1;
  bool Check() const {
    CHECK_OPTION_GT(batch_size, 0);
    return true;
  }
};

TEST(Logging, ChecksThrowWithContext) {
  EXPECT_NO_THROW(MEGALOC_CHECK_EQ(1, 1));
  try {
    MEGALOC_CHECK_LT(5, 3);
    FAIL();
  } catch (const InvalidArgument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("5 < 3"), std::string::npos) << what;
    EXPECT_NE(what.find("logging_test.cc"), std::string::npos) << what;
  }
  EXPECT_THROW(MEGALOC_THROW(IoError, "x.h5: truncated"), IoError);
  EXPECT_THROW(MEGALOC_THROW(ImageError, "a.jpg: bad"), IoError);
}

TEST(Logging, OptionChecksReturnFalse) {
  DemoOptions options;
  EXPECT_TRUE(options.Check());
  options.batch_size = 0;
  EXPECT_FALSE(options.Check());
}

}  // namespace
}  // namespace megaloc
