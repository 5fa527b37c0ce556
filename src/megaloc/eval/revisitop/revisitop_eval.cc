#include "megaloc/eval/revisitop/revisitop_eval.h"

#include <limits>
#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <memory>
#include <numeric>
#include <sstream>
#include <unordered_map>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "megaloc/eval/revisitop/query_crop.h"
#include "megaloc/extraction/extraction.h"
#include "megaloc/io/descriptor_store.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/npy.h"
#include "megaloc/util/sha256.h"
#include "megaloc/util/string_utils.h"
#include "megaloc/util/timer.h"

namespace megaloc {
namespace {

constexpr const char* kQueryPrefix = "query_crop/";
constexpr const char* kSetupKeys[3] = {"easy", "medium", "hard"};

void Progress(const RevisitopEvalOptions& options, const std::string& message) {
  if (options.progress) options.progress(message);
}

// Decodes like the official pil_loader (Image.open(p).convert('RGB')) for the JPEGs of the
// datasets: OpenCV/libjpeg, colour, EXIF orientation ignored. Returns interleaved RGB.
cv::Mat DecodeRgb(const std::string& path) {
  if (!FileExists(path)) MEGALOC_THROW(ImageError, path << ": no such image file");
  const std::string bytes = ReadFileToString(path);
  if (bytes.empty()) MEGALOC_THROW(ImageError, path << ": empty file (0 bytes)");
  cv::Mat bgr;
  try {
    const cv::Mat buffer(1, static_cast<int>(bytes.size()), CV_8UC1,
                         const_cast<char*>(bytes.data()));
    bgr = cv::imdecode(buffer, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
  } catch (const cv::Exception& e) {
    MEGALOC_THROW(ImageError, path << ": cannot decode image (" << e.what() << ")");
  }
  if (bgr.empty()) {
    MEGALOC_THROW(ImageError, path << ": not a decodable image (unknown format or corrupt data)");
  }
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  if (!rgb.isContinuous()) rgb = rgb.clone();
  return rgb;
}

std::vector<std::string> ReadR1mList(const std::string& path) {
  std::ifstream in(path);
  if (!in) MEGALOC_THROW(IoError, path << ": cannot open the R1M image list");
  std::vector<std::string> names;
  std::string line;
  while (std::getline(in, line)) {
    line = Trim(line);
    if (!line.empty()) names.push_back(line);
  }
  if (names.empty()) MEGALOC_THROW(FormatError, path << ": the R1M image list is empty");
  return names;
}

// One image to describe: its cache key, its file, and for queries the crop box.
struct Item {
  std::string key;
  std::string path;
  bool crop = false;
  double bbx[4] = {0, 0, 0, 0};
};

// Checks the provenance attributes of the cache, or records them on a fresh file. A foreign file
// with content but without our attributes (e.g. written by hloc) is left as it is: its provenance
// is unknown and the user vouches for it (as megaloc extract does).
void CheckCacheProvenance(DescriptorFile* file, const std::string& preprocessing,
                          const std::string& weights_sha256) {
  const std::vector<std::pair<std::string, std::string>> expected = {{kAttrPreprocessing, preprocessing},
                                                                     {kAttrWeightsSha256, weights_sha256}};
  CheckProvenance(*file, expected, "cannot use the descriptor cache", "Use another --descriptors file.");
  if (file->IsWritable() && file->ListNames().empty()) {
    for (const auto& [key, value] : expected) {
      if (!value.empty() && !file->HasAttribute(key)) file->SetAttribute(key, value);
    }
  }
}

// Top-down ranking: indices sorted by descending score, ties by ascending index.
std::vector<int64_t> RankScores(const std::vector<float>& scores) {
  std::vector<int64_t> order(scores.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  std::sort(order.begin(), order.end(), [&scores](int64_t a, int64_t b) {
    if (scores[a] != scores[b]) return scores[a] > scores[b];
    return a < b;
  });
  return order;
}

void WriteRanksOfficial(const std::string& path, const std::vector<std::vector<int64_t>>& ranks,
                        int64_t num_rows) {
  const auto nq = static_cast<int64_t>(ranks.size());
  std::vector<int64_t> data(static_cast<size_t>(num_rows * nq));
  for (int64_t q = 0; q < nq; ++q) {
    for (int64_t r = 0; r < num_rows; ++r) data[r * nq + q] = ranks[q][r];
  }
  WriteNpy(path, {num_rows, nq}, data.data());  // atomically (temporary file + rename)
}

// "gnd_roxford5k.pkl" -> "roxford5k".
std::string DatasetNameFromGndPath(const std::string& path) {
  std::string name = path.substr(path.find_last_of('/') == std::string::npos
                                     ? 0
                                     : path.find_last_of('/') + 1);
  const size_t dot = name.find_last_of('.');
  if (dot != std::string::npos && dot > 0) name = name.substr(0, dot);
  if (StartsWith(name, "gnd_")) name = name.substr(4);
  return name;
}

// np.around(fraction * 100, decimals=2): rint(a * 100) / 100 with a = fraction * 100.
double AroundPercent(double fraction) {
  const double a = fraction * 100.0;
  return std::nearbyint(a * 100.0) / 100.0;
}

// Shortest round-trip digits in positional notation ("37.1", "50", "33.33").
std::string ShortestFixed(double v) {
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), v, std::chars_format::fixed);
  return std::string(buffer, result.ptr);
}

// Python's str/repr of a float for values printed by the official example (no exponent needed
// for percentages rounded to 2 decimals).
std::string PythonFloatRepr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::string s = ShortestFixed(v);
  if (s.find('.') == std::string::npos) s += ".0";
  return s;
}

// numpy's str() of a 1-d float array in positional mode (default print options): shortest digits,
// "50." for integral values, integer parts right-aligned and fractions left-aligned to common
// widths, "nan" for NaN. (numpy switches to scientific notation when the non-zero values span
// more than 3 decimal orders; that case is not reproduced.)
std::string NumpyFloatArray(const std::vector<double>& values) {
  std::vector<std::string> ints(values.size()), fracs(values.size());
  size_t pad_left = 0, pad_right = 0;
  bool any_nonfinite = false;
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      any_nonfinite = true;
      continue;
    }
    const std::string s = ShortestFixed(values[i]);
    const size_t dot = s.find('.');
    ints[i] = dot == std::string::npos ? s : s.substr(0, dot);
    fracs[i] = dot == std::string::npos ? "" : s.substr(dot + 1);
    pad_left = std::max(pad_left, ints[i].size());
    pad_right = std::max(pad_right, fracs[i].size());
  }
  if (any_nonfinite && pad_right + 1 < 3) pad_left = std::max(pad_left, 3 - (pad_right + 1));
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += " ";
    if (!std::isfinite(values[i])) {
      const std::string text = std::isnan(values[i]) ? "nan" : (values[i] > 0 ? "inf" : "-inf");
      const size_t width = pad_left + pad_right + 1;
      out += std::string(width > text.size() ? width - text.size() : 0, ' ') + text;
    } else {
      out += std::string(pad_left - ints[i].size(), ' ') + ints[i] + "." + fracs[i] +
             std::string(pad_right - fracs[i].size(), ' ');
    }
  }
  return out + "]";
}

