#include "megaloc/util/timer.h"

#include <fstream>
#include <string>

namespace megaloc {
namespace {

size_t ReadStatusField(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.compare(0, field.size(), field) == 0) {
      return static_cast<size_t>(std::stoull(line.substr(field.size() + 1))) * 1024;
    }
  }
  return 0;
}

}  // namespace

Timer::Timer() { Restart(); }
void Timer::Restart() { start_ = std::chrono::steady_clock::now(); }
double Timer::ElapsedSeconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

size_t PeakResidentMemoryBytes() { return ReadStatusField("VmHWM"); }
size_t CurrentResidentMemoryBytes() { return ReadStatusField("VmRSS"); }

std::string MegalocVersion() { return MEGALOC_VERSION_STRING; }

}  // namespace megaloc
