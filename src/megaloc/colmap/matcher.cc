#include "megaloc/colmap/matcher.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include "megaloc/io/descriptor_store.h"
#include "megaloc/io/image_list.h"
#include "megaloc/retrieval/pairs_from_retrieval.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/sha256.h"
#include "megaloc/util/string_utils.h"
#include "megaloc/util/timer.h"
#include "megaloc/colmap/database.h"
#include "megaloc/colmap/executable.h"
#include "megaloc/colmap/model.h"

namespace megaloc {
namespace {

std::string StripExtension(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  const size_t dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash) || dot == slash + 1) return path;
  return path.substr(0, dot);
}

std::string ListSome(const std::vector<std::string>& names, size_t max_names = 10) {
  std::ostringstream out;
  for (size_t i = 0; i < names.size() && i < max_names; ++i) out << (i > 0 ? ", " : "") << names[i];
  if (names.size() > max_names) out << ", ... (" << names.size() - max_names << " more)";
  return out.str();
}

int64_t CountOccurrences(const std::string& path, const std::string& needle) {
  std::ifstream in(path);
  std::string line;
  int64_t count = 0;
  while (std::getline(in, line)) {
    if (line.find(needle) != std::string::npos) ++count;
  }
  return count;
}

// With everything cached, the extraction library (which checks a cache against the model and
// preprocessing before appending) is not called: check the provenance attributes here, so that
// descriptors of another model or preprocessing are never matched silently.
void CheckCacheProvenance(const ColmapMatcherOptions& options, const std::string& path) {
  const auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kRead);
  std::vector<std::pair<std::string, std::string>> expected = {
      {kAttrPreprocessing, options.preprocessing.ToString()}};
  if (file->HasAttribute(kAttrWeightsSha256) && !options.model.weights_path.empty()) {
    expected.emplace_back(kAttrWeightsSha256, Sha256File(options.model.weights_path));
  }
  CheckProvenance(*file, expected, "cannot use the cached descriptors",
                  "Use another --descriptors file, or the weights and resize options it was made with.");
}

}  // namespace

bool ColmapMatcherOptions::Check() const {
  CHECK_OPTION(!database_path.empty());
  CHECK_OPTION(!image_path.empty());
  CHECK_OPTION_GE(num_matched, 1);
  CHECK_OPTION_GE(sequential_overlap, 0);
  CHECK_OPTION_GE(loop_closure, 0);
  CHECK_OPTION_GE(spatial_k, 0);
  CHECK_OPTION(expansion.Check());
  CHECK_OPTION_GE(batch_size, 1);
  CHECK_OPTION_GE(num_workers, 1);
  CHECK_OPTION(!colmap_path.empty());
  CHECK_OPTION(use_gpu == -1 || use_gpu == 0 || use_gpu == 1);
  CHECK_OPTION(num_threads == -1 || num_threads >= 1);
  CHECK_OPTION_GT(retrieval_memory_limit, 0);
  CHECK_OPTION(preprocessing.Check());
  CHECK_OPTION(mapper == "none" || mapper == "incremental" || mapper == "global");
  CHECK_OPTION(mapper == "none" || !output_path.empty());
  CHECK_OPTION(mapper == "none" || !dry_run);
  return true;
}

std::vector<std::string> MapperCommand(const ColmapMatcherOptions& options, const ColmapVersion& version) {
  std::vector<std::string> argv;
  if (options.mapper == "incremental") {
    argv = {options.colmap_path, "mapper"};
  } else if (options.mapper == "global") {
    if (!options.glomap_path.empty()) {
      argv = {options.glomap_path, "mapper"};
    } else if (version.AtLeast(4, 0)) {
      argv = {options.colmap_path, "global_mapper"};
    } else {
      MEGALOC_THROW(InvalidArgument, "--mapper global runs `colmap global_mapper`, which needs COLMAP >= 4.0 ("
                                         << options.colmap_path << " is " << version.ToString()
                                         << "); give a standalone GLOMAP binary with --glomap, or use "
                                            "--mapper incremental");
    }
  } else {
    MEGALOC_THROW(InvalidArgument, "unknown mapper '" << options.mapper << "' (none, incremental or global)");
  }
  argv.insert(argv.end(), {"--database_path", options.database_path, "--image_path", options.image_path,
                           "--output_path", options.output_path});
  if (options.num_threads > 0) {
    if (options.mapper == "incremental") {
      argv.insert(argv.end(), {"--Mapper.num_threads", std::to_string(options.num_threads)});
    } else if (options.glomap_path.empty()) {
      argv.insert(argv.end(), {"--GlobalMapper.num_threads", std::to_string(options.num_threads)});
    }
  }
  return argv;
}

