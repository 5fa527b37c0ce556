#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace megaloc {

bool FileExists(const std::string& path);
bool DirectoryExists(const std::string& path);
// True if `path` is a symbolic link whose target (followed to the end of the chain) does not exist
// (or the chain loops); `target`, if given, receives the link's own target text (readlink).
bool IsDanglingSymlink(const std::string& path, std::string* target = nullptr);
// Creates the directory and its parents; no error if it exists.
void CreateDirectories(const std::string& path);
// Whole file as bytes; throws IoError naming the file.
std::string ReadFileToString(const std::string& path);
// Writes to <target>.tmp, syncs it and renames it over <target>, so readers never see a partial
// file; <target> is CheckOutputFile(path) (a symbolic link is written through). Throws IoError
// naming the file and the system's reason (e.g. "No space left on device"); the .tmp is removed.
void WriteFileAtomically(const std::string& path, const std::string& content);
// Same, for content produced piecewise (large files: checkpoints). `produce` is called once with a
// sink that appends bytes to the temporary file; the sink returns false once a write has failed
// (later calls do nothing), and this function then throws IoError with the system's reason and
// removes the .tmp. If `produce` throws, the .tmp is removed and the exception passes through.
using ByteSink = std::function<bool(const void* data, size_t size)>;
void WriteFileAtomically(const std::string& path, const std::function<void(const ByteSink& sink)>& produce);

// ---- outputs ------------------------------------------------------------------------------------
// One policy for every file megaloc writes (all commands; docs/formats.md "Output files"):
//  * an existing output must be a regular file: a directory, a device (e.g. /dev/null), a FIFO or a
//    socket is refused with IoError (outputs are replaced atomically, which would turn a device
//    into a plain file, or would not reach a pipe reader);
//  * a symbolic link is followed: the file it points to is replaced and the link stays (a dangling
//    link creates its target); a link to a non-regular file is refused like the file itself;
//  * an output that is the same file as one of `inputs` (same device and inode: also through hard
//    or symbolic links) is refused with InvalidArgument, before anything is written.
// Empty entries of `inputs` are ignored. Returns the path to write: `path`, or the file a symbolic
// link points to.
std::string CheckOutputFile(const std::string& path, const std::vector<std::string>& inputs = {});
// CheckOutputFile for each non-empty output of one command; also refuses two outputs that are the
// same file (InvalidArgument).
void CheckOutputFiles(const std::vector<std::string>& outputs, const std::vector<std::string>& inputs);
// Joins with a single '/'.
std::string JoinPaths(const std::string& a, const std::string& b);
// A fresh directory under the system temp dir (for tests and scratch work).
std::string CreateTempDirectory(const std::string& prefix = "megaloc");

}  // namespace megaloc
