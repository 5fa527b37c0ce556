#pragma once

// How many cores other processes leave free, for choosing a compute thread count on shared machines.
//
// With more compute threads than free cores, every parallel region waits at its barrier for the
// thread that another process has pushed off its core: on a 2-core machine with one CPU-bound
// process beside it, 2 LibTorch threads ran 1.06-1.08 images/s against 1.26-1.37 with 1 thread
// (docs/performance.md). ThreadGovernor measures the CPU time the rest of the machine used between
// two calls (/proc/stat minus this process's own CPU time) and returns the cores left over.

#include <cstdint>

namespace megaloc {

// Cores this process may run on (sched_getaffinity), at least 1.
int UsableCores();

// CPU time used so far: by the whole machine (/proc/stat, all CPUs) and by this process.
struct CpuTimes {
  double machine_busy_seconds = 0.0;  // user + nice + system + irq + softirq
  double own_seconds = 0.0;           // getrusage(RUSAGE_SELF): user + system
  double wall_seconds = 0.0;          // CLOCK_MONOTONIC
};

// Now; false when /proc/stat cannot be read.
bool ReadCpuTimes(CpuTimes* times);

class ThreadGovernor {
 public:
  // `max_threads` >= 1: the most threads Update() returns (the cores the user allows).
  explicit ThreadGovernor(int max_threads);

  // Call between units of work (e.g. before each forward). Returns the thread count for the next
  // unit: max_threads minus the cores other processes kept busy since the previous call (rounded
  // to nearest), at least 1. Windows shorter than `min_window_seconds` keep the previous answer;
  // max_threads when /proc/stat cannot be read.
  int Update();
  // The same from a given sample (tests).
  int Update(const CpuTimes& now);

  // Cores other processes used in the last measured window (0 before the first window).
  double OtherCores() const { return other_cores_; }
  int Threads() const { return threads_; }

  // The pure decision, for tests: threads for `max_threads` when others used `other_cores`.
  static int ThreadsFor(int max_threads, double other_cores);

  double min_window_seconds = 0.2;

 private:
  int max_threads_;
  int threads_;
  double other_cores_ = 0.0;
  bool have_sample_ = false;
  CpuTimes last_;
};

}  // namespace megaloc