// numpy's str() of a 1-d int array: "[ 1  5 10]".
std::string NumpyIntArray(const std::vector<int>& values) {
  size_t width = 0;
  for (const int v : values) width = std::max(width, std::to_string(v).size());
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) {
    const std::string s = std::to_string(values[i]);
    out += (i ? " " : "") + std::string(width - s.size(), ' ') + s;
  }
  return out + "]";
}

nlohmann::json Percent(double v) {
  if (std::isnan(v)) return nullptr;
  return v * 100.0;
}

}  // namespace

PreprocessingOptions RevisitopDefaultPreprocessing() {
  PreprocessingOptions p;
  p.mode = ResizeMode::kFixed;
  p.width = 322;
  p.height = 322;
  return p;
}

bool RevisitopEvalOptions::Check() const {
  CHECK_OPTION(dataset == "roxford5k" || dataset == "rparis6k");
  CHECK_OPTION(!data_root.empty() || (!gnd_path.empty() && !image_dir.empty()));
  CHECK_OPTION(!weights_path.empty() || !descriptors_path.empty());
  CHECK_OPTION(r1m_dir.empty() || !descriptors_path.empty());
  CHECK_OPTION_GT(flush_every, 0);
  CHECK_OPTION_GE(batch_size, 1);
  CHECK_OPTION_GE(num_workers, 1);
  CHECK_OPTION(preprocessing.Check());
  CHECK_OPTION(expansion.Check());
  CHECK_OPTION(!expansion.Enabled() || r1m_dir.empty());
  return true;
}

