#include "megaloc/util/cpu_share.h"

#include <sched.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace megaloc {

int UsableCores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1, static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)));
}

ThreadGovernor::ThreadGovernor(int max_threads)
    : max_threads_(std::max(1, max_threads)), threads_(std::max(1, max_threads)) {}

int ThreadGovernor::ThreadsFor(int max_threads, double other_cores) {
  const int busy = static_cast<int>(std::floor(std::max(0.0, other_cores) + 0.5));
  return std::max(1, std::min(max_threads, max_threads - busy));
}

bool ReadCpuTimes(CpuTimes* times) {
  FILE* file = std::fopen("/proc/stat", "re");
  if (file == nullptr) return false;
  unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0;
  const int fields =
      std::fscanf(file, "cpu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &system, &idle, &iowait, &irq, &softirq);
  std::fclose(file);
  if (fields < 4) return false;
  const double tick = 1.0 / static_cast<double>(std::max(1L, sysconf(_SC_CLK_TCK)));
  times->machine_busy_seconds = static_cast<double>(user + nice + system + irq + softirq) * tick;
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  times->own_seconds = usage.ru_utime.tv_sec + usage.ru_utime.tv_usec * 1e-6 + usage.ru_stime.tv_sec +
                       usage.ru_stime.tv_usec * 1e-6;
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  times->wall_seconds = now.tv_sec + now.tv_nsec * 1e-9;
  return true;
}

int ThreadGovernor::Update() {
  CpuTimes now;
  if (!ReadCpuTimes(&now)) return threads_ = max_threads_;
  return Update(now);
}

int ThreadGovernor::Update(const CpuTimes& now) {
  const double elapsed = now.wall_seconds - last_.wall_seconds;
  if (have_sample_ && elapsed < min_window_seconds) return threads_;  // too short: keep the window open
  if (have_sample_) {
    // Machine-wide busy cores minus this process's own, over the window.
    const double machine = (now.machine_busy_seconds - last_.machine_busy_seconds) / elapsed;
    const double own = (now.own_seconds - last_.own_seconds) / elapsed;
    other_cores_ = std::max(0.0, machine - own);
    threads_ = ThreadsFor(max_threads_, other_cores_);
  }
  have_sample_ = true;
  last_ = now;
  return threads_;
}

}  // namespace megaloc
