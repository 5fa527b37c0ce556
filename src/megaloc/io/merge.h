#pragma once

// Merging descriptor files (e.g. the outputs of `megaloc extract --shard K/N`).

#include <string>
#include <vector>

namespace megaloc {

struct MergeStats {
  size_t num_inputs = 0;
  size_t num_written = 0;               // images copied into the output
  size_t num_identical_duplicates = 0;  // same name, same descriptor and size in several files
  size_t num_already_in_output = 0;     // present (identical) in the output before the merge
};

// Copies every image of `input_paths` into `output_path` (created if missing; an existing output
// keeps its content and takes part in the checks like an input). Each descriptor keeps its dtype.
// Checked before anything is written, so a failed merge leaves the output untouched:
//  * the same name in two files with a different descriptor or image size -> FormatError naming
//    the image and both files (identical duplicates are fine);
//  * different provenance attributes (preprocessing, weights sha256, dtype, descriptor dim; the
//    tool version is ignored) or descriptor dimensions -> FormatError naming both files;
//  * an input equal to the output -> InvalidArgument.
// The output gets the common provenance attributes if every non-empty file has them, else none.
MergeStats MergeDescriptorFiles(const std::vector<std::string>& input_paths,
                                const std::string& output_path);

}  // namespace megaloc