namespace {

// DBA on the whole database `db` (each image's neighbours exclude itself), then αQE of `queries`
// against the augmented database (retrieval/pair_graph.h).
void ExpandForRanking(const QueryExpansionOptions& qe, DescriptorBlock* queries, DescriptorBlock* db) {
  SearchOptions search;
  search.min_score = -std::numeric_limits<float>::infinity();
  if (qe.dba_num > 0) {
    std::vector<int64_t> ids(static_cast<size_t>(db->rows()));
    std::iota(ids.begin(), ids.end(), 0);
    search.num_neighbors = qe.dba_num;
    const MatrixDescriptorSource source(*db);
    const SearchResult nn = Search(source, source, search, &ids, &ids);
    *db = ExpandDescriptors(source, source, nn, qe.dba_num, qe.dba_alpha);
  }
  if (qe.qe_num > 0 && queries->rows() > 0) {
    search.num_neighbors = qe.qe_num;
    const MatrixDescriptorSource query_source(*queries), db_source(*db);
    const SearchResult nn = Search(query_source, db_source, search);
    *queries = ExpandDescriptors(query_source, db_source, nn, qe.qe_num, qe.qe_alpha);
  }
}

}  // namespace

RevisitopReport RunRevisitopEvaluation(const RevisitopEvalOptions& options) {
  if (!options.Check()) {
    MEGALOC_THROW(InvalidArgument, "invalid revisitop_eval options (see the log above)");
  }
  Timer total_timer;
  const std::string dataset_dir = JoinPaths(JoinPaths(options.data_root, "datasets"), options.dataset);
  const std::string gnd_path = options.gnd_path.empty()
                                   ? JoinPaths(dataset_dir, "gnd_" + options.dataset + ".pkl")
                                   : options.gnd_path;
  const std::string image_dir =
      options.image_dir.empty() ? JoinPaths(dataset_dir, "jpg") : options.image_dir;

  RevisitopReport report;
  report.dataset = options.dataset;
  report.preprocessing = options.preprocessing.ToString();
  report.gnd_path = gnd_path;
  report.ranks_source = "dot product";
  if (options.expansion.Enabled()) {
    std::ostringstream source;
    source << "dot product after";
    if (options.expansion.dba_num > 0) {
      source << " DBA (" << options.expansion.dba_num << " neighbours, alpha " << options.expansion.dba_alpha << ")";
    }
    if (options.expansion.qe_num > 0) {
      source << (options.expansion.dba_num > 0 ? " and" : "") << " alpha-QE (" << options.expansion.qe_num
             << " neighbours, alpha " << options.expansion.qe_alpha << ")";
    }
    report.ranks_source = source.str();
  }

  const RevisitopGroundTruth gt = ReadRevisitopGroundTruth(gnd_path);
  report.num_database = static_cast<int64_t>(gt.imlist.size());
  report.query_names = gt.qimlist;
  Progress(options, gnd_path + ": " + std::to_string(gt.qimlist.size()) + " queries, " +
                        std::to_string(gt.imlist.size()) + " database images");
  if (!DirectoryExists(image_dir)) {
    MEGALOC_THROW(IoError, image_dir << ": image directory not found (expected the official layout "
                                        "<data_root>/datasets/<dataset>/jpg)");
  }

  // Cropped queries (extracted here) and database images (+ distractors, through RunExtraction).
  std::vector<Item> queries(gt.qimlist.size());
  for (size_t q = 0; q < gt.qimlist.size(); ++q) {
    queries[q].key = kQueryPrefix + gt.qimlist[q] + ".jpg";
    queries[q].path = JoinPaths(image_dir, gt.qimlist[q] + ".jpg");
    queries[q].crop = true;
    std::copy(gt.gnd[q].bbx, gt.gnd[q].bbx + 4, queries[q].bbx);
    try {
      PilCropBox(queries[q].bbx);  // validate early
    } catch (const InvalidArgument& e) {
      MEGALOC_THROW(FormatError, gnd_path << ": query " << q << " ('" << gt.qimlist[q]
                                          << "'): " << e.what());
    }
  }
  std::vector<std::string> db_names;
  for (const std::string& name : gt.imlist) db_names.push_back(name + ".jpg");
  std::vector<std::string> r1m_names;
  const std::string r1m_root = options.r1m_dir;
  if (!r1m_root.empty()) {
    for (const std::string& entry : ReadR1mList(JoinPaths(r1m_root, "revisitop1m.txt"))) {
      r1m_names.push_back("jpg/" + entry);
    }
    report.num_distractors = static_cast<int64_t>(r1m_names.size());
    Progress(options, "R1M: " + std::to_string(r1m_names.size()) + " distractors");
  }
  // Fail before any work if an image is missing.
  {
    std::vector<std::string> missing_files;
    for (const Item& q : queries) {
      if (!FileExists(q.path)) missing_files.push_back(q.path);
    }
    for (const std::string& n : db_names) {
      if (!FileExists(JoinPaths(image_dir, n))) missing_files.push_back(JoinPaths(image_dir, n));
    }
    for (const std::string& n : r1m_names) {
      if (!FileExists(JoinPaths(r1m_root, n))) missing_files.push_back(JoinPaths(r1m_root, n));
    }
    if (!missing_files.empty()) {
      MEGALOC_THROW(IoError, missing_files.front()
                                 << ": image not found (" << missing_files.size()
                                 << " images of the dataset are missing; see "
                                    "scripts/download_revisitop.sh)");
    }
  }

  // Descriptor file: the user's cache, or a temporary one.
  std::string descriptors_path = options.descriptors_path;
  std::string temp_dir;
  if (descriptors_path.empty()) {
    temp_dir = CreateTempDirectory("megaloc_revisitop");
    descriptors_path = JoinPaths(temp_dir, "descriptors.h5");
  }
  struct TempDirRemover {
    std::string dir;
    ~TempDirRemover() {
      std::error_code ignored;
      if (!dir.empty()) std::filesystem::remove_all(dir, ignored);
    }
  } remover{temp_dir};

  std::unique_ptr<DescriptorFile> file =
      DescriptorFile::Open(descriptors_path, DescriptorFile::Mode::kAppend);
  std::vector<const Item*> missing_queries;
  for (const Item& q : queries) {
    if (!file->Has(q.key)) missing_queries.push_back(&q);
  }
  size_t missing_db = 0;
  for (const std::string& n : db_names) missing_db += file->Has(n) ? 0 : 1;
  for (const std::string& n : r1m_names) missing_db += file->Has(n) ? 0 : 1;
  const size_t num_items = queries.size() + db_names.size() + r1m_names.size();
  report.num_cached = static_cast<int64_t>(num_items - missing_queries.size() - missing_db);
  const bool need_model = !missing_queries.empty() || missing_db > 0;
  if (need_model && options.weights_path.empty()) {
    MEGALOC_THROW(InvalidArgument, (missing_queries.size() + missing_db)
                                       << " descriptors are not in " << descriptors_path
                                       << "; pass --weights_path to compute them");
  }
  std::string weights_sha;
  if (!options.weights_path.empty() && (need_model || !options.descriptors_path.empty())) {
    weights_sha = Sha256File(options.weights_path);
  }
  CheckCacheProvenance(file.get(), report.preprocessing, weights_sha);
  // New descriptors are stored as float32 (no float16 rounding in the evaluated scores; hloc reads
  // float32 too), or in the dtype an existing cache records (e.g. a float16 `megaloc extract` file).
  DescriptorDtype dtype = DescriptorDtype::kFloat32;
  if (file->HasAttribute(kAttrDtype)) dtype = ParseDescriptorDtype(file->GetAttribute(kAttrDtype));
  file->Flush();

  Timer extraction_timer;
  if (need_model) {
    ModelOptions model_options = options.model;
    model_options.weights_path = options.weights_path;
    MegaLocModel model(model_options);
    Progress(options, "extracting " + std::to_string(missing_queries.size() + missing_db) +
                          " descriptors (" + report.preprocessing + ", device " +
                          model.Info().device + ")");
    // 1. Cropped queries: decode, crop (PIL semantics), preprocess, describe.
    try {
      for (size_t i = 0; i < missing_queries.size(); ++i) {
        const Item& item = *missing_queries[i];
        const cv::Mat rgb = DecodeRgb(item.path);
        const PixelBox box = PilCropBox(item.bbx);
        std::vector<uint8_t> cropped;
        try {
          cropped = CropRgb(rgb.ptr<uint8_t>(), rgb.cols, rgb.rows, box);
        } catch (const InvalidArgument& e) {
          MEGALOC_THROW(ImageError, item.path << ": query crop box from " << gnd_path << ": "
                                              << e.what());
        }
        PreprocessedImage image;
        try {
          image = PreprocessRgbImage(cropped.data(), static_cast<int>(box.Width()),
                                     static_cast<int>(box.Height()), options.preprocessing);
        } catch (const InvalidArgument& e) {
          MEGALOC_THROW(ImageError, item.path << ": query crop: " << e.what());
        }
        if (!model.AcceptsSize(image.width, image.height)) {
          MEGALOC_THROW(ImageError, item.path << ": cropped query " << image.width << "x"
                                              << image.height << " is too small for the model");
        }
        const Eigen::VectorXf d = model.Extract(image);
        file->Write(item.key, d.data(), static_cast<int>(d.size()), rgb.cols, rgb.rows, dtype);
        ++report.num_extracted;
        if ((i + 1) % static_cast<size_t>(options.flush_every) == 0) file->Flush();
      }
    } catch (...) {
      file->Flush();  // keep what was computed
      throw;
    }
    file->Flush();
    if (!missing_queries.empty()) {
      Progress(options, "queries: " + std::to_string(missing_queries.size()) + " cropped and described");
    }
    file.reset();  // RunExtraction opens the file itself

    // 2. Database images and distractors: the extraction pipeline (parallel decoding, batches,
    // atomic flushes, resumable).
    auto extract_collection = [&](const std::string& root, const std::vector<std::string>& names,
                                  const std::string& label) {
      if (names.empty()) return;
      ExtractionOptions eo;
      eo.image_path = root;
      eo.output_path = descriptors_path;
      eo.image_names = names;
      eo.preprocessing = options.preprocessing;
      eo.dtype = dtype;
      eo.batch_size = options.batch_size;
      eo.num_workers = options.num_workers;
      eo.progress_callback = [&](const ExtractionProgress& p) {
        if (p.num_done % 50 == 0 || p.num_done == p.num_total) {
          std::ostringstream msg;
          msg << label << ": " << p.num_done << " / " << p.num_total << " ("
              << std::fixed << std::setprecision(2)
              << (p.num_done ? p.elapsed_seconds / static_cast<double>(p.num_done) : 0.0)
              << " s/image)";
          Progress(options, msg.str());
        }
      };
      const ExtractionStats stats = RunExtraction(eo, &model);
      report.num_extracted += static_cast<int64_t>(stats.num_extracted);
      if (stats.num_failed > 0) {
        MEGALOC_THROW(ImageError, stats.failures.front().reason
                                      << " (" << stats.num_failed << " " << label
                                      << " images failed; the others are stored in "
                                      << descriptors_path << ")");
      }
    };
    extract_collection(image_dir, db_names, "database");
    extract_collection(r1m_root, r1m_names, "R1M");
    file = DescriptorFile::Open(descriptors_path, DescriptorFile::Mode::kRead);
  }
  report.extraction_seconds = extraction_timer.ElapsedSeconds();

  // Scores and ranks: sim = Q . X^T, streamed over the database in blocks.
  std::vector<std::string> query_keys;
  for (const Item& q : queries) query_keys.push_back(q.key);
  std::vector<std::string> db_keys = db_names;
  db_keys.insert(db_keys.end(), r1m_names.begin(), r1m_names.end());
  DescriptorBlock q_block;
  if (!query_keys.empty()) file->ReadBlock(query_keys, 0, query_keys.size(), &q_block);
  const size_t n = db_keys.size();
  std::vector<std::vector<float>> scores(query_keys.size(), std::vector<float>(n));
  constexpr size_t kBlock = 4096;
  // With αQE/DBA the whole database is one block (held in memory).
  const size_t block = options.expansion.Enabled() ? n : kBlock;
  for (size_t begin = 0; begin < n; begin += block) {
    const size_t end = std::min(n, begin + block);
    DescriptorBlock x;
    file->ReadBlock(db_keys, begin, end, &x);
    if (x.cols() != q_block.cols()) {
      MEGALOC_THROW(FormatError, descriptors_path << ": descriptor dimensions differ: queries "
                                                  << q_block.cols() << ", database " << x.cols());
    }
    if (options.expansion.Enabled()) ExpandForRanking(options.expansion, &q_block, &x);
    const Eigen::MatrixXf s = q_block * x.transpose();  // (n_q, block)
    for (size_t q = 0; q < query_keys.size(); ++q) {
      for (size_t j = begin; j < end; ++j) {
        scores[q][j] = s(static_cast<Eigen::Index>(q), static_cast<Eigen::Index>(j - begin));
      }
    }
  }
  file.reset();
  std::vector<std::vector<int64_t>> ranks(query_keys.size());
  for (size_t q = 0; q < query_keys.size(); ++q) ranks[q] = RankScores(scores[q]);
  scores.clear();

  report.evaluation = EvaluateRevisitop(ranks, gt.gnd);
  if (!options.ranks_output_path.empty()) {
    WriteRanksOfficial(options.ranks_output_path, ranks, static_cast<int64_t>(n));
  }
  report.total_seconds = total_timer.ElapsedSeconds();
  return report;
}

