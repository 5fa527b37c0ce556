#include "megaloc/util/string_utils.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace megaloc {

std::vector<std::string> SplitWhitespace(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  std::string token;
  while (in >> token) out.push_back(token);
  return out;
}

std::vector<std::string> Split(const std::string& text, char delimiter) {
  std::vector<std::string> out;
  std::string field;
  for (char c : text) {
    if (c == delimiter) {
      out.push_back(field);
      field.clear();
    } else {
      field += c;
    }
  }
  out.push_back(field);
  return out;
}

std::string Trim(const std::string& text) {
  size_t begin = 0, end = text.size();
  while (begin < end && std::isspace(static_cast<unsigned char>(text[begin]))) ++begin;
  while (end > begin && std::isspace(static_cast<unsigned char>(text[end - 1]))) --end;
  return text.substr(begin, end - begin);
}

bool StartsWith(const std::string& text, const std::string& prefix) {
  return text.size() >= prefix.size() && text.compare(0, prefix.size(), prefix) == 0;
}

bool EndsWith(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string ToLower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

bool HasWhitespace(const std::string& text) {
  return std::any_of(text.begin(), text.end(),
                     [](unsigned char c) { return std::isspace(c) != 0; });
}

bool ParseDouble(const std::string& text, double* value) {
  const std::string field = Trim(text);
  if (field.empty()) return false;
  // strtod also reads hexadecimal floats and "nan(chars)", which Python's float() rejects.
  if (field.find_first_of("xX(") != std::string::npos) return false;
  char* end = nullptr;
  const double parsed = std::strtod(field.c_str(), &end);
  if (end != field.c_str() + field.size()) return false;
  *value = parsed;
  return true;
}

bool ParseFiniteDouble(const std::string& text, double* value) {
  double parsed = 0.0;
  if (!ParseDouble(text, &parsed) || !std::isfinite(parsed)) return false;
  *value = parsed;
  return true;
}

bool ParseInt64(const std::string& text, int64_t* value) {
  const std::string field = Trim(text);
  const char* begin = field.data();
  const char* end = field.data() + field.size();
  if (begin != end && *begin == '+') ++begin;
  if (begin == end || (*begin == '-' && field[0] == '+')) return false;
  int64_t parsed = 0;
  const auto result = std::from_chars(begin, end, parsed);
  if (result.ec != std::errc() || result.ptr != end) return false;
  *value = parsed;
  return true;
}

std::string EscapeForMessage(const std::string& text, size_t max_length) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < text.size() && i < max_length; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  if (text.size() > max_length) out += "...";
  return out;
}

}  // namespace megaloc
