#pragma once

// Test helpers around the library's pickle writer (megaloc/util/pickle_writer.h).

#include <cstring>
#include <string>
#include <vector>

#include "megaloc/util/pickle_writer.h"

namespace megaloc {
namespace testing {

using megaloc::PickleWriter;

// Little-endian element bytes of a vector (for NumpyArray1d).
template <typename T>
std::string RawBytes(const std::vector<T>& values) {
  std::string out(values.size() * sizeof(T), '\0');
  if (!values.empty()) std::memcpy(&out[0], values.data(), out.size());
  return out;
}

}  // namespace testing
}  // namespace megaloc
