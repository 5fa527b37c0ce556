#include "megaloc/util/file_utils.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstring>
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

bool IsDanglingSymlink(const std::string& path, std::string* target) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return false;
  if (stat(path.c_str(), &st) == 0 || (errno != ENOENT && errno != ELOOP)) return false;
  if (target != nullptr) {
    std::vector<char> buffer(PATH_MAX + 1);
    const ssize_t n = readlink(path.c_str(), buffer.data(), PATH_MAX);
    *target = n < 0 ? std::string() : std::string(buffer.data(), static_cast<size_t>(n));
  }
  return true;
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
  WriteFileAtomically(path, [&content](const ByteSink& sink) { sink(content.data(), content.size()); });
}

void WriteFileAtomically(const std::string& path, const std::function<void(const ByteSink& sink)>& produce) {
  const std::string target = CheckOutputFile(path);
  const std::string tmp = target + ".tmp";
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) MEGALOC_THROW(IoError, tmp << ": cannot create file: " << std::strerror(errno));
  int error = 0;
  const ByteSink sink = [fd, &error](const void* bytes, size_t size) {
    const char* data = static_cast<const char*>(bytes);
    size_t left = size;
    while (error == 0 && left > 0) {
      const ssize_t n = write(fd, data, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        error = n < 0 ? errno : ENOSPC;
        break;
      }
      data += n;
      left -= static_cast<size_t>(n);
    }
    return error == 0;
  };
  try {
    produce(sink);
  } catch (...) {
    close(fd);
    unlink(tmp.c_str());
    throw;
  }
  // fsync: a full disk may only show here (delayed allocation), and the rename must not reach the
  // disk before the data.
  if (error == 0 && fsync(fd) != 0) error = errno;
  if (close(fd) != 0 && error == 0) error = errno;
  if (error != 0) {
    unlink(tmp.c_str());
    MEGALOC_THROW(IoError, path << ": cannot write " << tmp << ": " << std::strerror(error));
  }
  if (std::rename(tmp.c_str(), target.c_str()) != 0) {
    error = errno;
    unlink(tmp.c_str());
    MEGALOC_THROW(IoError, path << ": cannot rename " << tmp << " into place: " << std::strerror(error));
  }
}

namespace {

std::string DescribeFileType(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

std::string ParentOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// The file a chain of symbolic links ends at (the last, missing, name for a dangling link).
std::string FollowLinks(const std::string& path) {
  std::string current = path;
  for (int hop = 0; hop < 40; ++hop) {
    struct stat st;
    if (lstat(current.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return current;
    std::vector<char> buffer(PATH_MAX + 1);
    const ssize_t n = readlink(current.c_str(), buffer.data(), PATH_MAX);
    if (n < 0) return current;
    const std::string target(buffer.data(), static_cast<size_t>(n));
    current = (!target.empty() && target[0] == '/') ? target : JoinPaths(ParentOf(current), target);
  }
  MEGALOC_THROW(IoError, path << ": cannot write the output: too many levels of symbolic links");
}

}  // namespace

std::string CheckOutputFile(const std::string& path, const std::vector<std::string>& inputs) {
  if (path.empty()) MEGALOC_THROW(InvalidArgument, "an output path is empty");
  struct stat st;
  const bool exists = stat(path.c_str(), &st) == 0;  // follows symbolic links
  if (exists && !S_ISREG(st.st_mode)) {
    struct stat link;
    const bool is_link = lstat(path.c_str(), &link) == 0 && S_ISLNK(link.st_mode);
    MEGALOC_THROW(IoError, path << ": cannot write the output: " << (is_link ? "links to " : "is ")
                                << DescribeFileType(st.st_mode)
                                << "; megaloc writes outputs as regular files only (give a file "
                                   "path)");
  }
  if (exists) {
    for (const std::string& input : inputs) {
      struct stat in;
      if (input.empty() || stat(input.c_str(), &in) != 0) continue;
      if (in.st_dev == st.st_dev && in.st_ino == st.st_ino) {
        MEGALOC_THROW(InvalidArgument, path << ": the output is the same file as the input "
                                            << input << "; refusing to overwrite an input");
      }
    }
  }
  return FollowLinks(path);
}

void CheckOutputFiles(const std::vector<std::string>& outputs, const std::vector<std::string>& inputs) {
  std::vector<std::pair<std::string, std::string>> seen;  // (output, where it is written)
  for (const std::string& output : outputs) {
    if (output.empty()) continue;
    const std::string target = CheckOutputFile(output, inputs);
    std::error_code ec;
    const std::string canonical = fs::weakly_canonical(target, ec).string();
    for (const auto& [other, other_canonical] : seen) {
      if (!ec && canonical == other_canonical) {
        MEGALOC_THROW(InvalidArgument, output << ": the same file is given for two outputs (" << other
                                              << " and " << output << ")");
      }
    }
    seen.emplace_back(output, ec ? target : canonical);
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
