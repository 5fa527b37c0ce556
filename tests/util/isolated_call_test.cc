#include "megaloc/util/isolated_call.h"

#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include <gtest/gtest.h>

namespace megaloc {
namespace {

using Status = IsolatedCallResult::Status;

TEST(IsolatedCall, CompletedWorkReportsCompleted) {
  int calls = 0;
  const IsolatedCallResult result = RunIsolated([&](const std::function<void()>& progress) {
    for (int i = 0; i < 5; ++i) progress();
    ++calls;  // the child's copy: never seen here
  });
  EXPECT_TRUE(result.ok());
  EXPECT_EQ(result.status, Status::kCompleted);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(result.Describe(), "completed");
}

TEST(IsolatedCall, ExceptionsAreLeftToTheCaller) {
  const IsolatedCallResult result =
      RunIsolated([](const std::function<void()>&) { throw std::runtime_error("not a crash"); });
  EXPECT_EQ(result.status, Status::kCompleted);
}

TEST(IsolatedCall, CrashIsReportedWithTheSignalAndTheLastLineOfStderr) {
  const IsolatedCallResult result = RunIsolated([](const std::function<void()>&) {
    std::fputs("first line\nlib.c:311: f: Assertion `x' failed.\n\n", stderr);
    std::fflush(stderr);
    std::signal(SIGSEGV, SIG_DFL);  // a sanitizer's handler would turn it into an abort
    raise(SIGSEGV);
  });
  EXPECT_EQ(result.status, Status::kSignaled);
  EXPECT_EQ(result.signal, SIGSEGV);
  EXPECT_EQ(result.stderr_tail, "lib.c:311: f: Assertion `x' failed.");
  EXPECT_EQ(result.Describe(), "crashed with signal 11 (SIGSEGV, Segmentation fault)");
}

TEST(IsolatedCall, AbortIsACrash) {
  const IsolatedCallResult result = RunIsolated([](const std::function<void()>&) { std::abort(); });
  EXPECT_EQ(result.status, Status::kSignaled);
  EXPECT_EQ(result.signal, SIGABRT);
}

TEST(IsolatedCall, NonZeroExitIsReported) {
  const IsolatedCallResult result = RunIsolated([](const std::function<void()>&) { _exit(3); });
  EXPECT_EQ(result.status, Status::kExited);
  EXPECT_EQ(result.exit_code, 3);
}

TEST(IsolatedCall, ChildWithoutProgressIsStopped) {
  IsolatedCallOptions options;
  options.stall_seconds = 0.3;
  const IsolatedCallResult result = RunIsolated(
      [](const std::function<void()>& progress) {
        progress();
        for (;;) pause();
      },
      options);
  EXPECT_EQ(result.status, Status::kStalled);
  EXPECT_EQ(result.Describe(), "made no progress for 0.3 s and was stopped");
}

TEST(IsolatedCall, ProgressKeepsASlowChildAlive) {
  IsolatedCallOptions options;
  options.stall_seconds = 0.5;
  const IsolatedCallResult result = RunIsolated(
      [](const std::function<void()>& progress) {
        for (int i = 0; i < 8; ++i) {  // 0.8 s in all, never 0.5 s without progress
          usleep(100000);
          progress();
        }
      },
      options);
  EXPECT_EQ(result.status, Status::kCompleted);
  EXPECT_GE(result.seconds, 0.8);
}

TEST(IsolatedCall, OptionsAreChecked) {
  IsolatedCallOptions options;
  EXPECT_TRUE(options.Check());
  options.stall_seconds = 0;
  EXPECT_FALSE(options.Check());
  options.stall_seconds = std::nan("");
  EXPECT_FALSE(options.Check());
  options.stall_seconds = 1;
  options.max_stderr_bytes = -1;
  EXPECT_FALSE(options.Check());
}

}  // namespace
}  // namespace megaloc
