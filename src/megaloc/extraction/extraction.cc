#include "megaloc/extraction/extraction.h"

#include <algorithm>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "megaloc/io/image_list.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/sha256.h"
#include "megaloc/util/timer.h"

namespace megaloc {
namespace {

struct DecodedImage {
  bool ok = false;
  PreprocessedImage image;
  std::string error;
};

// Decodes and preprocesses images on worker threads, at most `window` images ahead of the
// consumer (bounded memory); the consumer takes them in order.
class DecodePool {
 public:
  DecodePool(const std::vector<std::string>& names, std::string root,
             PreprocessingOptions preprocessing, int num_workers, size_t window)
      : names_(names),
        root_(std::move(root)),
        preprocessing_(std::move(preprocessing)),
        window_(std::max<size_t>(window, 1)),
        results_(names.size()) {
    const int n = std::max(1, std::min<int>(num_workers, static_cast<int>(names.size())));
    for (int i = 0; i < n && !names.empty(); ++i) threads_.emplace_back([this] { Work(); });
  }

  ~DecodePool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    space_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

  std::unique_ptr<DecodedImage> Take(size_t index) {
    std::unique_lock<std::mutex> lock(mutex_);
    ready_.wait(lock, [&] { return results_[index] != nullptr; });
    std::unique_ptr<DecodedImage> out = std::move(results_[index]);
    consumed_ = index + 1;
    lock.unlock();
    space_.notify_all();
    return out;
  }

 private:
  void Work() {
    for (;;) {
      size_t index;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        space_.wait(lock, [&] {
          return stop_ || next_ >= names_.size() || next_ < consumed_ + window_;
        });
        if (stop_ || next_ >= names_.size()) return;
        index = next_++;
      }
      auto result = std::make_unique<DecodedImage>();
      const std::string& name = names_[index];
      const std::string problem = DescriptorFile::CheckName(name);
      if (!problem.empty()) {
        result->error = JoinPaths(root_, name) + ": " + problem;
      } else {
        try {
          result->image = LoadAndPreprocessImage(JoinPaths(root_, name), preprocessing_);
          result->ok = true;
        } catch (const Error& e) {
          result->error = e.what();
        } catch (const std::exception& e) {  // e.g. LibTorch out of memory: first line, no backtrace
          const std::string what = e.what();
          result->error = JoinPaths(root_, name) + ": " + what.substr(0, what.find('\n'));
        } catch (...) {
          result->error = JoinPaths(root_, name) + ": unknown error while decoding";
        }
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        results_[index] = std::move(result);
      }
      ready_.notify_all();
    }
  }

