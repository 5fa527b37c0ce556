#pragma once

// Reader and writer of NumPy .npy files (format versions 1.0-3.0), C order, little-endian.
// Used for the parity fixtures, ranking arrays (revisitop) and benchmark outputs.

#include <cstdint>
#include <string>
#include <vector>

namespace megaloc {

// An n-dimensional array as stored in a .npy file.
struct NpyArray {
  // NumPy type descriptor without the byte-order mark: "f4", "f8", "f2", "i8", "i4", "u1", "b1", ...
  std::string dtype;
  // Shape in C order; empty for a 0-d array.
  std::vector<int64_t> shape;
  // Raw little-endian element bytes, C order.
  std::vector<char> data;

  int64_t NumElements() const;
  // Size in bytes of one element.
  int ElementSize() const;

  // Elements converted to T (float, double, int64_t, int32_t, uint8_t). Throws FormatError for
  // dtypes that cannot be converted (e.g. strings).
  template <typename T>
  std::vector<T> As() const;
};

// Reads a .npy file. Throws IoError / FormatError naming the file and the reason (missing file,
// bad magic, Fortran order, big-endian data, truncated data, ...).
// Shapes must be tuples of non-negative integers; the data size (shape x dtype, overflow-checked)
// is checked against the file size before anything is allocated.
NpyArray ReadNpy(const std::string& path);

// The same for a .npy image in memory; `source` names it in errors.
NpyArray ParseNpy(const std::string& bytes, const std::string& source);

// Writes a .npy file (version 1.0) with the given dtype descriptor ("f4", "f8", "i8", "i4", "u1"),
// atomically (WriteFileAtomically: temporary file, fsync, rename; errors name the file and reason).
void WriteNpy(const std::string& path,
              const std::string& dtype,
              const std::vector<int64_t>& shape,
              const void* data);

// Typed convenience writers.
void WriteNpy(const std::string& path, const std::vector<int64_t>& shape, const float* data);
void WriteNpy(const std::string& path, const std::vector<int64_t>& shape, const double* data);
void WriteNpy(const std::string& path, const std::vector<int64_t>& shape, const int64_t* data);

}  // namespace megaloc
