#pragma once

#include <string>

namespace megaloc {

bool FileExists(const std::string& path);
bool DirectoryExists(const std::string& path);
// Creates the directory and its parents; no error if it exists.
void CreateDirectories(const std::string& path);
// Whole file as bytes; throws IoError naming the file.
std::string ReadFileToString(const std::string& path);
// Writes to path.tmp, flushes and renames over path, so readers never see a partial file.
void WriteFileAtomically(const std::string& path, const std::string& content);
// Joins with a single '/'.
std::string JoinPaths(const std::string& a, const std::string& b);
// A fresh directory under the system temp dir (for tests and scratch work).
std::string CreateTempDirectory(const std::string& prefix = "megaloc");

}  // namespace megaloc
