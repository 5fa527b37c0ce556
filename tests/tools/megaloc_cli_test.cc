#include <gtest/gtest.h>

#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "tests/common/testing.h"
#include "megaloc/cli/option_manager.h"

namespace megaloc {
namespace {

std::string RunAndCapture(const std::string& args, int* status) {
  const std::string out = testing::TempDir() + "/out.txt";
  *status = testing::RunShell(testing::MegalocExecutable() + " " + args + " > " + out + " 2>&1");
  return ReadFileToString(out);
}

TEST(MegalocCli, HelpListsCommands) {
  int status = -1;
  const std::string help = RunAndCapture("--help", &status);
  EXPECT_EQ(status, 0);
  for (const char* command : {"extract", "pairs", "convert_weights"}) {
    EXPECT_NE(help.find(command), std::string::npos) << command;
  }
  const std::string version = RunAndCapture("--version", &status);
  EXPECT_EQ(status, 0);
  EXPECT_NE(version.find("megaloc "), std::string::npos);
}

TEST(MegalocCli, UnknownCommandFails) {
  int status = -1;
  const std::string out = RunAndCapture("no_such_command", &status);
  EXPECT_EQ(status, 1);
  EXPECT_NE(out.find("unknown command"), std::string::npos);
}

TEST(MegalocCli, ParseShard) {
  int k = 0, n = 0;
  ParseShard("2/5", &k, &n);
  EXPECT_EQ(k, 2);
  EXPECT_EQ(n, 5);
  EXPECT_THROW(ParseShard("0/5", &k, &n), InvalidArgument);
  EXPECT_THROW(ParseShard("6/5", &k, &n), InvalidArgument);
  EXPECT_THROW(ParseShard("2-5", &k, &n), InvalidArgument);
  EXPECT_THROW(ParseShard("2/5x", &k, &n), InvalidArgument);
}

}  // namespace
}  // namespace megaloc
