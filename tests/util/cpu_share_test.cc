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

// The window arithmetic on given samples: this process's own CPU time is not "other".
TEST(ThreadGovernor, SubtractsItsOwnCpuTime) {
  ThreadGovernor governor(2);
  EXPECT_EQ(governor.Update(CpuTimes{100.0, 10.0, 50.0}), 2);  // first sample: no window yet
  // 1 s: the machine was busy 2 core-seconds, 2 of them ours: nobody else.
  EXPECT_EQ(governor.Update(CpuTimes{102.0, 12.0, 51.0}), 2);
  EXPECT_DOUBLE_EQ(governor.OtherCores(), 0.0);
  // 1 s: machine 2 core-seconds, ours 1: another process held a core.
  EXPECT_EQ(governor.Update(CpuTimes{104.0, 13.0, 52.0}), 1);
  EXPECT_DOUBLE_EQ(governor.OtherCores(), 1.0);
  // 0.1 s later (below min_window_seconds): the previous answer, the window stays open.
  EXPECT_EQ(governor.Update(CpuTimes{104.2, 13.2, 52.1}), 1);
  EXPECT_DOUBLE_EQ(governor.OtherCores(), 1.0);
  // 2 s after the last measured sample, nobody else: back to 2 threads.
  EXPECT_EQ(governor.Update(CpuTimes{108.0, 17.0, 54.0}), 2);
  EXPECT_DOUBLE_EQ(governor.OtherCores(), 0.0);
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