std::vector<int64_t> RegisteredImagesPerModel(const std::string& output_path) {
  std::vector<int64_t> counts;
  for (int index = 0;; ++index) {
    const std::string images_bin = JoinPaths(JoinPaths(output_path, std::to_string(index)), "images.bin");
    if (!FileExists(images_bin)) break;
    const uint64_t n = ReadColmapNumImagesBinary(images_bin);
    counts.push_back(static_cast<int64_t>(n));
  }
  return counts;
}

std::string DefaultDescriptorsPath(const std::string& database_path) {
  return StripExtension(database_path) + ".megaloc.h5";
}

std::string DefaultPairsPath(const std::string& database_path) {
  return StripExtension(database_path) + ".megaloc_pairs.txt";
}

std::vector<ImagePair> ColmapRetrievalPairs(const std::vector<std::string>& names,
                                            const std::string& descriptors_path,
                                            const ColmapMatcherOptions& options,
                                            ColmapMatcherStats* stats) {
  PairGraphOptions graph;
  graph.search.num_neighbors = options.num_matched;
  graph.search.min_score = options.min_score;
  graph.search.num_threads = options.num_threads;
  graph.search.memory_limit = options.retrieval_memory_limit;
  graph.sequence.overlap = options.sequential_overlap;
  graph.sequence.pattern = options.sequence_pattern;
  graph.sequence.loop_closure = options.loop_closure;
  graph.max_distance = options.max_distance;
  graph.spatial_k = options.spatial_k;
  graph.expansion = options.expansion;
  graph.connect = options.connect;
  graph.cover_bridges = options.cover_bridges;
  PositionPriors priors;
  const bool use_priors = options.max_distance >= 0.0 || options.spatial_k > 0;
  if (use_priors) priors = ReadColmapPositionPriors(options.database_path);
  const auto file = DescriptorFile::Open(descriptors_path, DescriptorFile::Mode::kRead);
  HdfDescriptorSource source({file.get()}, names, std::vector<int>(names.size(), 0));
  const PairGraphResult result = BuildPairGraph(names, source, use_priors ? &priors : nullptr, graph);
  std::vector<ImagePair> all;
  all.reserve(result.pairs.size());
  for (const ScoredImagePair& pair : result.pairs) all.push_back(pair.pair);
  std::vector<ImagePair> merged = UniquePairs(all);
  if (stats != nullptr) {
    stats->descriptor_dim = names.empty() ? 0 : source.Dim();
    stats->num_retrieval_pairs = result.num_retrieval;
    SequenceOptions sequence = graph.sequence;
    stats->num_sequential_pairs = static_cast<int64_t>(SequentialPairs(names, sequence).size());
    stats->num_spatial_pairs = result.num_spatial;
    stats->num_connect_pairs = result.num_connect;
    stats->num_bridge_pairs = result.num_bridge;
    stats->num_with_prior = result.num_with_prior;
    stats->graph_before_connect = result.before_connect;
    stats->graph = result.after;
    stats->num_pairs = static_cast<int64_t>(merged.size());
  }
  return merged;
}

std::vector<std::string> MatchesImporterCommand(const ColmapMatcherOptions& options, const std::string& pairs_path,
                                                bool use_gpu, bool feature_matching_prefix) {
  const std::string prefix = feature_matching_prefix ? "--FeatureMatching." : "--SiftMatching.";
  std::vector<std::string> argv = {options.colmap_path,
                                   "matches_importer",
                                   "--database_path",
                                   options.database_path,
                                   "--match_list_path",
                                   pairs_path,
                                   "--match_type",
                                   "pairs",
                                   prefix + "use_gpu",
                                   use_gpu ? "1" : "0",
                                   prefix + "num_threads",
                                   std::to_string(options.num_threads)};
  argv.insert(argv.end(), options.colmap_extra_args.begin(), options.colmap_extra_args.end());
  return argv;
}

// Defined in colmap_extraction.cc: the MegaLoc extraction library as a ColmapDescriptorExtractor.
int64_t ExtractColmapDescriptors(const ColmapMatcherOptions& options, const std::vector<std::string>& names,
                                 const std::string& descriptors_path);

