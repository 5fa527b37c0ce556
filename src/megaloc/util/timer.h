#pragma once

#include <chrono>
#include <string>

namespace megaloc {

// Wall-clock stopwatch.
class Timer {
 public:
  Timer();
  void Restart();
  double ElapsedSeconds() const;

 private:
  std::chrono::steady_clock::time_point start_;
};

// Peak resident set size of this process in bytes (VmHWM), 0 if unknown.
size_t PeakResidentMemoryBytes();
// Current resident set size in bytes (VmRSS), 0 if unknown.
size_t CurrentResidentMemoryBytes();

// The project version ("0.1.0").
std::string MegalocVersion();

}  // namespace megaloc
