#include "megaloc/eval/vpr/vpr_dataset.h"

#include <charconv>
#include <cmath>

#include "megaloc/io/image_list.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/string_utils.h"

namespace megaloc {
namespace {

// glob("**/*") does not descend into, nor return, names starting with '.'.
bool HasHiddenComponent(const std::string& name) {
  if (!name.empty() && name[0] == '.') return true;
  return name.find("/.") != std::string::npos;
}

}  // namespace

void ParseUtmFromName(const std::string& name,
                      double* easting,
                      double* northing,
                      const std::string& path_for_errors) {
  const std::string& where = path_for_errors.empty() ? name : path_for_errors;
  const size_t slash = name.rfind('/');
  const std::string filename = slash == std::string::npos ? name : name.substr(slash + 1);
  const std::vector<std::string> fields = Split(filename, '@');
  if (fields.size() < 3) {
    MEGALOC_THROW(FormatError, where << ": VPR image names must be @<utm_east>@<utm_north>@...@.jpg "
                                        "(found "
                                     << fields.size() - 1 << " '@')");
  }
  if (!ParseFiniteDouble(fields[1], easting)) {
    MEGALOC_THROW(FormatError, where << ": the UTM easting (first '@' field) '" << fields[1]
                                     << "' is not a finite number; names must be "
                                        "@<utm_east>@<utm_north>@...@.jpg");
  }
  if (!ParseFiniteDouble(fields[2], northing)) {
    MEGALOC_THROW(FormatError, where << ": the UTM northing (second '@' field) '" << fields[2]
                                     << "' is not a finite number; names must be "
                                        "@<utm_east>@<utm_north>@...@.jpg");
  }
}

std::vector<std::string> ListVprImages(const std::string& folder) {
  if (!DirectoryExists(folder)) {
    MEGALOC_THROW(IoError, folder << ": VPR image folder does not exist or is not a directory");
  }
  const std::string list_path = folder + "_images_paths.txt";
  if (FileExists(list_path)) {
    std::vector<std::string> names = ReadImageList(list_path, folder);
    if (names.empty()) MEGALOC_THROW(IoError, list_path << ": the image list is empty");
    return names;
  }
  std::vector<std::string> names;
  for (std::string& name : ListImages(folder, {"jpg", "jpeg", "png"})) {
    if (!HasHiddenComponent(name)) names.push_back(std::move(name));
  }
  if (names.empty()) {
    MEGALOC_THROW(IoError, folder << ": no images (.jpg, .jpeg, .png) in the folder or below");
  }
  return names;
}

VprDataset LoadVprDataset(const std::string& root) {
  VprDataset dataset;
  dataset.root = root;
  for (const char* sub : {"database", "queries"}) {
    const std::string folder = JoinPaths(root, sub);
    std::vector<VprImage>& images = std::string(sub) == "database" ? dataset.database : dataset.queries;
    for (const std::string& relative : ListVprImages(folder)) {
      VprImage image;
      image.name = std::string(sub) + "/" + relative;
      image.path = JoinPaths(folder, relative);
      ParseUtmFromName(relative, &image.easting, &image.northing, image.path);
      images.push_back(std::move(image));
    }
  }
  return dataset;
}

}  // namespace megaloc