ColmapMatcherStats MatchColmapDatabase(const ColmapMatcherOptions& options, const ColmapDescriptorExtractor& extractor) {
  MEGALOC_CHECK_MSG(options.Check(), "invalid colmap_matcher options");
  Timer total_timer;
  ColmapMatcherStats stats;
  // A mapper that cannot run is reported before any work.
  if (options.mapper != "none") {
    if (options.mapper == "global" && options.glomap_path.empty()) {
      MapperCommand(options, DetectColmapVersion(options.colmap_path));  // throws on COLMAP < 4.0
    }
    if (!RegisteredImagesPerModel(options.output_path).empty() ||
        FileExists(JoinPaths(JoinPaths(options.output_path, "0"), "cameras.bin"))) {
      MEGALOC_THROW(InvalidArgument, options.output_path
                                         << ": already holds a model (0/); the mapper would overwrite it. "
                                            "Give an empty or new --output_path.");
    }
  }
  stats.descriptors_path =
      options.descriptors_path.empty() ? DefaultDescriptorsPath(options.database_path) : options.descriptors_path;
  stats.pairs_path = options.pairs_path.empty() ? DefaultPairsPath(options.database_path) : options.pairs_path;

  // 1. Database images.
  std::vector<std::string> names;
  {
    const auto database = ColmapDatabase::Open(options.database_path);
    stats.schema = database->Schema().Description();
    for (const ColmapDatabaseImage& image : database->ReadImages()) names.push_back(image.name);
    stats.matches_before = database->NumRows("matches");
    stats.two_view_geometries_before = database->NumRows("two_view_geometries");
  }
  stats.num_database_images = static_cast<int64_t>(names.size());
  if (names.empty()) {
    MEGALOC_THROW(InvalidArgument, options.database_path
                                       << ": the database has no images (run `colmap feature_extractor` first)");
  }
  std::vector<std::string> bad_names;
  for (const std::string& name : names) {
    if (name.empty() || HasWhitespace(name)) bad_names.push_back("'" + name + "'");
  }
  if (!bad_names.empty()) {
    MEGALOC_THROW(InvalidArgument, options.database_path
                                       << ": image names with whitespace cannot be written to a COLMAP/hloc pair "
                                          "list (matches_importer splits on spaces): "
                                       << ListSome(bad_names));
  }

  // 2. Names against the image directory.
  if (!DirectoryExists(options.image_path)) {
    MEGALOC_THROW(IoError, options.image_path << ": image directory not found (--image_path)");
  }
  const std::vector<std::string> on_disk = ListImages(options.image_path);
  stats.num_images_on_disk = static_cast<int64_t>(on_disk.size());
  const std::set<std::string> name_set(names.begin(), names.end());
  for (const std::string& file : on_disk) {
    if (name_set.count(file) == 0) stats.not_in_database.push_back(file);
  }
  std::vector<bool> exists(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    exists[i] = FileExists(JoinPaths(options.image_path, names[i]));
    if (!exists[i]) stats.missing_on_disk.push_back(names[i]);
  }

  // 3. Descriptor cache: extract only what is missing.
  std::vector<bool> cached(names.size(), false);
  if (FileExists(stats.descriptors_path)) {
    const auto file = DescriptorFile::Open(stats.descriptors_path, DescriptorFile::Mode::kRead);
    for (size_t i = 0; i < names.size(); ++i) cached[i] = file->Has(names[i]);
  }
  std::vector<std::string> to_extract;
  for (size_t i = 0; i < names.size(); ++i) {
    if (cached[i]) {
      ++stats.num_cached;
    } else if (exists[i]) {
      to_extract.push_back(names[i]);
    } else {
      stats.skipped_images.push_back(names[i]);
    }
  }
  if (!stats.skipped_images.empty() && !options.skip_missing_images) {
    MEGALOC_THROW(InvalidArgument,
                  stats.skipped_images.size()
                      << " database image(s) are neither under --image_path " << options.image_path
                      << " nor in the descriptor cache " << stats.descriptors_path << ": "
                      << ListSome(stats.skipped_images)
                      << ". Check --image_path (names in the database are relative to the directory given to "
                         "`colmap feature_extractor`), or pass --skip_missing_images 1 to match the others.");
  }
  if (!to_extract.empty()) {
    if (options.model.weights_path.empty()) {
      MEGALOC_THROW(InvalidArgument, to_extract.size()
                                         << " image(s) have no descriptor in " << stats.descriptors_path
                                         << " (e.g. " << to_extract.front()
                                         << "): pass --weights_path to extract them");
    }
    const size_t slash = stats.descriptors_path.find_last_of('/');
    if (slash != std::string::npos && slash > 0) CreateDirectories(stats.descriptors_path.substr(0, slash));
    Timer extraction_timer;
    stats.num_extracted = extractor ? extractor(options, to_extract, stats.descriptors_path)
                                    : ExtractColmapDescriptors(options, to_extract, stats.descriptors_path);
    stats.extraction_seconds = extraction_timer.ElapsedSeconds();
  }

  if (to_extract.empty() && !options.model.weights_path.empty() && FileExists(stats.descriptors_path)) {
    CheckCacheProvenance(options, stats.descriptors_path);
  }

  // 4. Retrieval + sequential pairs over every image that has a descriptor now.
  Timer retrieval_timer;
  std::vector<std::string> usable;
  {
    const std::set<std::string> skipped(stats.skipped_images.begin(), stats.skipped_images.end());
    const auto file = DescriptorFile::Open(stats.descriptors_path, DescriptorFile::Mode::kRead);
    for (const std::string& name : names) {
      if (file->Has(name)) {
        usable.push_back(name);
      } else if (skipped.count(name) == 0) {
        if (!options.skip_missing_images) {
          MEGALOC_THROW(IoError, stats.descriptors_path << ": no descriptor for '" << name << "' after extraction");
        }
        stats.skipped_images.push_back(name);  // extraction failed for it (reported by the extractor)
      }
    }
  }
  stats.num_matched_images = static_cast<int64_t>(usable.size());
  if (usable.size() < 2) {
    MEGALOC_THROW(InvalidArgument, "only " << usable.size() << " image(s) with a descriptor: nothing to match");
  }
  const std::vector<ImagePair> pairs = ColmapRetrievalPairs(usable, stats.descriptors_path, options, &stats);
  WritePairs(stats.pairs_path, pairs);
  stats.retrieval_seconds = retrieval_timer.ElapsedSeconds();

  // 5. COLMAP matches and verifies the pairs (and writes the database).
  if (!options.dry_run) {
    Timer colmap_timer;
    const ColmapVersion version = DetectColmapVersion(options.colmap_path);
    stats.colmap_version = version.text;
    const bool use_gpu = options.use_gpu < 0 ? version.with_cuda : options.use_gpu == 1;
    stats.colmap_command =
        MatchesImporterCommand(options, stats.pairs_path, use_gpu, version.UsesFeatureMatchingPrefix());
    stats.log_path = options.log_path.empty() ? stats.pairs_path + ".matches_importer.log" : options.log_path;
    std::remove(stats.log_path.c_str());
    const ProcessResult result = RunProcess(stats.colmap_command, stats.log_path);
    stats.colmap_ran = true;
    stats.colmap_seconds = colmap_timer.ElapsedSeconds();
    stats.num_unknown_image_errors = CountOccurrences(stats.log_path, "does not exist");
    if (!result.Succeeded()) {
      MEGALOC_THROW(Error, "colmap matches_importer failed (" << result.Describe() << "); the pair list "
                                                              << stats.pairs_path << " is kept; log "
                                                              << stats.log_path << ", last lines:\n"
                                                              << TailOfFile(stats.log_path, 15));
    }
    const auto database = ColmapDatabase::Open(options.database_path);
    stats.matches_after = database->NumRows("matches");
    stats.two_view_geometries_after = database->NumRows("two_view_geometries");
    stats.verified_pairs_after = database->NumNonEmptyRows("two_view_geometries");

    // 6. Reconstruction from the verified pairs.
    if (options.mapper != "none") {
      Timer mapper_timer;
      stats.mapper_command = MapperCommand(options, version);
      CreateDirectories(options.output_path);
      stats.mapper_log_path = JoinPaths(options.output_path, options.mapper + "_mapper.log");
      std::remove(stats.mapper_log_path.c_str());
      const ProcessResult mapped = RunProcess(stats.mapper_command, stats.mapper_log_path);
      stats.mapper_ran = true;
      stats.mapper_seconds = mapper_timer.ElapsedSeconds();
      if (!mapped.Succeeded()) {
        MEGALOC_THROW(Error, stats.mapper_command[0] << " " << stats.mapper_command[1] << " failed ("
                                                     << mapped.Describe() << "); the matches are in the database; log "
                                                     << stats.mapper_log_path << ", last lines:\n"
                                                     << TailOfFile(stats.mapper_log_path, 15));
      }
      stats.registered_images_per_model = RegisteredImagesPerModel(options.output_path);
    }
  }
  stats.total_seconds = total_timer.ElapsedSeconds();
  return stats;
}

}  // namespace megaloc
