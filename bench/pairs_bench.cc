// Retrieval benchmark (docs/perf/retrieval.md).
//
//   pairs_bench gemm [threads]                         sgemm GFLOP/s on this machine (denominator)
//   pairs_bench sfm N [threads] [k] [dim] [memory_limit] [DIR] [methods=ours,hloc,ours_h5]
//       SfM self-retrieval on N random unit descriptors (written to DIR/sfm_N_dim.h5 as float16 and
//       loaded from there when DIR is given): our blocked engine vs hloc's approach
//       (one full N x N float32 similarity matrix by a single sgemm, N x N bool self mask,
//       N x N bool `scores < min_score` mask, masked fill, top-k per row), each in its own child
//       process so that peak RSS is per method.
//   pairs_bench stream NDB NQ [threads] [k] [dim] [memory_limit]
//       NQ queries against NDB database descriptors generated on the fly block by block (no
//       database in memory, no disk): peak memory of the streamed engine.
//   pairs_bench h5 DIR NDB NQ [threads] [k] [dim] [memory_limit]   (dim only used when writing)
//       Writes DIR/db.h5 (NDB float16 descriptors, hloc layout) and DIR/queries.h5 if missing,
//       then runs PairsFromRetrieval streaming the database from the HDF5 file.
//       ours_h5 = the whole `megaloc pairs` pipeline streaming from the file within memory_limit.
//   pairs_bench faiss NDB NQ [threads] [k] [dim] [clusters] [hnsw=1]
//       exact vs faiss_ivf / faiss_hnsw: time and recall@k (random, or clustered if clusters > 0).
//   pairs_bench child <method> ...                      (internal: one measurement)
//
// Every measurement prints one line "RESULT method=... seconds=... peak_rss_gib=... load=...".

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <cblas.h>

#include "megaloc/io/descriptor_store.h"
#include "megaloc/retrieval/pairs_from_retrieval.h"
#include "megaloc/retrieval/search.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/timer.h"

namespace megaloc {
namespace {

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + "/" + b + "/" + c;
}

double GiB(double bytes) { return bytes / (1024.0 * 1024.0 * 1024.0); }

// Deterministic pseudo-random unit vectors: row r depends only on (seed, r).
void FillUnitRows(uint64_t seed, int64_t begin, int64_t count, int dim, float* out) {
  for (int64_t r = 0; r < count; ++r) {
    uint64_t state = (seed * 0x9E3779B97F4A7C15ull) ^ ((begin + r + 1) * 0xBF58476D1CE4E5B9ull);
    float* row = out + r * dim;
    double norm = 0.0;
    for (int d = 0; d < dim; ++d) {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      const float v = static_cast<float>(static_cast<int64_t>(state >> 40) - (1 << 23)) /
                      static_cast<float>(1 << 23);
      row[d] = v;
      norm += static_cast<double>(v) * v;
    }
    const float inv = static_cast<float>(1.0 / std::sqrt(norm));
    for (int d = 0; d < dim; ++d) row[d] *= inv;
  }
}

void SetThreads(int threads) { openblas_set_num_threads(threads); }

// CPU seconds (user + system, all threads) of this process: less sensitive than wall time to
// other processes on a shared machine.
double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         1e-6 * (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

void PrintResult(const std::string& method, double seconds, const std::string& extra) {
  std::printf("RESULT method=%s seconds=%.3f cpu_s_process=%.3f peak_rss_gib=%.3f load=%s %s\n",
              method.c_str(), seconds, CpuSeconds(),
              GiB(static_cast<double>(PeakResidentMemoryBytes())), LoadAverage().c_str(),
              extra.c_str());
  std::fflush(stdout);
}

// ---------------------------------------------------------------------------------------------
int ChildGemm(int threads) {
  SetThreads(threads);
  const int n = 4096;
  std::vector<float> a(static_cast<size_t>(n) * n), b(a.size()), c(a.size());
  FillUnitRows(1, 0, n, n, a.data());
  FillUnitRows(2, 0, n, n, b.data());
  double best = 1e30;
  for (int rep = 0; rep < 4; ++rep) {
    Timer t;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a.data(), n, b.data(), n,
                0.0f, c.data(), n);
    best = std::min(best, t.ElapsedSeconds());
  }
  const double gflops = 2.0 * n * n * static_cast<double>(n) / best / 1e9;
  std::ostringstream extra;
  extra << "shape=4096x4096x4096 threads=" << threads << " gflops=" << gflops;
  PrintResult("gemm", best, extra.str());
  return 0;
}

// Loads every descriptor of an hloc file as float32 (what hloc's pairs_from_retrieval does).
DescriptorMatrix LoadAll(const std::string& path) {
  auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kRead);
  const std::vector<std::string> names = file->ListNames();
  const int dim = file->Dim(names.at(0));
  DescriptorMatrix x(static_cast<int64_t>(names.size()), dim);
  DescriptorBlock block;
  for (size_t b = 0; b < names.size(); b += 1024) {
    const size_t e = std::min(names.size(), b + 1024);
    file->ReadBlock(names, b, e, &block);
    x.middleRows(static_cast<int64_t>(b), static_cast<int64_t>(e - b)) = block;
  }
  return x;
}

