#include "megaloc/io/merge.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>

#include "megaloc/io/descriptor_store.h"
#include "megaloc/io/journal_vfd.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/timer.h"

namespace megaloc {
namespace {

// Removes the temporary output (and a journal left by a failed commit) unless released.
class TemporaryOutput {
 public:
  explicit TemporaryOutput(std::string path) : path_(std::move(path)) {}
  ~TemporaryOutput() {
    if (path_.empty()) return;
    std::remove(path_.c_str());
    std::remove((path_ + ".journal").c_str());
  }
  void Release() { path_.clear(); }

 private:
  std::string path_;
};

// An exclusive lock on an existing output for the whole merge (no other writer may change it
// between the copy and the rename); -1 if the output does not exist.
class OutputLock {
 public:
  explicit OutputLock(const std::string& path) {
    fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ >= 0 && flock(fd_, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
      close(fd_);
      MEGALOC_THROW(IoError, path << ": cannot merge into the file: it is being written by another process");
    }
  }
  ~OutputLock() {
    if (fd_ >= 0) close(fd_);
  }
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;

 private:
  int fd_ = -1;
};

struct Source {
  std::string path;
  std::unique_ptr<DescriptorFile> file;
  std::vector<std::string> names;  // images with a global_descriptor
  std::map<std::string, std::string> attributes;
  bool is_output = false;
};

const char* const kCheckedAttributes[] = {kAttrDescriptorDim, kAttrWeightsSha256,
                                          kAttrPreprocessing, kAttrDtype, kAttrModel,
                                          kAttrPrecision};

// Writes every image owned by an input (not the output) and the attributes into `temp`.
void WriteMerged(const std::vector<Source>& sources, const std::map<std::string, size_t>& owner, int dim,
                 bool all_have_attributes,
                 const std::map<std::string, std::pair<std::string, std::string>>& reference,
                 const std::string& temp, MergeStats* stats);

}  // namespace

MergeStats MergeDescriptorFiles(const std::vector<std::string>& input_paths,
                                const std::string& output_path) {
  MEGALOC_CHECK_MSG(!input_paths.empty(), "merge: no input files");
  MEGALOC_CHECK_MSG(!output_path.empty(), "merge: no output file");
  MergeStats stats;
  stats.num_inputs = input_paths.size();
  // The output must be a regular file (or missing) and none of the inputs (same inode).
  const std::string target = CheckOutputFile(output_path, input_paths);
  std::vector<Source> sources;
  for (const std::string& path : input_paths) {
    Source source;
    source.path = path;
    source.file = DescriptorFile::Open(path, DescriptorFile::Mode::kRead);
    sources.push_back(std::move(source));
  }
  if (FileExists(output_path)) {
    Source source;
    source.path = output_path;
    source.file = DescriptorFile::Open(output_path, DescriptorFile::Mode::kRead);
    source.is_output = true;
    sources.push_back(std::move(source));
  }

  // Inventory and attribute checks.
  bool all_have_attributes = true;
  std::map<std::string, std::pair<std::string, std::string>> reference;  // key -> (value, file)
  int dim = 0;
  std::string dim_file;
  for (Source& source : sources) {
    source.names = source.file->ListDescriptorNames();
    source.attributes = source.file->Attributes();
    if (source.names.empty()) continue;
    if (!source.attributes.count(kAttrPreprocessing)) all_have_attributes = false;
    for (const char* key : kCheckedAttributes) {
      const auto it = source.attributes.find(key);
      if (it == source.attributes.end()) continue;
      const auto ref = reference.find(key);
      if (ref == reference.end()) {
        reference[key] = {it->second, source.path};
      } else if (ref->second.first != it->second) {
        MEGALOC_THROW(FormatError, "cannot merge " << source.path << " and " << ref->second.second
                                                   << ": attribute '" << key << "' differs ('"
                                                   << it->second << "' vs. '"
                                                   << ref->second.first << "')");
      }
    }
    // Every image (not only the first of each file): dimension and image size readable.
    for (const std::string& name : source.names) {
      const int source_dim = source.file->Dim(name);
      if (dim == 0) {
        dim = source_dim;
        dim_file = source.path + " ('" + name + "')";
      } else if (source_dim != dim) {
        MEGALOC_THROW(FormatError, "cannot merge: image '" << name << "' in " << source.path
                                                           << " has descriptor dimension " << source_dim
                                                           << ", but " << dim << " in " << dim_file);
      }
      source.file->ImageSize(name);
    }
  }

  // Owner of every name (output first, then inputs in order); duplicates must be identical.
  std::map<std::string, size_t> owner;
  std::vector<size_t> order(sources.size());
  for (size_t i = 0; i < sources.size(); ++i) order[i] = i;
  if (!sources.empty() && sources.back().is_output) {
    order.pop_back();
    order.insert(order.begin(), sources.size() - 1);
  }
  for (const size_t s : order) {
    for (const std::string& name : sources[s].names) {
      const auto [it, inserted] = owner.emplace(name, s);
      if (inserted) continue;
      const Source& a = sources[it->second];
      const Source& b = sources[s];
      const bool same = a.file->Read(name) == b.file->Read(name) &&
                        a.file->ImageSize(name) == b.file->ImageSize(name);
      if (!same) {
        MEGALOC_THROW(FormatError, "cannot merge: image '" << name << "' has different descriptors in "
                                                           << a.path << " and " << b.path);
      }
      if (a.is_output) {
        ++stats.num_already_in_output;
      } else {
        ++stats.num_identical_duplicates;
      }
    }
  }

  // Write into a temporary copy of the output, renamed over it at the end: a merge that fails at any
  // point (a NaN descriptor, a full disk) leaves the output as it was, or absent.
  const size_t slash = target.rfind('/');
  if (slash != std::string::npos && slash > 0) CreateDirectories(target.substr(0, slash));
  const bool output_had_content = !sources.empty() && sources.back().is_output;
  if (output_had_content) sources.back().file.reset();  // its read lock would block OutputLock
  OutputLock output_lock(target);
  const std::string temp = target + ".merging";
  TemporaryOutput temp_guard(temp);
  std::remove((temp + ".journal").c_str());
  if (FileExists(target)) {
    std::error_code ec;
    std::filesystem::copy_file(target, temp, std::filesystem::copy_options::overwrite_existing, ec);
    if (ec) MEGALOC_THROW(IoError, output_path << ": cannot copy it to " << temp << ": " << ec.message());
  } else {
    std::remove(temp.c_str());
  }
  try {
    WriteMerged(sources, owner, dim, all_have_attributes, reference, temp, &stats);
  } catch (const IoError& e) {
    const std::string reason = internal::JournalWriteError(temp);
    MEGALOC_THROW(IoError, "cannot merge into " << output_path << " (left unchanged): "
                                                << (reason.empty() ? e.what() : reason));
  }
  if (std::rename(temp.c_str(), target.c_str()) != 0) {
    MEGALOC_THROW(IoError, output_path << ": cannot rename " << temp << " into place: " << std::strerror(errno));
  }
  temp_guard.Release();
  return stats;
}

namespace {

void WriteMerged(const std::vector<Source>& sources, const std::map<std::string, size_t>& owner, int dim,
                 bool all_have_attributes,
                 const std::map<std::string, std::pair<std::string, std::string>>& reference,
                 const std::string& temp, MergeStats* stats_out) {
  MergeStats& stats = *stats_out;
  auto output = DescriptorFile::Open(temp, DescriptorFile::Mode::kAppend);
  size_t since_flush = 0;
  for (const auto& [name, s] : owner) {
    const Source& source = sources[s];
    if (source.is_output) continue;
    const Eigen::VectorXf descriptor = source.file->Read(name);
    const auto size = source.file->ImageSize(name);
    if (descriptor.size() != dim) {  // checked above; the file may have changed since
      MEGALOC_THROW(FormatError, source.path << ": image '" << name << "' changed while merging");
    }
    output->Write(name, descriptor.data(), static_cast<int>(descriptor.size()),
                  static_cast<int>(size.first), static_cast<int>(size.second),
                  source.file->Dtype(name));
    ++stats.num_written;
    if (++since_flush == 256) {
      output->Flush();
      since_flush = 0;
    }
  }
  if (all_have_attributes && !reference.empty()) {
    for (const auto& [key, value] : reference) output->SetAttribute(key, value.first);
    output->SetAttribute(kAttrToolVersion, MegalocVersion());
  } else {
    // Provenance that no longer holds for every image is removed.
    for (const auto& [key, value] : output->Attributes()) output->DeleteAttribute(key);
  }
  output->Flush();
}

}  // namespace

}  // namespace megaloc