  const std::vector<std::string>& names_;
  const std::string root_;
  const PreprocessingOptions preprocessing_;
  const size_t window_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::condition_variable space_;
  std::vector<std::unique_ptr<DecodedImage>> results_;
  size_t next_ = 0;
  size_t consumed_ = 0;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

struct PendingImage {
  std::string name;
  std::unique_ptr<DecodedImage> decoded;
};

std::vector<std::string> SelectNames(const ExtractionOptions& options) {
  std::vector<std::string> names;
  if (!options.image_names.empty()) {
    std::unordered_set<std::string> seen;
    for (const std::string& name : options.image_names) {
      if (!seen.insert(name).second) continue;
      if (!FileExists(JoinPaths(options.image_path, name))) {
        if (IsDanglingSymlink(JoinPaths(options.image_path, name))) {
          MEGALOC_THROW(IoError, JoinPaths(options.image_path, name)
                                     << ": image is a dangling symbolic link (its target does not exist)");
        }
        MEGALOC_THROW(IoError, "image '" << name << "' does not exist under " << options.image_path);
      }
      names.push_back(name);
    }
  } else if (!options.image_list_path.empty()) {
    names = ReadImageList(options.image_list_path, options.image_path);
  } else {
    names = ListImages(options.image_path);
  }
  if (options.num_shards > 1) names = SelectShard(names, options.shard_index, options.num_shards);
  return names;
}

}  // namespace

bool ExtractionOptions::Check() const {
  CHECK_OPTION(!image_path.empty());
  CHECK_OPTION(!output_path.empty());
  CHECK_OPTION_GE(batch_size, 1);
  CHECK_OPTION_GE(num_workers, 1);
  CHECK_OPTION_GE(commit_interval_seconds, 0.0);
  CHECK_OPTION_GE(num_shards, 1);
  CHECK_OPTION_GE(shard_index, 1);
  CHECK_OPTION_LE(shard_index, num_shards);
  CHECK_OPTION(preprocessing.Check());
  return true;
}

std::vector<std::pair<std::string, std::string>> ExtractionAttributes(
    const ExtractionOptions& options,
    int descriptor_dim,
    const std::string& weights_sha256,
    const std::string& precision) {
  const bool bf16 = precision.empty() ? UsesBf16(options.model) : precision == "bf16";
  return {
      {kAttrModel, "MegaLoc"},
      {kAttrDescriptorDim, descriptor_dim > 0 ? std::to_string(descriptor_dim) : ""},
      {kAttrWeightsSha256, weights_sha256},
      {kAttrPreprocessing, options.preprocessing.ToString()},
      {kAttrDtype, DescriptorDtypeName(options.dtype)},
      {kAttrPrecision, bf16 ? "bfloat16-autocast" : "float32"},
      {kAttrToolVersion, MegalocVersion()},
  };
}

ExtractionStats RunExtraction(const ExtractionOptions& options) {
  return RunExtraction(options, nullptr);
}

ExtractionStats RunExtraction(const ExtractionOptions& options, MegaLocModel* given_model) {
  Timer total_timer;
  if (!options.Check()) {
    MEGALOC_THROW(InvalidArgument, "invalid extraction options (see the log above)");
  }
  if (given_model == nullptr && options.model.weights_path.empty()) {
    MEGALOC_THROW(InvalidArgument, "no model weights given (ModelOptions::weights_path)");
  }
  if (!DirectoryExists(options.image_path)) {
    MEGALOC_THROW(IoError, options.image_path << ": image directory does not exist or is not a directory");
  }
  ExtractionStats stats;
  const std::vector<std::string> names = SelectNames(options);
  stats.num_images = names.size();

  // Output file: created if missing (with its directory, as hloc), repaired after a crash, checked
  // against this run's settings.
  const size_t slash = options.output_path.rfind('/');
  if (slash != std::string::npos && slash > 0) CreateDirectories(options.output_path.substr(0, slash));
  std::unique_ptr<DescriptorFile> file =
      DescriptorFile::Open(options.output_path, DescriptorFile::Mode::kAppend);
  std::vector<std::string> existing = file->ListDescriptorNames();
  const std::unordered_set<std::string> existing_set(existing.begin(), existing.end());

  std::vector<std::string> work;
  for (const std::string& name : names) {
    if (options.overwrite || existing_set.count(name) == 0) {
      work.push_back(name);
    } else {
      ++stats.num_skipped_existing;
    }
  }

  // Cheap settings (preprocessing, dtype) are checked before the model is loaded.
  if (!options.overwrite) {
    const std::string early = ProvenanceMismatch(
        *file, ExtractionAttributes(options, 0, "", given_model ? given_model->Info().precision : ""));
    if (!early.empty()) {
      MEGALOC_THROW(FormatError, options.output_path
                                     << ": cannot append: " << early
                                     << ". Use another --output_path, or --overwrite to discard "
                                        "the file's content.");
    }
  }

  // The model is loaded only if there is work (a completed run resumes instantly).
  std::unique_ptr<MegaLocModel> owned_model;
  MegaLocModel* model = given_model;
  std::string weights_sha256;
  int dim = 0;
  if (model == nullptr && work.empty()) {
    weights_sha256 = Sha256File(options.model.weights_path);
  }
  // Start decoding while the model loads.
  const size_t window = static_cast<size_t>(std::max(2 * options.batch_size, 2 * options.num_workers)) + 2;
  std::unique_ptr<DecodePool> pool;
  if (!work.empty()) {
    pool = std::make_unique<DecodePool>(work, options.image_path, options.preprocessing,
                                        options.num_workers, window);
    if (model == nullptr) {
      owned_model = std::make_unique<MegaLocModel>(options.model);
      model = owned_model.get();
    }
  }
  if (model != nullptr) {
    weights_sha256 = model->Info().weights_sha256;
    dim = model->DescriptorDim();
  }
  stats.descriptor_dim = dim;

  const auto attributes =
      ExtractionAttributes(options, dim, weights_sha256, model ? model->Info().precision : "");
  bool has_own_attributes = file->HasAttribute(kAttrPreprocessing);
  std::string mismatch = ProvenanceMismatch(*file, attributes);
  if (mismatch.empty() && !has_own_attributes && !existing.empty() && dim > 0) {
    // A file from another tool (e.g. hloc): only the dimension can be checked.
    for (const std::string& name : existing) {
      const int stored = file->Dim(name);
      if (stored != dim) {
        mismatch = "it holds " + std::to_string(stored) + "-dimensional descriptors (e.g. '" +
                   name + "'), the model produces " + std::to_string(dim);
      }
      break;
    }
  }
  if (!mismatch.empty()) {
    if (!options.overwrite) {
      MEGALOC_THROW(FormatError, options.output_path
                                     << ": cannot append: " << mismatch
                                     << ". Use another --output_path, or --overwrite to discard "
                                        "the file's content.");
    }
    file.reset();
    file = DescriptorFile::Open(options.output_path, DescriptorFile::Mode::kCreate);
    existing.clear();
    has_own_attributes = false;
    stats.replaced_existing_file = true;
  }
  // Provenance: written on fresh files and refreshed on files with our own attributes; a foreign
  // file with content keeps no attributes (its provenance is unknown).
  if (existing.empty() || has_own_attributes) {
    for (const auto& [key, value] : attributes) {
      if (!value.empty()) file->SetAttribute(key, value);
    }
  }
  file->Flush();
  if (work.empty()) {
    stats.seconds = total_timer.ElapsedSeconds();
    stats.peak_rss_bytes = PeakResidentMemoryBytes();
    return stats;
  }

  Timer extraction_timer;
  Timer commit_timer;
  ExtractionProgress progress;
  progress.num_total = work.size();
  auto report_failure = [&](const std::string& name, const std::string& reason) {
    ImageFailure failure{name, reason};
    ++stats.num_failed;
    ++progress.num_done;
    ++progress.num_failed;
    if (options.failure_callback) options.failure_callback(failure);
    stats.failures.push_back(std::move(failure));
    progress.elapsed_seconds = extraction_timer.ElapsedSeconds();
    if (options.progress_callback) options.progress_callback(progress);
  };

  // One image the network cannot process (out of memory at --native on a huge image, a LibTorch
  // error) fails alone: a failed batch is retried image by image, and the rest of the run goes on.
  auto extract_or_report = [&](std::vector<PendingImage>* batch, DescriptorMatrix* descriptors) {
    std::vector<const PreprocessedImage*> images;
    for (const PendingImage& item : *batch) images.push_back(&item.decoded->image);
    try {
      *descriptors = model->Extract(images);
      return true;
    } catch (const std::exception& error) {
      if (batch->size() == 1) {
        std::string reason = error.what();
        reason = reason.substr(0, reason.find('\n'));  // LibTorch appends a backtrace
        const PendingImage& item = batch->front();
        report_failure(item.name, JoinPaths(options.image_path, item.name) +
                                      ": the model failed on this image (" +
                                      std::to_string(item.decoded->image.width) + "x" +
                                      std::to_string(item.decoded->image.height) +
                                      " after preprocessing): " + reason);
        batch->clear();
      }
      return false;
    }
  };

  std::function<void(std::vector<PendingImage>*)> run_batch;
  run_batch = [&](std::vector<PendingImage>* batch) {
    DescriptorMatrix descriptors;
    if (!extract_or_report(batch, &descriptors)) {
      std::vector<PendingImage> all = std::move(*batch);
      batch->clear();
      for (PendingImage& item : all) {
        std::vector<PendingImage> single;
        single.push_back(std::move(item));
        run_batch(&single);
      }
      return;
    }
    MEGALOC_CHECK_EQ(static_cast<size_t>(descriptors.rows()), batch->size());
    for (size_t i = 0; i < batch->size(); ++i) {
      const PendingImage& item = (*batch)[i];
      file->Write(item.name, descriptors.row(static_cast<Eigen::Index>(i)).data(),
                  static_cast<int>(descriptors.cols()), item.decoded->image.original_width,
                  item.decoded->image.original_height, options.dtype);
    }
    if (commit_timer.ElapsedSeconds() >= options.commit_interval_seconds) {
      file->Flush();  // every batch written so far becomes durable, atomically
      commit_timer.Restart();
    }
    stats.num_extracted += batch->size();
    progress.num_done += batch->size();
    batch->clear();
    progress.elapsed_seconds = extraction_timer.ElapsedSeconds();
    if (options.progress_callback) options.progress_callback(progress);
  };

  // Images wait per preprocessed size until a batch is full; at most `max_pending` wait in total
  // (then the largest group runs as a partial batch) so memory stays bounded.
  std::map<std::pair<int, int>, std::vector<PendingImage>> pending;
  size_t num_pending = 0;
  const size_t max_pending = 4 * static_cast<size_t>(options.batch_size);
  // HDF5 cannot hold both an image `sub` (a group) and an image `sub/x.jpg` (a group inside it).
  std::unordered_map<std::string, std::string> name_conflicts;
  {
    std::unordered_set<std::string> images(existing.begin(), existing.end());
    images.insert(work.begin(), work.end());
    const std::unordered_set<std::string> in_file(existing.begin(), existing.end());
    std::unordered_set<std::string> file_groups;
    for (const std::string& name : existing) {
      for (size_t p = name.find('/'); p != std::string::npos; p = name.find('/', p + 1)) {
        file_groups.insert(name.substr(0, p));
      }
    }
    for (const std::string& name : work) {
      for (size_t p = name.find('/'); p != std::string::npos; p = name.find('/', p + 1)) {
        const std::string parent = name.substr(0, p);
        if (images.count(parent)) {
          name_conflicts[name] = options.output_path + ": cannot store '" + name + "': '" + parent +
                                 "' is also an image, and HDF5 cannot nest an image inside another";
          break;
        }
      }
      if (!name_conflicts.count(name) && file_groups.count(name) && !in_file.count(name)) {
        name_conflicts[name] = options.output_path + ": cannot store '" + name +
                               "': the file has images under '" + name + "/'";
      }
    }
  }
  for (size_t i = 0; i < work.size(); ++i) {
    std::unique_ptr<DecodedImage> decoded = pool->Take(i);
    const auto conflict = name_conflicts.find(work[i]);
    if (conflict != name_conflicts.end()) {
      report_failure(work[i], conflict->second);
      continue;
    }
    if (!decoded->ok) {
      report_failure(work[i], decoded->error);
      continue;
    }
    const int width = decoded->image.width;
    const int height = decoded->image.height;
    if (!model->AcceptsSize(width, height)) {
      std::ostringstream reason;
      reason << JoinPaths(options.image_path, work[i]) << ": image too small for the model ("
             << width << "x" << height << " after preprocessing; the model needs more patches of "
             << model->Info().patch_size << " px than it has clusters)";
      report_failure(work[i], reason.str());
      continue;
    }
    auto& group = pending[{width, height}];
    group.push_back(PendingImage{work[i], std::move(decoded)});
    ++num_pending;
    if (group.size() >= static_cast<size_t>(options.batch_size)) {
      num_pending -= group.size();
      run_batch(&group);
      pending.erase({width, height});
    } else if (num_pending > max_pending) {
      auto largest = pending.begin();
      for (auto it = pending.begin(); it != pending.end(); ++it) {
        if (it->second.size() > largest->second.size()) largest = it;
      }
      num_pending -= largest->second.size();
      run_batch(&largest->second);
      pending.erase(largest);
    }
  }
  for (auto& [size, group] : pending) {
    if (!group.empty()) run_batch(&group);
  }
  file->Flush();
  pool.reset();
  const double seconds = extraction_timer.ElapsedSeconds();
  stats.images_per_second = seconds > 0 ? stats.num_extracted / seconds : 0;
  stats.seconds = total_timer.ElapsedSeconds();
  stats.peak_rss_bytes = PeakResidentMemoryBytes();
  return stats;
}

}  // namespace megaloc
