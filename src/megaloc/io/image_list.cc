#include "megaloc/io/image_list.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <system_error>
#include <unordered_set>

#include "megaloc/io/descriptor_store.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/string_utils.h"

namespace megaloc {
namespace fs = std::filesystem;

std::vector<std::string> DefaultImageExtensions() {
  return {"jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp", "ppm", "pgm", "pbm", "pnm"};
}

namespace {

bool HasImageExtension(const std::string& filename, const std::vector<std::string>& extensions) {
  const size_t dot = filename.rfind('.');
  if (dot == std::string::npos || dot + 1 == filename.size()) return false;
  const std::string ext = ToLower(filename.substr(dot + 1));
  for (const std::string& e : extensions) {
    if (ToLower(e) == ext) return true;
  }
  return false;
}

void ListRecursive(const fs::path& dir, const std::string& prefix,
                   const std::vector<std::string>& extensions,
                   std::vector<fs::path>* stack, std::vector<std::string>* out) {
  std::error_code ec;
  const fs::path canonical = fs::canonical(dir, ec);
  if (ec) return;
  if (std::find(stack->begin(), stack->end(), canonical) != stack->end()) return;  // cycle
  stack->push_back(canonical);
  fs::directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
  if (ec) MEGALOC_THROW(IoError, dir.string() << ": cannot read directory: " << ec.message());
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) MEGALOC_THROW(IoError, dir.string() << ": cannot read directory: " << ec.message());
    const std::string filename = it->path().filename().string();
    const std::string name = prefix.empty() ? filename : prefix + "/" + filename;
    std::error_code type_ec;
    if (fs::is_directory(it->path(), type_ec)) {  // follows symlinks
      ListRecursive(it->path(), name, extensions, stack, out);
    } else if (HasImageExtension(filename, extensions) &&
               (fs::is_regular_file(it->path(), type_ec) || IsDanglingSymlink(it->path().string()))) {
      // A dangling link named like an image is listed, as hloc's glob lists it: reading it then
      // fails for that image alone, with a message saying the link is dangling (ReadRgbImage).
      out->push_back(name);
    }
  }
  stack->pop_back();
}

}  // namespace

std::vector<std::string> ListImages(const std::string& image_root,
                                    const std::vector<std::string>& extensions) {
  if (!DirectoryExists(image_root)) {
    MEGALOC_THROW(IoError, image_root << ": image directory does not exist or is not a directory");
  }
  std::vector<std::string> names;
  std::vector<fs::path> stack;
  ListRecursive(fs::path(image_root), "", extensions, &stack, &names);
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

std::vector<std::string> ReadImageList(const std::string& list_path,
                                       const std::string& image_root) {
  if (!FileExists(list_path)) MEGALOC_THROW(IoError, list_path << ": image list does not exist");
  std::ifstream in(list_path);
  if (!in) MEGALOC_THROW(IoError, list_path << ": cannot read the image list");
  std::vector<std::string> names;
  std::unordered_set<std::string> seen;
  std::string line;
  int line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    const std::string trimmed = Trim(line);
    if (trimmed.empty() || trimmed[0] == '#') continue;
    const std::string name = SplitWhitespace(trimmed)[0];
    const std::string problem = DescriptorFile::CheckName(name);
    if (!problem.empty()) {
      MEGALOC_THROW(FormatError, list_path << ":" << line_number << ": invalid image name '" << name
                                           << "': " << problem);
    }
    if (!image_root.empty() && !FileExists(JoinPaths(image_root, name))) {
      std::string target;
      if (IsDanglingSymlink(JoinPaths(image_root, name), &target)) {
        MEGALOC_THROW(IoError, list_path << ":" << line_number << ": image '" << name << "' under "
                                         << image_root << " is a dangling symbolic link (its target '"
                                         << target << "' does not exist)");
      }
      MEGALOC_THROW(IoError, list_path << ":" << line_number << ": image '" << name
                                       << "' does not exist under " << image_root);
    }
    if (seen.insert(name).second) names.push_back(name);
  }
  if (in.bad()) MEGALOC_THROW(IoError, list_path << ": read error");
  return names;
}

uint64_t ShardHash(const std::string& name) {
  uint64_t hash = 14695981039346656037ull;
  for (const unsigned char c : name) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

int ShardOf(const std::string& name, int num_shards) {
  MEGALOC_CHECK_GE(num_shards, 1);
  return 1 + static_cast<int>(ShardHash(name) % static_cast<uint64_t>(num_shards));
}

std::vector<std::string> SelectShard(const std::vector<std::string>& names, int shard_index,
                                     int num_shards) {
  MEGALOC_CHECK_MSG(num_shards >= 1 && shard_index >= 1 && shard_index <= num_shards,
                    "shard " << shard_index << "/" << num_shards << " is invalid (need 1 <= K <= N)");
  std::vector<std::string> out;
  for (const std::string& name : names) {
    if (ShardOf(name, num_shards) == shard_index) out.push_back(name);
  }
  return out;
}

}  // namespace megaloc