RevisitopReport EvaluateRevisitopRanksFile(const std::string& gnd_path,
                                           const std::string& ranks_path,
                                           bool layout_db_by_q) {
  const RevisitopGroundTruth gt = ReadRevisitopGroundTruth(gnd_path);
  const NpyArray array = ReadNpy(ranks_path);
  if (array.shape.size() != 2) {
    MEGALOC_THROW(FormatError, ranks_path << ": ranks must be a 2-D array, got "
                                          << array.shape.size() << " dimensions");
  }
  if (array.dtype.empty() || (array.dtype[0] != 'i' && array.dtype[0] != 'u')) {
    MEGALOC_THROW(FormatError, ranks_path << ": ranks must be integers, got dtype '" << array.dtype
                                          << "'");
  }
  const int64_t nq = static_cast<int64_t>(gt.qimlist.size());
  const int64_t query_axis = layout_db_by_q ? array.shape[1] : array.shape[0];
  if (query_axis != nq) {
    MEGALOC_THROW(FormatError, ranks_path << ": shape (" << array.shape[0] << ", " << array.shape[1]
                                          << ") does not match " << nq << " queries in "
                                          << gnd_path << " (expected layout "
                                          << (layout_db_by_q ? "(n_db, n_q)" : "(n_q, n_db)")
                                          << ")");
  }
  std::vector<std::vector<int64_t>> ranks;
  const std::vector<int64_t> data = array.As<int64_t>();
  if (layout_db_by_q) {
    ranks = RanksFromOfficialLayout(data, array.shape[0], array.shape[1]);
  } else {
    ranks.resize(static_cast<size_t>(nq));
    for (int64_t q = 0; q < nq; ++q) {
      ranks[q].assign(data.begin() + q * array.shape[1], data.begin() + (q + 1) * array.shape[1]);
    }
  }
  try {
    CheckRevisitopRanks(ranks, -1);
  } catch (const InvalidArgument& e) {
    MEGALOC_THROW(FormatError, ranks_path << ": " << e.what());
  }
  RevisitopReport report;
  report.dataset = DatasetNameFromGndPath(gnd_path);
  report.preprocessing = "external ranks";
  report.gnd_path = gnd_path;
  report.ranks_source = ranks_path;
  report.num_database = static_cast<int64_t>(gt.imlist.size());
  int64_t max_id = -1;
  for (const auto& list : ranks) {
    for (const int64_t id : list) max_id = std::max(max_id, id);
  }
  report.num_distractors = std::max<int64_t>(0, max_id + 1 - report.num_database);
  report.query_names = gt.qimlist;
  report.evaluation = EvaluateRevisitop(ranks, gt.gnd);
  return report;
}

