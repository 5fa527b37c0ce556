// The one output policy of every command (CheckOutputFile, WriteFileAtomically in
// megaloc/util/file_utils.h): regular files only, symbolic links written through, never an input,
// and a failed write says why and leaves no temporary file.

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "tests/common/testing.h"

namespace megaloc {
namespace {

using ::megaloc::testing::TempDir;

template <typename E, typename Fn>
std::string ExpectError(Fn fn, const std::vector<std::string>& needles) {
  try {
    fn();
    ADD_FAILURE() << "no exception; expected one mentioning " << needles.front();
  } catch (const E& e) {
    const std::string what = e.what();
    for (const std::string& needle : needles) EXPECT_NE(what.find(needle), std::string::npos) << what;
    return what;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
  return "";
}

bool IsLink(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

TEST(OutputFiles, NonRegularOutputsAreRefused) {
  const std::string dir = TempDir();
  // Only checked, never written: a regression must not turn /dev/null into a file.
  ExpectError<IoError>([] { CheckOutputFile("/dev/null"); },
                       {"/dev/null", "is a character device", "regular files only"});
  ExpectError<IoError>([&] { CheckOutputFile(dir); }, {dir, "is a directory"});
  const std::string fifo = JoinPaths(dir, "fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0644), 0);
  ExpectError<IoError>([&] { WriteFileAtomically(fifo, "x"); }, {fifo, "FIFO"});
  struct stat st;
  ASSERT_EQ(stat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  const std::string to_null = JoinPaths(dir, "to_null");
  ASSERT_EQ(symlink("/dev/null", to_null.c_str()), 0);
  ExpectError<IoError>([&] { CheckOutputFile(to_null); }, {to_null, "links to a character device"});
  const std::string to_stdout = JoinPaths(dir, "to_stdout");
  ASSERT_EQ(symlink("/proc/self/fd/1", to_stdout.c_str()), 0);
  struct stat out;
  if (fstat(1, &out) == 0 && !S_ISREG(out.st_mode)) {  // a pipe or a terminal (not a log file)
    EXPECT_THROW(CheckOutputFile(to_stdout), IoError);
  }
  EXPECT_THROW(CheckOutputFile(""), InvalidArgument);
}

TEST(OutputFiles, SymbolicLinksAreWrittenThrough) {
  const std::string dir = TempDir();
  CreateDirectories(JoinPaths(dir, "data"));
  const std::string target = JoinPaths(dir, "data/pairs.txt");
  WriteFileAtomically(target, "old\n");
  const std::string link = JoinPaths(dir, "pairs_link.txt");
  ASSERT_EQ(symlink("data/pairs.txt", link.c_str()), 0);  // relative to the link's directory
  EXPECT_EQ(CheckOutputFile(link), JoinPaths(dir, "data/pairs.txt"));
  WriteFileAtomically(link, "new\n");
  EXPECT_TRUE(IsLink(link));
  EXPECT_EQ(ReadFileToString(target), "new\n");
  // A dangling link creates its target.
  const std::string dangling = JoinPaths(dir, "dangling.txt");
  ASSERT_EQ(symlink("data/created.txt", dangling.c_str()), 0);
  WriteFileAtomically(dangling, "made\n");
  EXPECT_TRUE(IsLink(dangling));
  EXPECT_EQ(ReadFileToString(JoinPaths(dir, "data/created.txt")), "made\n");
  // A loop.
  const std::string loop = JoinPaths(dir, "loop");
  ASSERT_EQ(symlink("loop", loop.c_str()), 0);
  EXPECT_THROW(CheckOutputFile(loop), IoError);
  EXPECT_FALSE(FileExists(JoinPaths(dir, "data/pairs.txt.tmp")));
}

TEST(OutputFiles, AnOutputIsNeverAnInput) {
  const std::string dir = TempDir();
  const std::string input = JoinPaths(dir, "input.h5");
  WriteFileAtomically(input, "precious");
  const std::string hard = JoinPaths(dir, "hard.h5");
  ASSERT_EQ(link(input.c_str(), hard.c_str()), 0);
  const std::string soft = JoinPaths(dir, "soft.h5");
  ASSERT_EQ(symlink(input.c_str(), soft.c_str()), 0);
  for (const std::string& output : {input, hard, soft, dir + "/./input.h5"}) {
    SCOPED_TRACE(output);
    ExpectError<InvalidArgument>([&] { CheckOutputFile(output, {"", input}); },
                                 {output, "same file as the input " + input});
  }
  EXPECT_EQ(ReadFileToString(input), "precious");
  EXPECT_EQ(CheckOutputFile(JoinPaths(dir, "new.txt"), {input}), JoinPaths(dir, "new.txt"));
  // Two outputs of one command.
  ExpectError<InvalidArgument>(
      [&] { CheckOutputFiles({JoinPaths(dir, "a.txt"), JoinPaths(dir, "sub/../a.txt")}, {input}); },
      {"same file is given for two outputs"});
  CheckOutputFiles({JoinPaths(dir, "a.txt"), "", JoinPaths(dir, "b.txt")}, {input});
}

// Disk full (RLIMIT_FSIZE fails writes with EFBIG like ENOSPC): the reason, no .tmp, the old file.
TEST(OutputFiles, FailedWriteSaysWhyAndLeavesNoTemporary) {
  const std::string path = JoinPaths(TempDir(), "pairs.txt");
  WriteFileAtomically(path, "old content\n");
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    const rlimit limit = {4096, 4096};
    setrlimit(RLIMIT_FSIZE, &limit);
    try {
      WriteFileAtomically(path, std::string(100000, 'x'));
      _exit(3);
    } catch (const IoError& e) {
      const std::string what = e.what();
      _exit(what.find("File too large") != std::string::npos && what.find(path) != std::string::npos ? 0 : 4);
    }
    _exit(5);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_FALSE(FileExists(path + ".tmp"));
  EXPECT_EQ(ReadFileToString(path), "old content\n");
}

}  // namespace
}  // namespace megaloc
