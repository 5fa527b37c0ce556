#pragma once

// Image pair lists in the format shared by hloc (pairs_from_retrieval / parse_retrieval) and COLMAP
// (`matches_importer --match_type pairs`, ImportedPairGenerator):
//
//   <name1> <name2>\n       one pair per line, exactly one ASCII space, '\n' after every line.
//
// * Names are image paths relative to the image root with '/' separators; names containing any
//   whitespace are rejected (hloc splits on any whitespace, COLMAP on single spaces), as are empty
//   names.
// * Only two columns are ever written: hloc's parse_retrieval does `q, r = line.split()` and fails
//   on a third column. Scores go to a separate file (WritePairScores: `<name1> <name2> <score>`).
// * The reader accepts what both consumers accept: lines are trimmed, empty lines and lines starting
//   with '#' are skipped, and the two names may be separated by any whitespace run (hloc-style).
//   Anything else (one name, three tokens) is an error naming file:line.

#include <cstdint>
#include <string>
#include <vector>

namespace megaloc {

struct ImagePair {
  std::string name1;  // hloc: the query
  std::string name2;  // hloc: the retrieved database image
  bool operator==(const ImagePair& other) const {
    return name1 == other.name1 && name2 == other.name2;
  }
};

// A pair with its retrieval score (for --scores_path).
struct ScoredImagePair {
  ImagePair pair;
  float score = 0.0f;
};

// Throws InvalidArgument if the name is empty or contains whitespace (message names the reason and
// `context`, e.g. the HDF5 file the name came from).
void CheckPairName(const std::string& name, const std::string& context = "");

// Keeps the first occurrence of every unordered pair {a, b} (first orientation kept, like COLMAP's
// importer) and drops self pairs (a == b). Order is otherwise preserved.
std::vector<ImagePair> UniquePairs(const std::vector<ImagePair>& pairs);

// Concatenates lists in order and keeps the first occurrence of every unordered pair (UniquePairs).
std::vector<ImagePair> MergePairs(const std::vector<std::vector<ImagePair>>& lists);

// Sequential neighbours for video captures: sorts `names` (byte order) and pairs each image with
// the next `num_neighbors` images in that order (i, i+1 .. i+num_neighbors). Each unordered pair
// occurs once, oriented (earlier, later). num_neighbors <= 0 gives no pairs. All names form ONE
// sequence; pair_graph.h SequentialPairs(names, SequenceOptions) splits them by folder or pattern.
std::vector<ImagePair> SequentialPairs(std::vector<std::string> names, int num_neighbors);

// Serialises pairs: "<name1> <name2>\n" per pair. Throws InvalidArgument on a bad name.
std::string FormatPairs(const std::vector<ImagePair>& pairs);

// Writes the pairs file atomically (temporary file + rename, parent directories created).
// Throws InvalidArgument on a bad name, IoError if the file cannot be written.
void WritePairs(const std::string& path, const std::vector<ImagePair>& pairs);

// The same for scored pairs (the scores are not written), without copying the names.
void WriteScoredPairs(const std::string& path, const std::vector<ScoredImagePair>& pairs);

// Writes "<name1> <name2> <score>\n" lines (score with 9 significant digits, round-trips float32).
void WritePairScores(const std::string& path, const std::vector<ScoredImagePair>& pairs);

// Parses pair-list text. `path` is only used in error messages ("path:line: reason").
// Throws FormatError on a malformed line.
std::vector<ImagePair> ParsePairs(const std::string& text, const std::string& path = "<string>");

// Reads a pairs file (ParsePairs). Throws IoError if it cannot be read, FormatError if malformed.
std::vector<ImagePair> ReadPairs(const std::string& path);

// Reads a score file written by WritePairScores. Throws IoError / FormatError as ReadPairs.
std::vector<ScoredImagePair> ReadPairScores(const std::string& path);

}  // namespace megaloc