nlohmann::json RevisitopReportToJson(const RevisitopReport& report) {
  nlohmann::json j;
  j["dataset"] = report.dataset;
  j["preprocessing"] = report.preprocessing;
  j["gnd_path"] = report.gnd_path;
  j["ranks"] = report.ranks_source;
  j["num_queries"] = report.query_names.size();
  j["num_database"] = report.num_database;
  j["num_distractors"] = report.num_distractors;
  j["units"] = "percent";
  const std::vector<int>& kappas = report.evaluation.setups[0].kappas;
  j["kappas"] = kappas;
  for (int s = 0; s < 3; ++s) {
    const RevisitopMapResult& r = report.evaluation.setups[s];
    const std::string key = kSetupKeys[s];
    j["mAP"][key] = Percent(r.map);
    j["nvalid"][key] = r.nvalid;
    nlohmann::json mp = nlohmann::json::object();
    nlohmann::json per_k = nlohmann::json::object();
    for (size_t k = 0; k < kappas.size(); ++k) {
      const std::string kk = std::to_string(kappas[k]);
      mp[kk] = Percent(r.mean_precision_at_k[k]);
      nlohmann::json column = nlohmann::json::array();
      for (const auto& row : r.precision_at_k) column.push_back(Percent(row[k]));
      per_k[kk] = column;
    }
    j["mP"][key] = mp;
    nlohmann::json aps = nlohmann::json::array();
    for (const double ap : r.aps) aps.push_back(Percent(ap));
    j["ap_per_query"][key] = aps;
    j["p_at_k_per_query"][key] = per_k;
  }
  j["queries"] = report.query_names;
  if (report.ranks_source == "dot product") {
    j["num_extracted"] = report.num_extracted;
    j["num_cached"] = report.num_cached;
    j["extraction_seconds"] = report.extraction_seconds;
    j["total_seconds"] = report.total_seconds;
  }
  return j;
}

