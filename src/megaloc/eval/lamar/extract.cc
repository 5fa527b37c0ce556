#include "megaloc/eval/lamar/extract.h"

#include <algorithm>
#include <memory>

#include "megaloc/extraction/extraction.h"
#include "megaloc/io/descriptor_store.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"

namespace megaloc {
namespace lamar {

bool LamarExtractOptions::Check() const {
  CHECK_OPTION(!capture_path.empty());
  CHECK_OPTION(!scene.empty());
  CHECK_OPTION(!sessions.empty());
  CHECK_OPTION(!outputs.empty());
  CHECK_OPTION_GE(batch_size, 1);
  CHECK_OPTION_GE(num_workers, 1);
  return method.Check();
}

std::vector<std::string> SessionImageNames(const Session& session, bool all_images) {
  std::vector<Key> keys;
  std::vector<std::string> names;
  const std::string queries_path = JoinPaths(session.path, "queries.txt");
  if (!all_images && FileExists(queries_path)) {
    const std::vector<Key> queries = ReadQueryList(queries_path);
    ListImagesForSession(session, &queries, &keys, &names);
  } else {
    ListImagesForSession(session, nullptr, &keys, &names);
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

std::vector<LamarSessionExtractStats> RunLamarExtraction(const LamarExtractOptions& options) {
  if (!options.Check()) {
    MEGALOC_THROW(InvalidArgument, "invalid lamar_eval extract options");
  }
  const std::string sessions_root =
      JoinPaths(JoinPaths(options.capture_path, options.scene), "sessions");
  const std::string scene_outputs = JoinPaths(options.outputs, options.scene);

  // Load every session first: a malformed session fails before any model work.
  std::vector<Session> sessions;
  for (const std::string& id : options.sessions) {
    sessions.push_back(LoadSession(JoinPaths(sessions_root, id)));
  }

  std::unique_ptr<MegaLocModel> model;
  std::vector<LamarSessionExtractStats> all_stats;
  for (const Session& session : sessions) {
    LamarSessionExtractStats stats;
    stats.session_id = session.id;
    const std::string dir = ExtractionDir(scene_outputs, session.id, options.method.name);
    CreateDirectories(dir);
    stats.features_path = JoinPaths(dir, "features.h5");
    const std::vector<std::string> names = SessionImageNames(session, options.all_images);
    stats.num_images = names.size();

    ExtractionOptions extraction;
    extraction.image_path = sessions_root;
    extraction.output_path = stats.features_path;
    extraction.image_names = names;
    extraction.model = options.model;
    extraction.preprocessing.mode = ResizeMode::kResizeMax;
    extraction.preprocessing.resize_max = options.method.resize_max;
    extraction.dtype = DescriptorDtype::kFloat16;
    extraction.batch_size = options.batch_size;
    extraction.num_workers = options.num_workers;
    extraction.overwrite = options.overwrite;

    // Load the model lazily, once, and only if some image is missing.
    bool needs_model = options.overwrite || !FileExists(stats.features_path);
    if (!needs_model) {
      auto file = DescriptorFile::Open(stats.features_path, DescriptorFile::Mode::kRead);
      for (const std::string& name : names) {
        if (!file->Has(name)) {
          needs_model = true;
          break;
        }
      }
    }
    ExtractionStats result;
    if (needs_model) {
      if (!model) {
        if (options.model.weights_path.empty()) {
          MEGALOC_THROW(InvalidArgument,
                        "no model weights: pass --weights_path FILE or set MEGALOC_WEIGHTS (the "
                        "official MegaLoc weights: "
                        "https://huggingface.co/gberton/MegaLoc/resolve/main/model.safetensors)");
        }
        model = std::make_unique<MegaLocModel>(options.model);
      }
      result = RunExtraction(extraction, model.get());
    } else {
      result.num_images = names.size();
      result.num_skipped_existing = names.size();
    }
    stats.num_extracted = result.num_extracted;
    stats.num_skipped_existing = result.num_skipped_existing;
    stats.num_failed = result.num_failed;
    for (const ImageFailure& failure : result.failures) stats.failures.push_back(failure.reason);
    if (stats.num_failed == 0) {
      // The method dict, json indent 4 (lamar.utils.misc.write_config), written last.
      WriteFileAtomically(JoinPaths(dir, "configuration.json"), options.method.ToJson().dump(4));
    }
    all_stats.push_back(std::move(stats));
  }
  return all_stats;
}

}  // namespace lamar
}  // namespace megaloc
