#include "megaloc/retrieval/pairs_io.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <set>
#include <sstream>
#include <utility>

#include "megaloc/retrieval/pair_graph.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/string_utils.h"

namespace megaloc {
namespace {

std::pair<std::string, std::string> UnorderedKey(const ImagePair& p) {
  return p.name1 < p.name2 ? std::make_pair(p.name1, p.name2) : std::make_pair(p.name2, p.name1);
}

void CheckPairNames(const ImagePair& pair) {
  CheckPairName(pair.name1);
  CheckPairName(pair.name2);
}

// Splits a trimmed line into whitespace-separated tokens.
std::vector<std::string> Tokens(const std::string& line) { return SplitWhitespace(line); }

template <typename LineFn>
void ForEachContentLine(const std::string& text, const std::string& path, LineFn fn) {
  size_t start = 0;
  int line_number = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    ++line_number;
    const std::string line = Trim(text.substr(start, end - start));
    if (!line.empty() && line[0] != '#') fn(line, line_number);
    if (end == text.size()) break;
    start = end + 1;
  }
}

}  // namespace

void CheckPairName(const std::string& name, const std::string& context) {
  const std::string where = context.empty() ? "" : " (" + context + ")";
  if (name.empty()) {
    MEGALOC_THROW(InvalidArgument, "Empty image name in a pair list" << where);
  }
  if (HasWhitespace(name)) {
    MEGALOC_THROW(InvalidArgument, "Image name '" << name << "'" << where
                                                  << " contains whitespace, which pair lists cannot "
                                                     "represent (hloc and COLMAP split lines on spaces)");
  }
}

std::vector<ImagePair> UniquePairs(const std::vector<ImagePair>& pairs) {
  std::set<std::pair<std::string, std::string>> seen;
  std::vector<ImagePair> out;
  out.reserve(pairs.size());
  for (const ImagePair& p : pairs) {
    if (p.name1 == p.name2) continue;
    if (seen.insert(UnorderedKey(p)).second) out.push_back(p);
  }
  return out;
}

std::vector<ImagePair> MergePairs(const std::vector<std::vector<ImagePair>>& lists) {
  std::vector<ImagePair> all;
  for (const auto& list : lists) all.insert(all.end(), list.begin(), list.end());
  return UniquePairs(all);
}

std::vector<ImagePair> SequentialPairs(std::vector<std::string> names, int num_neighbors) {
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  if (num_neighbors <= 0) return {};
  SequenceOptions options;
  options.overlap = num_neighbors;
  options.pattern = "^";  // every name matches with the same (empty) text: one sequence
  return SequentialPairs(names, options);
}

std::string FormatPairs(const std::vector<ImagePair>& pairs) {
  std::string out;
  for (const ImagePair& p : pairs) {
    CheckPairNames(p);
    out += p.name1;
    out += ' ';
    out += p.name2;
    out += '\n';
  }
  return out;
}

void WritePairs(const std::string& path, const std::vector<ImagePair>& pairs) {
  const std::string text = FormatPairs(pairs);
  const size_t slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) CreateDirectories(path.substr(0, slash));
  WriteFileAtomically(path, text);
}

void WriteScoredPairs(const std::string& path, const std::vector<ScoredImagePair>& pairs) {
  std::string text;
  for (const ScoredImagePair& p : pairs) {
    CheckPairNames(p.pair);
    text += p.pair.name1;
    text += ' ';
    text += p.pair.name2;
    text += '\n';
  }
  const size_t slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) CreateDirectories(path.substr(0, slash));
  WriteFileAtomically(path, text);
}

void WritePairScores(const std::string& path, const std::vector<ScoredImagePair>& pairs) {
  std::string out;
  char buffer[64];
  for (const ScoredImagePair& p : pairs) {
    CheckPairNames(p.pair);
    std::snprintf(buffer, sizeof(buffer), "%.9g", static_cast<double>(p.score));
    out += p.pair.name1;
    out += ' ';
    out += p.pair.name2;
    out += ' ';
    out += buffer;
    out += '\n';
  }
  const size_t slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) CreateDirectories(path.substr(0, slash));
  WriteFileAtomically(path, out);
}

std::vector<ImagePair> ParsePairs(const std::string& text, const std::string& path) {
  std::vector<ImagePair> pairs;
  ForEachContentLine(text, path, [&](const std::string& line, int line_number) {
    const std::vector<std::string> tokens = Tokens(line);
    if (tokens.size() != 2) {
      MEGALOC_THROW(FormatError, path << ":" << line_number << ": expected 2 image names separated "
                                      << "by a space, got " << tokens.size() << " field"
                                      << (tokens.size() == 1 ? "" : "s") << ": '" << line << "'");
    }
    pairs.push_back({tokens[0], tokens[1]});
  });
  return pairs;
}

std::vector<ImagePair> ReadPairs(const std::string& path) {
  if (!FileExists(path)) MEGALOC_THROW(IoError, path << ": pairs file does not exist");
  return ParsePairs(ReadFileToString(path), path);
}

std::vector<ScoredImagePair> ReadPairScores(const std::string& path) {
  if (!FileExists(path)) MEGALOC_THROW(IoError, path << ": pair score file does not exist");
  const std::string text = ReadFileToString(path);
  std::vector<ScoredImagePair> pairs;
  ForEachContentLine(text, path, [&](const std::string& line, int line_number) {
    const std::vector<std::string> tokens = Tokens(line);
    if (tokens.size() != 3) {
      MEGALOC_THROW(FormatError, path << ":" << line_number
                                      << ": expected '<name1> <name2> <score>', got " << tokens.size()
                                      << " fields: '" << line << "'");
    }
    char* end = nullptr;
    errno = 0;
    const float score = std::strtof(tokens[2].c_str(), &end);
    if (end == tokens[2].c_str() || *end != '\0' || errno == ERANGE) {
      MEGALOC_THROW(FormatError, path << ":" << line_number << ": invalid score '" << tokens[2] << "'");
    }
    pairs.push_back({{tokens[0], tokens[1]}, score});
  });
  return pairs;
}

}  // namespace megaloc