int ChildSfm(const std::string& method, const std::string& path, int64_t n, int threads, int k,
             int dim, int64_t memory_limit) {
  SetThreads(threads);
  const double gflop = 2.0 * n * static_cast<double>(n) * dim / 1e9;
  std::ostringstream extra;
  if (method == "ours_h5") {
    PairsFromRetrievalOptions options;
    options.descriptors_path = path;
    options.search.num_neighbors = k;
    options.search.memory_limit = memory_limit;
    options.search.num_threads = threads;
    Timer t;
    const RetrievalPairs result = PairsFromRetrieval(options);
    const double seconds = t.ElapsedSeconds();
    extra << "n=" << result.stats.num_queries << " k=" << k << " dim=" << result.stats.dim
          << " threads=" << threads << " source=" << path
          << " memory_limit_gib=" << GiB(static_cast<double>(memory_limit))
          << " list_s=" << result.stats.list_seconds << " read_s=" << result.stats.search.read_seconds
          << " gemm_s=" << result.stats.search.gemm_seconds
          << " topk_s=" << result.stats.search.topk_seconds << " blocks="
          << result.stats.search.query_block << "x" << result.stats.search.db_block
          << " buffers_gib=" << GiB(static_cast<double>(result.stats.search.working_bytes))
          << " pairs=" << result.pairs.size() << " first_pair=" << result.pairs.at(0).pair.name1
          << ":" << result.pairs.at(0).pair.name2;
    PrintResult("ours_h5", seconds, extra.str());
    return 0;
  }
  Timer load_timer;
  DescriptorMatrix x;
  if (path == "-") {
    x.resize(n, dim);
    FillUnitRows(7, 0, n, dim, x.data());
  } else {
    x = LoadAll(path);
    n = x.rows();
    dim = static_cast<int>(x.cols());
  }
  const double load_seconds = path == "-" ? 0.0 : load_timer.ElapsedSeconds();
  extra << "load_s=" << load_seconds << " source=" << path << " ";
  if (method == "ours") {
    SearchOptions options;
    options.num_neighbors = k;
    options.memory_limit = memory_limit;
    options.num_threads = threads;
    std::vector<int64_t> ids(n);
    for (int64_t i = 0; i < n; ++i) ids[i] = i;
    SearchStats stats;
    Timer t;
    const SearchResult result = Search(x, x, options, &ids, &ids, &stats);
    const double seconds = t.ElapsedSeconds() + load_seconds;
    int64_t checksum = 0;
    for (int64_t i = 0; i < n; ++i) checksum += result.Label(i, 0);
    extra << "n=" << n << " k=" << k << " dim=" << dim << " threads=" << threads
          << " gemm_s=" << stats.gemm_seconds << " topk_s=" << stats.topk_seconds
          << " blocks=" << stats.query_block << "x" << stats.db_block
          << " buffers_gib=" << GiB(static_cast<double>(stats.working_bytes))
          << " gflops_eff=" << gflop / (seconds - load_seconds) << " top1_checksum=" << checksum;
    PrintResult("ours", seconds, extra.str());
  } else {
    // hloc's pairs_from_retrieval, in C++ (no Python overhead: favourable to hloc).
    Timer t;
    std::vector<float> sim(static_cast<size_t>(n) * n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, dim, 1.0f, x.data(), dim, x.data(),
                dim, 0.0f, sim.data(), n);
    const double gemm_seconds = t.ElapsedSeconds();
    // mask = names_q[:, None] == names_db[None]  (N x N bool)
    std::vector<uint8_t> self_mask(static_cast<size_t>(n) * n);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < n; ++j) self_mask[i * n + j] = (i == j);
    }
    // invalid = scores < min_score; invalid |= mask; scores.masked_fill_(invalid, -inf)
    std::vector<uint8_t> invalid(static_cast<size_t>(n) * n);
    for (size_t e = 0; e < invalid.size(); ++e) invalid[e] = sim[e] < 0.0f;
    for (size_t e = 0; e < invalid.size(); ++e) invalid[e] |= self_mask[e];
    const float ninf = -std::numeric_limits<float>::infinity();
    for (size_t e = 0; e < invalid.size(); ++e) {
      if (invalid[e]) sim[e] = ninf;
    }
    // topk(k, dim=1) per row (partial sort of indices).
    std::vector<int64_t> labels(static_cast<size_t>(n) * k);
    std::vector<int32_t> idx(n);
    for (int64_t i = 0; i < n; ++i) {
      const float* row = sim.data() + i * n;
      for (int64_t j = 0; j < n; ++j) idx[j] = static_cast<int32_t>(j);
      std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                        [&](int32_t a, int32_t b) { return row[a] > row[b]; });
      for (int r = 0; r < k; ++r) labels[i * k + r] = std::isfinite(row[idx[r]]) ? idx[r] : -1;
    }
    const double seconds = t.ElapsedSeconds() + load_seconds;
    int64_t checksum = 0;
    for (int64_t i = 0; i < n; ++i) checksum += labels[i * k];
    extra << "n=" << n << " k=" << k << " dim=" << dim << " threads=" << threads
          << " gemm_s=" << gemm_seconds << " gflops_eff=" << gflop / (seconds - load_seconds)
          << " top1_checksum=" << checksum;
    PrintResult("hloc", seconds, extra.str());
  }
  return 0;
}

