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

bool ThreadGovernor::Sample(uint64_t* busy_ticks, uint64_t* total_ticks, double* own_cpu_seconds,
                            double* wall) const {
  FILE* file = std::fopen("/proc/stat", "re");
  if (file == nullptr) return false;
  unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  const int fields = std::fscanf(file, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &system,
                                 &idle, &iowait, &irq, &softirq, &steal);
  std::fclose(file);
  if (fields < 4) return false;
  *busy_ticks = user + nice + system + irq + softirq;
  *total_ticks = *busy_ticks + idle + iowait + steal;
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  *own_cpu_seconds = usage.ru_utime.tv_sec + usage.ru_utime.tv_usec * 1e-6 + usage.ru_stime.tv_sec +
                     usage.ru_stime.tv_usec * 1e-6;
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  *wall = now.tv_sec + now.tv_nsec * 1e-9;
  return true;
}

int ThreadGovernor::Update() {
  uint64_t busy, total;
  double own, wall;
  if (!Sample(&busy, &total, &own, &wall)) return threads_ = max_threads_;
  if (!have_sample_) {
    have_sample_ = true;
  } else if (wall - wall_ < min_window_seconds || total <= total_ticks_) {
    return threads_;  // too short to measure: keep the window open
  } else {
    const double tick = 1.0 / static_cast<double>(std::max(1L, sysconf(_SC_CLK_TCK)));
    const double elapsed = wall - wall_;
    // Machine-wide busy cores minus this process's own, over the window.
    const double machine = static_cast<double>(busy - busy_ticks_) * tick / elapsed;
    const double own_cores = (own - own_cpu_seconds_) / elapsed;
    other_cores_ = std::max(0.0, machine - own_cores);
    threads_ = ThreadsFor(max_threads_, other_cores_);
  }
  busy_ticks_ = busy;
  total_ticks_ = total;
  own_cpu_seconds_ = own;
  wall_ = wall;
  return threads_;
}

}  // namespace megaloc
