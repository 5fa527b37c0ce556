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
// Checked before anything is written (every image of every file, not a sample):
//  * the same name in two files with a different descriptor or image size -> FormatError naming
//    the image and both files (identical duplicates are fine);
//  * different provenance attributes (preprocessing, weights sha256, dtype, descriptor dim; the
//    tool version is ignored) -> FormatError naming both files; a descriptor dimension that differs
//    from the first image's -> FormatError naming both images and files; an unreadable image_size;
//  * an output that is not a regular file, or the same file as an input (CheckOutputFile) ->
//    IoError / InvalidArgument.
// The merged file is written as `<output>.merging` (a copy of the existing output plus the new
// images) and renamed over the output only when complete: a merge that fails at any point (a NaN or
// infinite descriptor, a full disk: IoError naming the reason) leaves the output as it was, or
// absent, and removes the temporary file. The existing output is locked for the whole merge.
// The output gets the common provenance attributes if every non-empty file has them, else none.
MergeStats MergeDescriptorFiles(const std::vector<std::string>& input_paths,
                                const std::string& output_path);

}  // namespace megaloc