int ChildStream(int64_t ndb, int64_t nq, int threads, int k, int dim, int64_t memory_limit) {
  SetThreads(threads);
  DescriptorMatrix q(nq, dim);
  FillUnitRows(11, 0, nq, dim, q.data());
  MatrixDescriptorSource queries(q);
  double generate_seconds = 0.0;
  CallbackDescriptorSource db(ndb, dim, [&](int64_t begin, int64_t count, float* out) {
    Timer g;
    FillUnitRows(12, begin, count, dim, out);
    generate_seconds += g.ElapsedSeconds();
  });
  SearchOptions options;
  options.num_neighbors = k;
  options.memory_limit = memory_limit;
  options.num_threads = threads;
  options.min_score = -1.0f;
  SearchStats stats;
  Timer t;
  const SearchResult result = Search(queries, db, options, nullptr, nullptr, &stats);
  const double seconds = t.ElapsedSeconds();
  const double gflop = 2.0 * nq * static_cast<double>(ndb) * dim / 1e9;
  std::ostringstream extra;
  extra << "ndb=" << ndb << " nq=" << nq << " k=" << k << " dim=" << dim << " threads=" << threads
        << " memory_limit_gib=" << GiB(static_cast<double>(memory_limit))
        << " blocks=" << stats.query_block << "x" << stats.db_block
        << " buffers_gib=" << GiB(static_cast<double>(stats.working_bytes))
        << " generate_s=" << generate_seconds << " gemm_s=" << stats.gemm_seconds
        << " topk_s=" << stats.topk_seconds
        << " gflops_gemm_only=" << gflop / stats.gemm_seconds << " valid0=" << result.NumValid(0);
  PrintResult("stream_synthetic", seconds, extra.str());
  return 0;
}

