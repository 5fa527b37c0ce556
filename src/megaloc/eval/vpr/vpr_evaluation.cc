#include "megaloc/eval/vpr/vpr_evaluation.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <system_error>
#include <unordered_set>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "megaloc/io/descriptor_store.h"
#include "megaloc/retrieval/pairs_from_retrieval.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/sha256.h"
#include "megaloc/util/timer.h"

namespace megaloc {
namespace {

void Message(const VprEvalOptions& options, const std::string& text) {
  if (options.message_callback) options.message_callback(text);
}

// The settings a cache records (ExtractionAttributes) against this run's; the tool version and the
// model name never block reuse, a missing attribute (a foreign file) is not checked.
void CheckCacheSettings(const std::string& path,
                        const std::map<std::string, std::string>& stored,
                        const std::vector<std::pair<std::string, std::string>>& current) {
  for (const auto& [key, value] : current) {
    if (key == kAttrToolVersion || key == kAttrModel || key == kAttrDtype || value.empty()) continue;
    const auto it = stored.find(key);
    if (it == stored.end() || it->second == value) continue;
    MEGALOC_THROW(FormatError, path << ": the cached descriptors were computed with " << key << "="
                                    << it->second << ", this run uses " << key << "=" << value
                                    << "; use another --descriptors file (or the same settings)");
  }
}

struct TempDirRemover {
  std::string dir;
  ~TempDirRemover() {
    std::error_code ignored;
    if (!dir.empty()) std::filesystem::remove_all(dir, ignored);
  }
};

}  // namespace

PreprocessingOptions VprDefaultPreprocessing() {
  PreprocessingOptions options;
  options.mode = ResizeMode::kNative;
  return options;
}

bool VprEvalOptions::Check() const {
  CHECK_OPTION(!dataset_path.empty());
  CHECK_OPTION(preprocessing.Check());
  CHECK_OPTION(recall.Check());
  CHECK_OPTION_GE(batch_size, 1);
  CHECK_OPTION_GE(num_workers, 1);
  CHECK_OPTION_GE(commit_interval_seconds, 0.0);
  return true;
}

VprEvalReport RunVprEvaluation(const VprEvalOptions& options) {
  Timer total_timer;
  if (!options.Check()) MEGALOC_THROW(InvalidArgument, "invalid vpr_eval options (see the log above)");
  if (!DirectoryExists(options.dataset_path)) {
    MEGALOC_THROW(IoError, options.dataset_path << ": dataset folder does not exist or is not a directory");
  }
  const VprDataset dataset = LoadVprDataset(options.dataset_path);
  VprEvalReport report;
  report.dataset_path = options.dataset_path;
  report.preprocessing = options.preprocessing.ToString();
  report.descriptors_path = options.descriptors_path;
  report.positive_dist_threshold = options.recall.positive_dist_threshold;
  Message(options, "dataset " + options.dataset_path + ": " + std::to_string(dataset.database.size()) +
                       " database images, " + std::to_string(dataset.queries.size()) + " queries");

  std::string cache_path = options.descriptors_path;
  TempDirRemover remover;
  if (cache_path.empty()) {
    remover.dir = CreateTempDirectory("megaloc_vpr_eval");
    cache_path = JoinPaths(remover.dir, "descriptors.h5");
  }

  std::vector<std::string> db_names, query_names;
  for (const VprImage& image : dataset.database) db_names.push_back(image.name);
  for (const VprImage& image : dataset.queries) query_names.push_back(image.name);

  // What the cache already holds, and with which settings.
  std::unordered_set<std::string> cached;
  std::map<std::string, std::string> stored_attributes;
  if (FileExists(cache_path)) {
    const std::unique_ptr<DescriptorFile> file =
        DescriptorFile::Open(cache_path, DescriptorFile::Mode::kRead);
    for (std::string& name : file->ListDescriptorNames()) cached.insert(std::move(name));
    stored_attributes = file->Attributes();
  }
  std::vector<std::string> missing;
  for (const auto* names : {&db_names, &query_names}) {
    for (const std::string& name : *names) {
      if (cached.count(name) == 0) missing.push_back(name);
    }
  }
  const size_t num_images = db_names.size() + query_names.size();
  report.num_cached = static_cast<int64_t>(num_images - missing.size());

  ExtractionOptions extraction;
  extraction.image_path = options.dataset_path;
  extraction.output_path = cache_path;
  extraction.image_names = missing;
  extraction.model = options.model;
  extraction.model.weights_path = options.weights_path;
  extraction.preprocessing = options.preprocessing;
  // float32 like the reference's descriptors, unless the cache records another dtype.
  extraction.dtype = DescriptorDtype::kFloat32;
  if (stored_attributes.count(kAttrDtype)) {
    extraction.dtype = ParseDescriptorDtype(stored_attributes.at(kAttrDtype));
  }
  extraction.batch_size = options.batch_size;
  extraction.num_workers = options.num_workers;
  extraction.commit_interval_seconds = options.commit_interval_seconds;
  extraction.progress_callback = options.progress_callback;
  extraction.failure_callback = options.failure_callback;

  std::string weights_sha256;
  if (!options.weights_path.empty() && stored_attributes.count(kAttrWeightsSha256)) {
    weights_sha256 = Sha256File(options.weights_path);
  }
  CheckCacheSettings(cache_path, stored_attributes,
                     ExtractionAttributes(extraction, 0, weights_sha256));

  Timer extraction_timer;
  if (!missing.empty()) {
    if (options.weights_path.empty()) {
      MEGALOC_THROW(InvalidArgument,
                    missing.size() << " of the " << num_images << " descriptors (e.g. '"
                                   << missing.front() << "') are not in "
                                   << (options.descriptors_path.empty() ? std::string("the cache")
                                                                        : cache_path)
                                   << "; pass --weights_path to compute them");
    }
    Message(options, "extracting " + std::to_string(missing.size()) + " descriptors (" +
                         report.preprocessing + "), " + std::to_string(report.num_cached) +
                         " already cached");
    const ExtractionStats stats = RunExtraction(extraction);
    report.num_extracted = static_cast<int64_t>(stats.num_extracted);
    if (stats.num_failed > 0) {
      MEGALOC_THROW(ImageError, stats.failures.front().reason
                                    << " (" << stats.num_failed << " of " << missing.size()
                                    << " images failed"
                                    << (options.descriptors_path.empty()
                                            ? std::string(")")
                                            : "; the others are stored in " + cache_path + ")"));
    }
  } else {
    Message(options, "all " + std::to_string(num_images) + " descriptors are cached in " + cache_path);
  }
  report.extraction_seconds = extraction_timer.ElapsedSeconds();

  // Search + recall on the cached descriptors: queries in memory, the database streamed.
  Timer search_timer;
  const std::unique_ptr<DescriptorFile> file =
      DescriptorFile::Open(cache_path, DescriptorFile::Mode::kRead);
  DescriptorBlock query_block;
  file->ReadBlock(query_names, 0, query_names.size(), &query_block);
  const HdfDescriptorSource database(std::vector<const DescriptorFile*>{file.get()}, db_names,
                                     std::vector<int>(db_names.size(), 0));
  if (database.Dim() != query_block.cols()) {
    MEGALOC_THROW(FormatError, cache_path << ": descriptor dimensions differ: '" << query_names.front()
                                          << "' has " << query_block.cols() << ", '"
                                          << db_names.front() << "' has " << database.Dim());
  }
  report.descriptor_dim = database.Dim();
  const MatrixDescriptorSource queries(query_block);
  const size_t depth = std::min(db_names.size(), static_cast<size_t>(options.recall.recall_values.back()));
  Message(options, "searching the first " + std::to_string(depth) + " of " +
                       std::to_string(db_names.size()) + " database images for " +
                       std::to_string(query_names.size()) + " queries");
  report.recall = EvaluateVprRecall(database, queries, dataset, options.recall);
  report.search_seconds = search_timer.ElapsedSeconds();
  report.total_seconds = total_timer.ElapsedSeconds();
  return report;
}

std::string VprEvalReportToJson(const VprEvalReport& report) {
  nlohmann::ordered_json recall = nlohmann::ordered_json::object();
  for (size_t i = 0; i < report.recall.recalls.size(); ++i) {
    recall[std::to_string(report.recall.recall_values[i])] = report.recall.recalls[i];
  }
  nlohmann::ordered_json json;
  json["recall"] = recall;
  json["num_queries"] = report.recall.num_queries;
  json["num_database"] = report.recall.num_database;
  json["queries_without_positives"] = report.recall.queries_without_positives;
  json["positive_dist_threshold"] = report.positive_dist_threshold;
  json["preprocessing"] = report.preprocessing;
  json["dataset_path"] = report.dataset_path;
  json["descriptor_dim"] = report.descriptor_dim;
  json["num_extracted"] = report.num_extracted;
  json["num_cached"] = report.num_cached;
  return json.dump(1) + "\n";
}

}  // namespace megaloc
