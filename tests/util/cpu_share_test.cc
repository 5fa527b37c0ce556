#include "megaloc/util/cpu_share.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

namespace megaloc {
namespace {

TEST(ThreadGovernor, ThreadsFromTheCoresOthersUse) {
  EXPECT_EQ(ThreadGovernor::ThreadsFor(2, 0.0), 2);
  EXPECT_EQ(ThreadGovernor::ThreadsFor(2, 0.4), 2);
  EXPECT_EQ(ThreadGovernor::ThreadsFor(2, 0.67), 1);  // one busy process squeezed by our 2 threads
  EXPECT_EQ(ThreadGovernor::ThreadsFor(2, 1.0), 1);
  EXPECT_EQ(ThreadGovernor::ThreadsFor(2, 3.0), 1);  // never below one
  EXPECT_EQ(ThreadGovernor::ThreadsFor(16, 4.2), 12);
  EXPECT_EQ(ThreadGovernor::ThreadsFor(1, 0.0), 1);
  EXPECT_EQ(ThreadGovernor::ThreadsFor(8, -1.0), 8);
}

TEST(ThreadGovernor, SeesAnotherProcessAndNotItself) {
  EXPECT_GE(UsableCores(), 1);
  ThreadGovernor governor(4);
  governor.min_window_seconds = 0.3;
  EXPECT_EQ(governor.Update(), 4);  // first call: no window yet
  // Busy in this process: not "other".
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(400);
  volatile double sink = 0;
  while (std::chrono::steady_clock::now() < until) sink = sink + 1.0;
  const int own = governor.Update();
  EXPECT_GE(own, 1);
  EXPECT_LE(own, 4);
  const double own_other = governor.OtherCores();
  // A busy child process is.
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    volatile double spin = 0;
    while (true) spin = spin + 1.0;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  governor.Update();
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  EXPECT_GT(governor.OtherCores(), 0.25) << "own busy loop counted " << own_other;
  EXPECT_LE(governor.Threads(), 3);
  EXPECT_GE(governor.Threads(), 1);
}

}  // namespace
}  // namespace megaloc