// Exact vs FAISS IVF/HNSW on NDB random unit descriptors (clustered > 0: that many cluster
// centres, each descriptor = centre + noise, closer to real place-recognition data).
void FillClustered(int clusters, uint64_t seed, int64_t begin, int64_t count, int dim, float* out) {
  std::vector<float> centre(dim), noise(dim);
  for (int64_t r = 0; r < count; ++r) {
    const int64_t row = begin + r;
    const int64_t c = (row * 2654435761ull) % clusters;
    FillUnitRows(999, c, 1, dim, centre.data());
    FillUnitRows(seed, row, 1, dim, noise.data());
    double norm = 0.0;
    for (int d = 0; d < dim; ++d) {
      out[r * dim + d] = centre[d] + 0.7f * noise[d];
      norm += static_cast<double>(out[r * dim + d]) * out[r * dim + d];
    }
    const float inv = static_cast<float>(1.0 / std::sqrt(norm));
    for (int d = 0; d < dim; ++d) out[r * dim + d] *= inv;
  }
}

int ChildFaiss(int64_t ndb, int64_t nq, int threads, int k, int dim, int clusters, bool hnsw) {
  SetThreads(threads);
  DescriptorMatrix db(ndb, dim), q(nq, dim);
  if (clusters > 0) {
    FillClustered(clusters, 31, 0, ndb, dim, db.data());
    FillClustered(clusters, 32, 0, nq, dim, q.data());
  } else {
    FillUnitRows(31, 0, ndb, dim, db.data());
    FillUnitRows(32, 0, nq, dim, q.data());
  }
  SearchOptions options;
  options.num_neighbors = k;
  options.num_threads = threads;
  options.min_score = -1.0f;
  Timer t;
  const SearchResult exact = Search(q, db, options);
  const double exact_s = t.ElapsedSeconds();
  std::ostringstream e;
  e << "ndb=" << ndb << " nq=" << nq << " k=" << k << " dim=" << dim << " clusters=" << clusters;
  PrintResult("exact", exact_s, e.str());
  if (!IsFaissAvailable()) return 0;
  struct Config {
    SearchBackend backend;
    int param;
  };
  for (const Config& c : {Config{SearchBackend::kFaissIvf, 8}, Config{SearchBackend::kFaissIvf, 32},
                          Config{SearchBackend::kFaissIvf, 128}, Config{SearchBackend::kFaissHnsw, 256}}) {
    if (c.backend == SearchBackend::kFaissHnsw && !hnsw) continue;
    SearchOptions o = options;
    o.backend = c.backend;
    if (c.backend == SearchBackend::kFaissIvf) o.ivf_num_probes = c.param;
    if (c.backend == SearchBackend::kFaissHnsw) o.hnsw_ef_search = c.param;
    SearchStats stats;
    Timer ta;
    const SearchResult approx = Search(q, db, o, nullptr, nullptr, &stats);
    const double seconds = ta.ElapsedSeconds();
    std::ostringstream extra;
    extra << e.str() << " param=" << c.param << " build_s=" << stats.build_seconds
          << " search_s=" << stats.gemm_seconds << " recall_at_k=" << RecallAtK(exact, approx);
    PrintResult(SearchBackendToString(c.backend), seconds, extra.str());
  }
  return 0;
}

