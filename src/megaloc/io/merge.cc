#include "megaloc/io/merge.h"

#include <filesystem>
#include <map>
#include <memory>

#include "megaloc/io/descriptor_store.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/timer.h"

namespace megaloc {
namespace {

bool SamePath(const std::string& a, const std::string& b) {
  std::error_code ec;
  if (std::filesystem::exists(a, ec) && std::filesystem::exists(b, ec)) {
    return std::filesystem::equivalent(a, b, ec);
  }
  return std::filesystem::weakly_canonical(a, ec) == std::filesystem::weakly_canonical(b, ec);
}

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

}  // namespace

MergeStats MergeDescriptorFiles(const std::vector<std::string>& input_paths,
                                const std::string& output_path) {
  MEGALOC_CHECK_MSG(!input_paths.empty(), "merge: no input files");
  MEGALOC_CHECK_MSG(!output_path.empty(), "merge: no output file");
  MergeStats stats;
  stats.num_inputs = input_paths.size();
  std::vector<Source> sources;
  for (const std::string& path : input_paths) {
    if (SamePath(path, output_path)) {
      MEGALOC_THROW(InvalidArgument, path << ": an input cannot also be the output");
    }
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
    const int source_dim = source.file->Dim(source.names.front());
    if (dim == 0) {
      dim = source_dim;
      dim_file = source.path;
    } else if (source_dim != dim) {
      MEGALOC_THROW(FormatError, "cannot merge " << source.path << " and " << dim_file
                                                 << ": descriptor dimension " << source_dim
                                                 << " vs. " << dim);
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

  // Write (the output's own handle must be closed first: one writer, no reader).
  const size_t slash = output_path.rfind('/');
  if (slash != std::string::npos && slash > 0) CreateDirectories(output_path.substr(0, slash));
  const bool output_had_content = !sources.empty() && sources.back().is_output;
  if (output_had_content) sources.back().file.reset();
  auto output = DescriptorFile::Open(output_path, DescriptorFile::Mode::kAppend);
  size_t since_flush = 0;
  for (const auto& [name, s] : owner) {
    const Source& source = sources[s];
    if (source.is_output) continue;
    const Eigen::VectorXf descriptor = source.file->Read(name);
    const auto size = source.file->ImageSize(name);
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
  return stats;
}

}  // namespace megaloc
