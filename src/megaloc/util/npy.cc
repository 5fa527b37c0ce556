#include "megaloc/util/npy.h"

#include <cstring>
#include <fstream>
#include <numeric>

#include "megaloc/util/logging.h"

namespace megaloc {
namespace {

// Extracts the value of `key` from the header dict, e.g. "'descr': '<f4'".
std::string HeaderValue(const std::string& header, const std::string& key, const std::string& path) {
  const std::string pattern = "'" + key + "':";
  const size_t pos = header.find(pattern);
  if (pos == std::string::npos) {
    MEGALOC_THROW(FormatError, path << ": not a valid .npy file (header has no '" << key << "')");
  }
  size_t begin = pos + pattern.size();
  while (begin < header.size() && header[begin] == ' ') ++begin;
  size_t end = begin;
  if (header[begin] == '(') {
    end = header.find(')', begin);
    if (end == std::string::npos) MEGALOC_THROW(FormatError, path << ": malformed .npy shape");
    return header.substr(begin, end - begin + 1);
  }
  if (header[begin] == '\'') {
    end = header.find('\'', begin + 1);
    if (end == std::string::npos) MEGALOC_THROW(FormatError, path << ": malformed .npy header");
    return header.substr(begin + 1, end - begin - 1);
  }
  while (end < header.size() && header[end] != ',' && header[end] != '}') ++end;
  return header.substr(begin, end - begin);
}

}  // namespace

int64_t NpyArray::NumElements() const {
  return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<int64_t>());
}

int NpyArray::ElementSize() const {
  if (dtype.size() < 2) return 0;
  if (dtype[0] == 'b' || dtype[0] == 'u' || dtype[0] == 'i' || dtype[0] == 'f') {
    return std::stoi(dtype.substr(1));
  }
  return 0;
}

template <typename T>
std::vector<T> NpyArray::As() const {
  const int64_t n = NumElements();
  std::vector<T> out(static_cast<size_t>(n));
  auto convert = [&](auto tag) {
    using S = decltype(tag);
    for (int64_t i = 0; i < n; ++i) {
      S value;
      std::memcpy(&value, data.data() + i * sizeof(S), sizeof(S));
      out[i] = static_cast<T>(value);
    }
  };
  if (dtype == "f4") convert(float{});
  else if (dtype == "f8") convert(double{});
  else if (dtype == "i8") convert(int64_t{});
  else if (dtype == "i4") convert(int32_t{});
  else if (dtype == "i2") convert(int16_t{});
  else if (dtype == "i1") convert(int8_t{});
  else if (dtype == "u1" || dtype == "b1") convert(uint8_t{});
  else if (dtype == "u2") convert(uint16_t{});
  else if (dtype == "u4") convert(uint32_t{});
  else if (dtype == "u8") convert(uint64_t{});
  else MEGALOC_THROW(FormatError, "cannot convert .npy dtype '" << dtype << "' to a number");
  return out;
}

template std::vector<float> NpyArray::As<float>() const;
template std::vector<double> NpyArray::As<double>() const;
template std::vector<int64_t> NpyArray::As<int64_t>() const;
template std::vector<int32_t> NpyArray::As<int32_t>() const;
template std::vector<uint8_t> NpyArray::As<uint8_t>() const;

NpyArray ReadNpy(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) MEGALOC_THROW(IoError, path << ": cannot open file");
  char magic[8];
  if (!file.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) {
    MEGALOC_THROW(FormatError, path << ": not a .npy file (bad magic)");
  }
  const int major = static_cast<unsigned char>(magic[6]);
  uint32_t header_len = 0;
  if (major == 1) {
    unsigned char len[2];
    if (!file.read(reinterpret_cast<char*>(len), 2)) MEGALOC_THROW(FormatError, path << ": truncated .npy header");
    header_len = len[0] | (len[1] << 8);
  } else if (major == 2 || major == 3) {
    unsigned char len[4];
    if (!file.read(reinterpret_cast<char*>(len), 4)) MEGALOC_THROW(FormatError, path << ": truncated .npy header");
    header_len = len[0] | (len[1] << 8) | (len[2] << 16) | (static_cast<uint32_t>(len[3]) << 24);
  } else {
    MEGALOC_THROW(FormatError, path << ": unsupported .npy version " << major);
  }
  std::string header(header_len, '\0');
  if (!file.read(header.data(), header_len)) MEGALOC_THROW(FormatError, path << ": truncated .npy header");

  NpyArray array;
  std::string descr = HeaderValue(header, "descr", path);
  if (descr.empty()) MEGALOC_THROW(FormatError, path << ": empty .npy dtype");
  if (descr[0] == '>') MEGALOC_THROW(FormatError, path << ": big-endian .npy data is not supported");
  if (descr[0] == '<' || descr[0] == '|' || descr[0] == '=') descr = descr.substr(1);
  array.dtype = descr;
  if (array.ElementSize() == 0) MEGALOC_THROW(FormatError, path << ": unsupported .npy dtype '" << descr << "'");
  const std::string fortran = HeaderValue(header, "fortran_order", path);
  if (fortran.find("True") != std::string::npos) {
    MEGALOC_THROW(FormatError, path << ": Fortran-ordered .npy arrays are not supported");
  }
  const std::string shape = HeaderValue(header, "shape", path);
  std::string number;
  for (char c : shape) {
    if (c >= '0' && c <= '9') {
      number += c;
    } else if (!number.empty()) {
      array.shape.push_back(std::stoll(number));
      number.clear();
    }
  }
  const size_t num_bytes = static_cast<size_t>(array.NumElements()) * array.ElementSize();
  array.data.resize(num_bytes);
  if (num_bytes > 0 && !file.read(array.data.data(), num_bytes)) {
    MEGALOC_THROW(FormatError, path << ": truncated .npy data (expected " << num_bytes << " bytes)");
  }
  return array;
}

void WriteNpy(const std::string& path,
              const std::string& dtype,
              const std::vector<int64_t>& shape,
              const void* data) {
  std::string shape_text = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    shape_text += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) shape_text += ",";
    if (i + 1 < shape.size()) shape_text += " ";
  }
  shape_text += ")";
  const std::string byte_order = (dtype == "u1" || dtype == "i1" || dtype == "b1") ? "|" : "<";
  std::string header = "{'descr': '" + byte_order + dtype + "', 'fortran_order': False, 'shape': " +
                       shape_text + ", }";
  const size_t total = 10 + header.size() + 1;
  header += std::string((64 - total % 64) % 64, ' ') + "\n";
  std::ofstream file(path, std::ios::binary);
  if (!file) MEGALOC_THROW(IoError, path << ": cannot create file");
  file.write("\x93NUMPY\x01\x00", 8);
  const uint16_t len = static_cast<uint16_t>(header.size());
  const char len_bytes[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
  file.write(len_bytes, 2);
  file.write(header.data(), header.size());
  NpyArray tmp;
  tmp.dtype = dtype;
  tmp.shape = shape;
  file.write(static_cast<const char*>(data), tmp.NumElements() * tmp.ElementSize());
  if (!file) MEGALOC_THROW(IoError, path << ": write failed");
}

void WriteNpy(const std::string& path, const std::vector<int64_t>& shape, const float* data) {
  WriteNpy(path, "f4", shape, data);
}
void WriteNpy(const std::string& path, const std::vector<int64_t>& shape, const double* data) {
  WriteNpy(path, "f8", shape, data);
}
void WriteNpy(const std::string& path, const std::vector<int64_t>& shape, const int64_t* data) {
  WriteNpy(path, "i8", shape, data);
}

}  // namespace megaloc