void WriteH5(const std::string& path, const std::string& prefix, int64_t n, int dim, uint64_t seed) {
  if (FileExists(path)) return;
  const std::string tmp = path + ".partial";
  Timer t;
  {
    auto file = DescriptorFile::Open(tmp, DescriptorFile::Mode::kCreate);
    std::vector<float> row(dim);
    for (int64_t i = 0; i < n; ++i) {
      FillUnitRows(seed, i, 1, dim, row.data());
      char name[64];
      std::snprintf(name, sizeof(name), "%s%03lld/%07lld.jpg", prefix.c_str(),
                    static_cast<long long>(i / 10000), static_cast<long long>(i));
      file->Write(name, row.data(), dim, 640, 480, DescriptorDtype::kFloat16);
      if ((i + 1) % 20000 == 0) {
        file->Flush();
        std::fprintf(stderr, "  %s: %lld / %lld written (%.0f s)\n", path.c_str(),
                     static_cast<long long>(i + 1), static_cast<long long>(n), t.ElapsedSeconds());
      }
    }
    file->Flush();
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::fprintf(stderr, "cannot rename %s\n", tmp.c_str());
    std::exit(1);
  }
  std::fprintf(stderr, "  wrote %s in %.1f s\n", path.c_str(), t.ElapsedSeconds());
}

int ChildH5(const std::string& dir, int64_t ndb, int64_t nq, int threads, int k,
            int64_t memory_limit) {
  SetThreads(threads);
  PairsFromRetrievalOptions options;
  options.descriptors_path = JoinPaths(dir, "queries.h5");
  options.db_descriptors_paths = {JoinPaths(dir, "db.h5")};
  options.search.num_neighbors = k;
  options.search.memory_limit = memory_limit;
  options.search.num_threads = threads;
  Timer t;
  const RetrievalPairs result = PairsFromRetrieval(options);
  const double seconds = t.ElapsedSeconds();
  const int64_t dim = result.stats.dim;
  const double gflop = 2.0 * nq * static_cast<double>(ndb) * dim / 1e9;
  std::ostringstream extra;
  extra << "ndb=" << result.stats.num_db << " nq=" << result.stats.num_queries << " k=" << k
        << " dim=" << dim << " threads=" << threads
        << " memory_limit_gib=" << GiB(static_cast<double>(memory_limit))
        << " list_s=" << result.stats.list_seconds << " read_s=" << result.stats.search.read_seconds
        << " gemm_s=" << result.stats.search.gemm_seconds
        << " topk_s=" << result.stats.search.topk_seconds
        << " blocks=" << result.stats.search.query_block << "x" << result.stats.search.db_block
        << " passes=" << result.stats.search.num_db_passes
        << " gflops_gemm_only=" << gflop / result.stats.search.gemm_seconds
        << " pairs=" << result.pairs.size();
  PrintResult("stream_h5", seconds, extra.str());
  return 0;
}

// Runs this executable with `args` in a child process (own peak RSS) and forwards its output.
int RunChild(const std::vector<std::string>& args) {
  std::string cmd = "/proc/self/exe";
  char self[4096];
  const ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (len > 0) {
    self[len] = '\0';
    cmd = self;
  }
  std::string line = "'" + cmd + "' child";
  for (const auto& a : args) line += " " + a;
  const int status = std::system(line.c_str());
  if (status != 0) std::fprintf(stderr, "child failed (status %d): %s\n", status, line.c_str());
  return status;
}

std::string Arg(int argc, char** argv, int i, const std::string& fallback) {
  return i < argc ? argv[i] : fallback;
}

}  // namespace
}  // namespace megaloc