std::string FormatRevisitopReport(const RevisitopReport& report) {
  const auto& e = report.evaluation;
  std::ostringstream out;
  auto pct = [](double v) {
    std::ostringstream s;
    if (std::isnan(v)) {
      s << "nan";
    } else {
      s << std::fixed << std::setprecision(2) << v * 100.0;
    }
    return s.str();
  };
  const auto& kappas = e.setups[0].kappas;
  // The two lines of the official example_evaluate.py, character for character.
  out << ">> " << report.dataset << ": mAP E: " << PythonFloatRepr(AroundPercent(e.setups[0].map))
      << ", M: " << PythonFloatRepr(AroundPercent(e.setups[1].map))
      << ", H: " << PythonFloatRepr(AroundPercent(e.setups[2].map)) << "\n";
  out << ">> " << report.dataset << ": mP@k" << NumpyIntArray(kappas);
  const char* letters[3] = {"E", "M", "H"};
  for (int s = 0; s < 3; ++s) {
    std::vector<double> rounded;
    for (const double p : e.setups[s].mean_precision_at_k) rounded.push_back(AroundPercent(p));
    out << (s ? ", " : " ") << letters[s] << ": " << NumpyFloatArray(rounded);
  }
  out << "\n\n";
  out << "setup    mAP     ";
  for (const int k : kappas) out << "mP@" << std::left << std::setw(5) << k << std::right;
  out << "nvalid\n";
  for (int s = 0; s < 3; ++s) {
    const auto& r = e.setups[s];
    out << std::left << std::setw(8) << kSetupKeys[s] << std::right << std::setw(6)
        << pct(r.map) << "   ";
    for (size_t k = 0; k < kappas.size(); ++k) {
      out << std::setw(6) << pct(r.mean_precision_at_k[k]) << "  ";
    }
    out << r.nvalid << "/" << report.query_names.size() << "\n";
  }
  out << "(" << report.num_database << " database images";
  if (report.num_distractors > 0) out << " + " << report.num_distractors << " distractors";
  out << ", preprocessing: " << report.preprocessing << ")\n";
  return out.str();
}

}  // namespace megaloc
