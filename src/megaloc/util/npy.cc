#include "megaloc/util/npy.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/string_utils.h"

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
  static const char* const kDtypes[] = {"b1", "i1", "u1", "i2", "u2", "f2", "i4", "u4",
                                        "f4", "i8", "u8", "f8"};
  for (const char* known : kDtypes) {
    if (dtype == known) return known[1] - '0';
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

namespace {

// Parses the shape tuple, e.g. "()", "(8,)", "(8, 3)": non-negative decimal integers only.
std::vector<int64_t> ParseShape(const std::string& text, const std::string& path) {
  auto bad = [&]() {
    MEGALOC_THROW(FormatError, path << ": malformed .npy shape " << EscapeForMessage(text, 80)
                                    << " (expected a tuple of non-negative integers)");
  };
  if (text.size() < 2 || text.front() != '(' || text.back() != ')') bad();
  std::vector<int64_t> shape;
  size_t i = 1;
  const size_t end = text.size() - 1;
  while (true) {
    while (i < end && text[i] == ' ') ++i;
    if (i == end) break;
    if (text[i] < '0' || text[i] > '9') bad();
    int64_t value = 0;
    while (i < end && text[i] >= '0' && text[i] <= '9') {
      if (__builtin_mul_overflow(value, int64_t{10}, &value) ||
          __builtin_add_overflow(value, int64_t{text[i] - '0'}, &value)) {
        MEGALOC_THROW(FormatError, path << ": .npy shape " << EscapeForMessage(text, 80) << " overflows 64 bits");
      }
      ++i;
    }
    shape.push_back(value);
    while (i < end && text[i] == ' ') ++i;
    if (i == end) break;
    if (text[i] != ',') bad();
    ++i;
  }
  return shape;
}

// Reads the magic, version and header dict of a .npy stream. `read` fills n bytes or returns
// false; `total_size` is the size of the whole stream. Returns the number of data bytes, checked
// against what the stream holds before anything is allocated.
template <typename ReadFn>
size_t ParseNpyHeader(const std::string& path, uint64_t total_size, ReadFn read, NpyArray* array) {
  char magic[8];
  if (!read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) {
    MEGALOC_THROW(FormatError, path << ": not a .npy file (bad magic)");
  }
  const int major = static_cast<unsigned char>(magic[6]);
  uint32_t header_len = 0;
  uint64_t prefix = 0;
  if (major == 1) {
    unsigned char len[2];
    if (!read(reinterpret_cast<char*>(len), 2)) MEGALOC_THROW(FormatError, path << ": truncated .npy header");
    header_len = len[0] | (len[1] << 8);
    prefix = 10;
  } else if (major == 2 || major == 3) {
    unsigned char len[4];
    if (!read(reinterpret_cast<char*>(len), 4)) MEGALOC_THROW(FormatError, path << ": truncated .npy header");
    header_len = len[0] | (len[1] << 8) | (len[2] << 16) | (static_cast<uint32_t>(len[3]) << 24);
    prefix = 12;
  } else {
    MEGALOC_THROW(FormatError, path << ": unsupported .npy version " << major);
  }
  if (header_len > total_size - prefix) {
    MEGALOC_THROW(FormatError, path << ": truncated .npy header (" << header_len
                                    << " bytes announced, " << total_size - prefix << " left)");
  }
  std::string header(header_len, '\0');
  if (!read(header.data(), header_len)) MEGALOC_THROW(FormatError, path << ": truncated .npy header");

  std::string descr = HeaderValue(header, "descr", path);
  if (descr.empty()) MEGALOC_THROW(FormatError, path << ": empty .npy dtype");
  if (descr[0] == '>') MEGALOC_THROW(FormatError, path << ": big-endian .npy data is not supported");
  if (descr[0] == '<' || descr[0] == '|' || descr[0] == '=') descr = descr.substr(1);
  array->dtype = descr;
  if (array->ElementSize() == 0) {
    MEGALOC_THROW(FormatError, path << ": unsupported .npy dtype '" << EscapeForMessage(descr, 80) << "'");
  }
  const std::string fortran = HeaderValue(header, "fortran_order", path);
  if (fortran.find("True") != std::string::npos) {
    MEGALOC_THROW(FormatError, path << ": Fortran-ordered .npy arrays are not supported");
  }
  array->shape = ParseShape(HeaderValue(header, "shape", path), path);
  uint64_t num_bytes = static_cast<uint64_t>(array->ElementSize());
  for (const int64_t dim : array->shape) {
    if (__builtin_mul_overflow(num_bytes, static_cast<uint64_t>(dim), &num_bytes)) {
      MEGALOC_THROW(FormatError, path << ": .npy shape overflows 64 bits");
    }
  }
  const uint64_t available = total_size - prefix - header_len;
  if (num_bytes > available) {
    MEGALOC_THROW(FormatError, path << ": truncated .npy data (expected " << num_bytes
                                    << " bytes, the file has " << available << ")");
  }
  return static_cast<size_t>(num_bytes);
}

}  // namespace

NpyArray ReadNpy(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec)) {
    MEGALOC_THROW(IoError, path << ": not a regular file");
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) MEGALOC_THROW(IoError, path << ": cannot open file");
  const uint64_t total_size = std::filesystem::file_size(path, ec);
  if (ec) MEGALOC_THROW(IoError, path << ": cannot read the file size (" << ec.message() << ")");
  NpyArray array;
  const size_t num_bytes = ParseNpyHeader(
      path, total_size, [&file](char* out, size_t n) {
        return static_cast<bool>(file.read(out, static_cast<std::streamsize>(n)));
      },
      &array);
  array.data.resize(num_bytes);
  if (num_bytes > 0 && !file.read(array.data.data(), num_bytes)) {
    MEGALOC_THROW(FormatError, path << ": truncated .npy data (expected " << num_bytes << " bytes)");
  }
  return array;
}

NpyArray ParseNpy(const std::string& bytes, const std::string& source) {
  size_t pos = 0;
  NpyArray array;
  const size_t num_bytes = ParseNpyHeader(
      source, bytes.size(), [&](char* out, size_t n) {
        if (n > bytes.size() - pos) return false;
        std::memcpy(out, bytes.data() + pos, n);
        pos += n;
        return true;
      },
      &array);
  array.data.assign(bytes.data() + pos, bytes.data() + pos + num_bytes);
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
  const uint16_t len = static_cast<uint16_t>(header.size());
  NpyArray layout;
  layout.dtype = dtype;
  layout.shape = shape;
  std::string content("\x93NUMPY\x01\x00", 8);
  content.push_back(static_cast<char>(len & 0xff));
  content.push_back(static_cast<char>(len >> 8));
  content += header;
  content.append(static_cast<const char*>(data), layout.NumElements() * layout.ElementSize());
  // Temporary file + fsync + rename: never a partial .npy; a full disk names the reason.
  WriteFileAtomically(path, content);
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