int main(int argc, char** argv) {
  using namespace megaloc;
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: pairs_bench gemm [threads] | sfm N [threads k dim mem] | stream NDB NQ "
                 "[threads k dim mem] | h5 DIR NDB NQ [threads k dim mem]\n");
    return 2;
  }
  const std::string mode = argv[1];
  if (mode == "child") {
    const std::string method = Arg(argc, argv, 2, "");
    if (method == "gemm") return ChildGemm(std::stoi(Arg(argc, argv, 3, "2")));
    if (method == "ours" || method == "hloc" || method == "ours_h5") {
      return ChildSfm(method, argv[8], std::stoll(argv[3]), std::stoi(argv[4]), std::stoi(argv[5]),
                      std::stoi(argv[6]), ParseByteSize(argv[7]));
    }
    if (method == "faiss") {
      return ChildFaiss(std::stoll(argv[3]), std::stoll(argv[4]), std::stoi(argv[5]),
                        std::stoi(argv[6]), std::stoi(argv[7]), std::stoi(argv[8]),
                        std::string(argv[9]) == "1");
    }
    if (method == "stream") {
      return ChildStream(std::stoll(argv[3]), std::stoll(argv[4]), std::stoi(argv[5]),
                         std::stoi(argv[6]), std::stoi(argv[7]), ParseByteSize(argv[8]));
    }
    if (method == "h5") {
      return ChildH5(argv[3], std::stoll(argv[4]), std::stoll(argv[5]), std::stoi(argv[6]),
                     std::stoi(argv[7]), ParseByteSize(argv[8]));
    }
    return 2;
  }
  if (mode == "gemm") return RunChild({"gemm", Arg(argc, argv, 2, "2")});
  if (mode == "sfm") {
    const std::string n = Arg(argc, argv, 2, "10000");
    const std::string threads = Arg(argc, argv, 3, "2");
    const std::string k = Arg(argc, argv, 4, "50");
    const std::string dim = Arg(argc, argv, 5, "8448");
    const std::string mem = Arg(argc, argv, 6, "1GiB");
    const std::string dir = Arg(argc, argv, 7, "");
    std::string source = "-";
    if (!dir.empty()) {
      CreateDirectories(dir);
      source = JoinPaths(dir, "sfm_" + n + "_" + dim + ".h5");
      WriteH5(source, "images/", std::stoll(n), std::stoi(dim), 7);
    }
    const std::string methods = Arg(argc, argv, 8, "ours,hloc,ours_h5");
    int rc = 0;
    std::stringstream list(methods);
    std::string method;
    while (std::getline(list, method, ',')) {
      if (method == "ours_h5" && source == "-") continue;
      rc |= RunChild({method, n, threads, k, dim, mem, source});
    }
    return rc == 0 ? 0 : 1;
  }
  if (mode == "faiss") {
    return RunChild({"faiss", Arg(argc, argv, 2, "50000"), Arg(argc, argv, 3, "500"),
                     Arg(argc, argv, 4, "2"), Arg(argc, argv, 5, "50"), Arg(argc, argv, 6, "8448"),
                     Arg(argc, argv, 7, "0"), Arg(argc, argv, 8, "1")});
  }
  if (mode == "stream") {
    return RunChild({"stream", Arg(argc, argv, 2, "1000000"), Arg(argc, argv, 3, "1000"),
                     Arg(argc, argv, 4, "2"), Arg(argc, argv, 5, "50"), Arg(argc, argv, 6, "8448"),
                     Arg(argc, argv, 7, "2GiB")});
  }
  if (mode == "h5") {
    const std::string dir = Arg(argc, argv, 2, "/tmp/pairs_bench");
    const int64_t ndb = std::stoll(Arg(argc, argv, 3, "100000"));
    const int64_t nq = std::stoll(Arg(argc, argv, 4, "1000"));
    const int dim = std::stoi(Arg(argc, argv, 7, "8448"));
    CreateDirectories(dir);
    WriteH5(JoinPaths(dir, "db.h5"), "db/", ndb, dim, 21);
    WriteH5(JoinPaths(dir, "queries.h5"), "query/", nq, dim, 22);
    return RunChild({"h5", dir, std::to_string(ndb), std::to_string(nq), Arg(argc, argv, 5, "2"),
                     Arg(argc, argv, 6, "50"), Arg(argc, argv, 8, "2GiB")});
  }
  std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
  return 2;
}
