#include "megaloc/util/file_utils.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "megaloc/util/logging.h"

namespace megaloc {

namespace fs = std::filesystem;

bool FileExists(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

bool DirectoryExists(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

void CreateDirectories(const std::string& path) {
  if (path.empty()) return;
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec && !DirectoryExists(path)) {
    MEGALOC_THROW(IoError, path << ": cannot create directory (" << ec.message() << ")");
  }
}

std::string ReadFileToString(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) MEGALOC_THROW(IoError, path << ": cannot open file");
  std::ostringstream out;
  out << file.rdbuf();
  if (file.bad()) MEGALOC_THROW(IoError, path << ": read error");
  return out.str();
}

void WriteFileAtomically(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream file(tmp, std::ios::binary | std::ios::trunc);
    if (!file) MEGALOC_THROW(IoError, tmp << ": cannot create file");
    file.write(content.data(), static_cast<std::streamsize>(content.size()));
    file.flush();
    if (!file) MEGALOC_THROW(IoError, tmp << ": write failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    MEGALOC_THROW(IoError, path << ": cannot rename " << tmp << " into place");
  }
}

std::string JoinPaths(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  if (a.back() == '/') return a + (b.front() == '/' ? b.substr(1) : b);
  return a + (b.front() == '/' ? b : "/" + b);
}

std::string CreateTempDirectory(const std::string& prefix) {
  std::string pattern = (fs::temp_directory_path() / (prefix + "_XXXXXX")).string();
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (mkdtemp(buffer.data()) == nullptr) {
    MEGALOC_THROW(IoError, pattern << ": cannot create temporary directory");
  }
  return std::string(buffer.data());
}

}  // namespace megaloc
