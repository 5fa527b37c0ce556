#pragma once

// Visual place recognition (VPR) test sets in the layout of the MegaLoc authors' evaluation code
// (gmberton/VPR-methods-evaluation, `test_dataset.py`) and of their dataset downloader
// (gmberton/VPR-datasets-downloader), used for Table 1 of the MegaLoc paper (arXiv 2502.17237):
//
//   <root>/database/**/@<utm_east>@<utm_north>@<anything>@.jpg     database images (any depth)
//   <root>/queries/**/@<utm_east>@<utm_north>@<anything>@.jpg      query images
//   <root>/database_images_paths.txt   optional: one path per line, relative to <root>/database,
//   <root>/queries_images_paths.txt    used instead of listing the folder (faster on huge sets)
//
// The first two '@'-separated fields of the file name are the UTM easting and northing in metres.
// Listing (without a paths file) = the reference's `sorted(glob("<folder>/**/*", recursive=True))`
// restricted to files whose extension, lower-cased, is .jpg, .jpeg or .png: sorted by bytes, hidden
// files and folders (names starting with '.') skipped as glob skips them, symbolic links followed.
// Torch-free.

#include <string>
#include <vector>

namespace megaloc {

// One image of a VPR test set.
struct VprImage {
  // Path relative to the dataset root with '/' separators, e.g. "database/sub/@5.0@7.5@x@.jpg"
  // (also the name of its descriptor in an hloc-layout cache).
  std::string name;
  // Full path on disk (JoinPaths(root, name)).
  std::string path;
  // UTM coordinates in metres, from the name.
  double easting = 0.0;
  double northing = 0.0;
};

struct VprDataset {
  std::string root;
  std::vector<VprImage> database;
  std::vector<VprImage> queries;
};

// Parses the UTM easting and northing of an image name "...@<east>@<north>@...". The fields are
// taken from the file name (the part after the last '/'), so a '@' in a folder name does not
// matter (the reference splits the whole path). Each field must be a finite decimal number
// (surrounding blanks and a leading '+' allowed, as Python's float() does; no "nan"/"inf").
// Throws FormatError naming `path_for_errors` (or `name` if empty) and the reason.
void ParseUtmFromName(const std::string& name,
                      double* easting,
                      double* northing,
                      const std::string& path_for_errors = "");

// The image names of one folder of a VPR test set, relative to `folder` (see the header comment):
// the lines of `folder` + "_images_paths.txt" if that file exists (blank lines and '#' comments
// skipped; every listed image must exist), else the recursive listing. Throws IoError naming the
// folder (missing, unreadable, no images) or the list file and line (missing image), FormatError
// for an invalid name in a list.
std::vector<std::string> ListVprImages(const std::string& folder);

// Loads <root>/database and <root>/queries with their UTM coordinates. Throws IoError (missing or
// empty folder, missing listed image) and FormatError (a name without two numeric '@' fields),
// each naming the file or folder.
VprDataset LoadVprDataset(const std::string& root);

}  // namespace megaloc
