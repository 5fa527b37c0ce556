// colmap_matcher without the COLMAP binary: version parsing, command lines, process handling,
// name/disk checks, descriptor cache reuse and the pair list (--dry_run).

#include "megaloc/colmap/matcher.h"

#include <cmath>
#include <fstream>
#include <functional>
#include <set>

#include <gtest/gtest.h>

#include "megaloc/io/descriptor_store.h"
#include "megaloc/retrieval/pairs_from_retrieval.h"
#include "megaloc/retrieval/pair_graph.h"
#include "tests/common/synthetic/renderer.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/colmap/database.h"
#include "megaloc/colmap/executable.h"
#include "tests/common/testing.h"
#include "tests/plugin/colmap_test_utils.h"

namespace megaloc {
namespace {

using testing::ColmapSchemaVersion;
using testing::CreateColmapDatabase;
using testing::ThrownMessage;


TEST(ColmapVersion, ParsesHelpAndPicksFlagNames) {
  const ColmapVersion v38 = ParseColmapVersion(
      "COLMAP 3.8 -- Structure-from-Motion and Multi-View Stereo\n"
      "              (Commit Unknown on Unknown without CUDA)\n\nUsage: ...\n");
  EXPECT_EQ(v38.major, 3);
  EXPECT_EQ(v38.minor, 8);
  EXPECT_FALSE(v38.with_cuda);
  EXPECT_FALSE(v38.UsesFeatureMatchingPrefix());
  EXPECT_EQ(v38.MatchingOptionPrefix(), "SiftMatching");
  EXPECT_EQ(v38.ToString(), "3.8");
  const ColmapVersion v312 = ParseColmapVersion("COLMAP 3.12.5 -- SfM\n  (Commit abc on 2025-01-01 with CUDA)\n");
  EXPECT_TRUE(v312.with_cuda);
  EXPECT_EQ(v312.patch, 5);
  EXPECT_FALSE(v312.UsesFeatureMatchingPrefix());
  EXPECT_TRUE(ParseColmapVersion("COLMAP 3.13.0 -- SfM\n").UsesFeatureMatchingPrefix());
  EXPECT_TRUE(ParseColmapVersion("COLMAP 3.14.0.dev0 -- SfM\n").UsesFeatureMatchingPrefix());
  const ColmapVersion v4 = ParseColmapVersion("\nCOLMAP 4.1.1 -- SfM\n");
  EXPECT_EQ(v4.MatchingOptionPrefix(), "FeatureMatching");
  EXPECT_EQ(v4.ToString(), "4.1.1");
  // 4.x: the build description is on the first line.
  const ColmapVersion v421 =
      ParseColmapVersion("COLMAP 4.2.1 (Commit Unknown on Unknown without GPU support, std hash maps)\nUsage:\n");
  EXPECT_EQ(v421.ToString(), "4.2.1");
  EXPECT_FALSE(v421.with_cuda);
  EXPECT_TRUE(ParseColmapVersion("COLMAP 4.0.0 (Commit abc on 2025-06-01 with CUDA)\n").with_cuda);
  EXPECT_THROW(ParseColmapVersion("Usage: something else\n"), FormatError);
  EXPECT_THROW(ParseColmapVersion("COLMAP x.y -- SfM\n"), FormatError);
  EXPECT_THROW(ParseColmapVersion(""), FormatError);
}

TEST(ColmapMatcher, MatchesImporterCommandUsesVersionFlags) {
  ColmapMatcherOptions options;
  options.database_path = "db.db";
  options.image_path = "images";
  options.colmap_path = "/opt/colmap";
  options.num_threads = 2;
  options.colmap_extra_args = {"--SiftMatching.max_num_matches", "1000"};
  const std::vector<std::string> old_flags = MatchesImporterCommand(options, "pairs.txt", false, false);
  EXPECT_EQ(old_flags, (std::vector<std::string>{"/opt/colmap", "matches_importer", "--database_path", "db.db",
                                                 "--match_list_path", "pairs.txt", "--match_type", "pairs",
                                                 "--SiftMatching.use_gpu", "0", "--SiftMatching.num_threads", "2",
                                                 "--SiftMatching.max_num_matches", "1000"}));
  options.colmap_extra_args.clear();
  options.num_threads = -1;
  const std::vector<std::string> new_flags = MatchesImporterCommand(options, "p.txt", true, true);
  EXPECT_EQ(new_flags[8], "--FeatureMatching.use_gpu");
  EXPECT_EQ(new_flags[9], "1");
  EXPECT_EQ(new_flags[10], "--FeatureMatching.num_threads");
  EXPECT_EQ(new_flags[11], "-1");
}

TEST(ColmapMatcher, MapperCommandPerVersion) {
  ColmapMatcherOptions options;
  options.database_path = "db.db";
  options.image_path = "images";
  options.output_path = "sparse";
  options.colmap_path = "colmap";
  options.num_threads = 2;
  options.mapper = "incremental";
  const ColmapVersion v38 = ParseColmapVersion("COLMAP 3.8 -- SfM\n");
  const ColmapVersion v421 = ParseColmapVersion("COLMAP 4.2.1 (Commit Unknown on Unknown without GPU support)\n");
  EXPECT_EQ(MapperCommand(options, v38),
            (std::vector<std::string>{"colmap", "mapper", "--database_path", "db.db", "--image_path", "images",
                                      "--output_path", "sparse", "--Mapper.num_threads", "2"}));
  options.mapper = "global";
  EXPECT_EQ(MapperCommand(options, v421),
            (std::vector<std::string>{"colmap", "global_mapper", "--database_path", "db.db", "--image_path",
                                      "images", "--output_path", "sparse", "--GlobalMapper.num_threads", "2"}));
  // COLMAP < 4.0 has no global_mapper: a plain error, unless a standalone GLOMAP is given.
  const std::string what = ThrownMessage<InvalidArgument>([&] { MapperCommand(options, v38); });
  EXPECT_NE(what.find("needs COLMAP >= 4.0"), std::string::npos) << what;
  EXPECT_NE(what.find("3.8"), std::string::npos) << what;
  options.glomap_path = "/opt/glomap";
  options.num_threads = -1;
  EXPECT_EQ(MapperCommand(options, v38),
            (std::vector<std::string>{"/opt/glomap", "mapper", "--database_path", "db.db", "--image_path", "images",
                                      "--output_path", "sparse"}));
  // Options: a mapper needs an output folder and cannot run with --dry_run.
  options.mapper = "bogus";
  EXPECT_FALSE(options.Check());
  options.mapper = "global";
  options.output_path.clear();
  EXPECT_FALSE(options.Check());
  options.output_path = "sparse";
  EXPECT_TRUE(options.Check());
  options.dry_run = true;
  EXPECT_FALSE(options.Check());
}

TEST(ColmapMatcher, RegisteredImagesPerModelReadsModelHeaders) {
  const std::string dir = testing::TempDir();
  EXPECT_TRUE(RegisteredImagesPerModel(dir).empty());
  for (uint64_t model = 0; model < 2; ++model) {
    CreateDirectories(JoinPaths(dir, std::to_string(model)));
    const uint64_t count = 7 - model;
    WriteFileAtomically(JoinPaths(dir, std::to_string(model) + "/images.bin"),
                      std::string(reinterpret_cast<const char*>(&count), sizeof(count)) + "rest");
  }
  EXPECT_EQ(RegisteredImagesPerModel(dir), (std::vector<int64_t>{7, 6}));
  WriteFileAtomically(JoinPaths(dir, "1/images.bin"), "abc");
  EXPECT_THROW(RegisteredImagesPerModel(dir), FormatError);
}

TEST(ColmapExecutable, RunProcessCapturesStatusAndOutput) {
  const std::string dir = testing::TempDir();
  const std::string log = JoinPaths(dir, "sub/log.txt");
  ProcessResult ok = RunProcess({"/bin/sh", "-c", "echo out; echo err 1>&2; exit 0"}, log);
  EXPECT_TRUE(ok.Succeeded());
  ProcessResult failed = RunProcess({"/bin/sh", "-c", "echo line1; echo line2; exit 3"}, log);
  EXPECT_FALSE(failed.Succeeded());
  EXPECT_EQ(failed.exit_code, 3);
  EXPECT_EQ(failed.Describe(), "exit status 3");
  EXPECT_EQ(TailOfFile(log, 2), "line1\nline2\n");
  EXPECT_NE(ReadFileToString(log).find("err\n"), std::string::npos);
  ProcessResult killed = RunProcess({"/bin/sh", "-c", "kill -9 $$"}, log);
  EXPECT_EQ(killed.signal, 9);
  EXPECT_NE(killed.Describe().find("signal 9"), std::string::npos);
  const std::string what =
      ThrownMessage<IoError>([&] { RunProcess({JoinPaths(dir, "no_such_colmap"), "help"}, log); });
  EXPECT_NE(what.find("no_such_colmap"), std::string::npos) << what;
  EXPECT_THROW(DetectColmapVersion(JoinPaths(dir, "no_such_colmap")), IoError);
  // A program that is not COLMAP.
  EXPECT_THROW(DetectColmapVersion("/bin/true"), FormatError);
}

TEST(ColmapMatcher, DefaultPathsAreNextToTheDatabase) {
  EXPECT_EQ(DefaultDescriptorsPath("/data/project/database.db"), "/data/project/database.megaloc.h5");
  EXPECT_EQ(DefaultPairsPath("/data/project/database.db"), "/data/project/database.megaloc_pairs.txt");
  EXPECT_EQ(DefaultDescriptorsPath("/data/v1.2/db"), "/data/v1.2/db.megaloc.h5");
  EXPECT_EQ(DefaultDescriptorsPath("db.sqlite"), "db.megaloc.h5");
}

// A small project: COLMAP database, image files (contents irrelevant with a full cache) and a
// descriptor cache with hand-made unit descriptors.
struct Project {
  std::string dir, database, images, cache;
  std::vector<std::string> names;
};

// Descriptor of image i: a unit vector on a circle, so the nearest neighbours of i are i-1 and i+1
// (cyclically), then i-2 and i+2, ...
std::vector<float> CircleDescriptor(int i, int n, int dim = 16) {
  std::vector<float> d(dim, 0.0f);
  const double angle = 2.0 * M_PI * i / n;
  d[0] = static_cast<float>(std::cos(angle));
  d[1] = static_cast<float>(std::sin(angle));
  return d;
}

Project MakeProject(ColmapSchemaVersion schema, int n, bool write_cache) {
  Project p;
  p.dir = testing::TempDir();
  p.database = JoinPaths(p.dir, "database.db");
  p.images = JoinPaths(p.dir, "images");
  p.cache = DefaultDescriptorsPath(p.database);
  std::vector<std::pair<int64_t, std::string>> rows;
  for (int i = 0; i < n; ++i) {
    const std::string name = (i < n / 2 ? "seq1/" : "seq2/") + std::string("img_") + std::to_string(100 + i) + ".jpg";
    p.names.push_back(name);
    rows.emplace_back(n - i, name);  // ids in reverse name order
  }
  CreateColmapDatabase(p.database, schema, rows, {}, {});
  CreateDirectories(JoinPaths(p.images, "seq1"));
  CreateDirectories(JoinPaths(p.images, "seq2"));
  for (const std::string& name : p.names) std::ofstream(JoinPaths(p.images, name)) << "jpeg";
  if (write_cache) {
    auto file = DescriptorFile::Open(p.cache, DescriptorFile::Mode::kCreate);
    for (int i = 0; i < n; ++i) {
      const std::vector<float> d = CircleDescriptor(i, n);
      file->Write(p.names[i], d.data(), static_cast<int>(d.size()), 640, 480, DescriptorDtype::kFloat32);
    }
    file->Flush();
  }
  return p;
}

ColmapMatcherOptions DryRunOptions(const Project& p, int k) {
  ColmapMatcherOptions options;
  options.database_path = p.database;
  options.image_path = p.images;
  options.num_matched = k;
  options.dry_run = true;
  options.num_threads = 1;
  return options;
}

std::set<std::pair<std::string, std::string>> Unordered(const std::vector<ImagePair>& pairs) {
  std::set<std::pair<std::string, std::string>> out;
  for (const ImagePair& p : pairs) out.insert(std::minmax(p.name1, p.name2));
  return out;
}

class ColmapMatcherDryRun : public ::testing::TestWithParam<ColmapSchemaVersion> {};

TEST_P(ColmapMatcherDryRun, WritesRetrievalPairsFromTheCache) {
  const int n = 10;
  const Project p = MakeProject(GetParam(), n, true);
  ColmapMatcherOptions options = DryRunOptions(p, 2);
  const ColmapMatcherStats stats = MatchColmapDatabase(options);
  EXPECT_EQ(stats.num_database_images, n);
  EXPECT_EQ(stats.num_cached, n);
  EXPECT_EQ(stats.num_extracted, 0);
  EXPECT_EQ(stats.descriptor_dim, 16);
  EXPECT_FALSE(stats.colmap_ran);
  EXPECT_TRUE(stats.missing_on_disk.empty());
  EXPECT_TRUE(stats.not_in_database.empty());
  EXPECT_EQ(stats.pairs_path, DefaultPairsPath(p.database));
  const std::vector<ImagePair> pairs = ReadPairs(stats.pairs_path);
  // Circle descriptors: the 2 nearest neighbours of i are i +- 1, so the unique pairs are the n
  // edges of the cycle.
  std::set<std::pair<std::string, std::string>> expected;
  for (int i = 0; i < n; ++i) expected.insert(std::minmax(p.names[i], p.names[(i + 1) % n]));
  EXPECT_EQ(Unordered(pairs), expected);
  EXPECT_EQ(pairs.size(), static_cast<size_t>(n));  // de-duplicated
  EXPECT_EQ(stats.num_pairs, n);
  EXPECT_EQ(stats.num_retrieval_pairs, 2 * n);
  // Never a self pair, every name is a database name.
  const std::set<std::string> name_set(p.names.begin(), p.names.end());
  for (const ImagePair& pair : pairs) {
    EXPECT_NE(pair.name1, pair.name2);
    EXPECT_EQ(name_set.count(pair.name1), 1u);
    EXPECT_EQ(name_set.count(pair.name2), 1u);
  }
}

INSTANTIATE_TEST_SUITE_P(Schemas, ColmapMatcherDryRun,
                         ::testing::Values(ColmapSchemaVersion::k38, ColmapSchemaVersion::k311,
                                           ColmapSchemaVersion::k4x),
                         testing::SchemaName);

TEST(ColmapMatcher, PairsAreThePairsEngineOutput) {
  const int n = 12;
  const Project p = MakeProject(ColmapSchemaVersion::k38, n, false);
  // Non-trivial descriptors: deterministic pseudo-random unit vectors.
  {
    auto file = DescriptorFile::Open(p.cache, DescriptorFile::Mode::kCreate);
    uint64_t state = 12345;
    for (int i = 0; i < n; ++i) {
      std::vector<float> d(32);
      double norm = 0;
      for (float& x : d) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        x = static_cast<float>(static_cast<int>((state >> 33) % 2001) - 1000) / 1000.0f;
        norm += x * x;
      }
      for (float& x : d) x = static_cast<float>(x / std::sqrt(norm));
      file->Write(p.names[i], d.data(), 32, 100, 100, DescriptorDtype::kFloat16);
    }
  }
  for (int k : {1, 3, 5}) {
    ColmapMatcherOptions options = DryRunOptions(p, k);
    options.min_score = 0.0f;  // hloc's setting, so that the engine's defaults apply
    options.pairs_path = JoinPaths(p.dir, "pairs_k" + std::to_string(k) + ".txt");
    MatchColmapDatabase(options);
    PairsFromRetrievalOptions engine;
    engine.descriptors_path = p.cache;
    engine.unique = true;
    engine.search.num_neighbors = k;
    engine.search.min_score = 0.0f;
    std::vector<ImagePair> expected;
    for (const ScoredImagePair& s : PairsFromRetrieval(engine).pairs) expected.push_back(s.pair);
    EXPECT_EQ(ReadPairs(options.pairs_path), expected) << "k = " << k;
  }
  // Sequential neighbours (one sequence per folder: seq1/, seq2/) are added after the retrieval
  // pairs, duplicates dropped.
  ColmapMatcherOptions options = DryRunOptions(p, 1);
  options.sequential_overlap = 2;
  const ColmapMatcherStats stats = MatchColmapDatabase(options);
  const std::vector<ImagePair> pairs = ReadPairs(stats.pairs_path);
  const std::set<std::pair<std::string, std::string>> got = Unordered(pairs);
  auto same_folder = [&](int a, int b) { return (a < n / 2) == (b < n / 2); };
  for (int i = 0; i + 1 < n; ++i) {
    if (same_folder(i, i + 1)) { EXPECT_EQ(got.count(std::minmax(p.names[i], p.names[i + 1])), 1u); }
    if (i + 2 < n && same_folder(i, i + 2)) {
      EXPECT_EQ(got.count(std::minmax(p.names[i], p.names[i + 2])), 1u);
    }
  }
  EXPECT_EQ(got.size(), pairs.size());
  EXPECT_EQ(stats.num_sequential_pairs, 2 * (2 * (n / 2) - 3));
  EXPECT_LE(stats.num_pairs, stats.num_retrieval_pairs + stats.num_sequential_pairs);
  // k = 1 + --cover_bridges: one component, no bridge (any one pair may fail verification).
  options = DryRunOptions(p, 1);
  options.cover_bridges = true;
  options.pairs_path = JoinPaths(p.dir, "bridges.txt");
  const ColmapMatcherStats covered = MatchColmapDatabase(options);
  const std::vector<ImagePair> covered_pairs = ReadPairs(options.pairs_path);
  EXPECT_EQ(covered.graph.num_components, 1);
  EXPECT_GT(covered.num_bridge_pairs, 0);
  EXPECT_EQ(static_cast<int64_t>(covered_pairs.size()), covered.graph.num_pairs);
  EXPECT_TRUE(FindBridges(p.names, covered_pairs).empty());
  // k >= n - 1 covers every pair.
  options = DryRunOptions(p, 100);
  options.pairs_path = JoinPaths(p.dir, "all.txt");
  MatchColmapDatabase(options);
  EXPECT_EQ(ReadPairs(options.pairs_path).size(), static_cast<size_t>(n * (n - 1) / 2));
}

TEST(ColmapMatcher, ReportsNameAndDiskMismatches) {
  const int n = 6;
  Project p = MakeProject(ColmapSchemaVersion::k38, n, false);
  // On disk but not in the database: reported, ignored.
  std::ofstream(JoinPaths(p.images, "extra.png")) << "png";
  // In the database but not on disk.
  std::remove(JoinPaths(p.images, p.names[4]).c_str());
  std::remove(JoinPaths(p.images, p.names[5]).c_str());
  ColmapMatcherOptions options = DryRunOptions(p, 2);

  // Nothing cached and no weights: extraction needed -> clear error. Missing images first.
  std::string what = ThrownMessage<InvalidArgument>([&] { MatchColmapDatabase(options); });
  EXPECT_NE(what.find("2 database image(s) are neither under --image_path"), std::string::npos) << what;
  EXPECT_NE(what.find(p.names[4]), std::string::npos) << what;
  EXPECT_NE(what.find("--skip_missing_images"), std::string::npos) << what;
  EXPECT_FALSE(FileExists(DefaultPairsPath(p.database)));

  options.skip_missing_images = true;
  what = ThrownMessage<InvalidArgument>([&] { MatchColmapDatabase(options); });
  EXPECT_NE(what.find("pass --weights_path"), std::string::npos) << what;

  // Extraction only for what is on disk and not cached (a stand-in extractor that writes circle
  // descriptors records what it was asked for).
  std::vector<std::string> requested;
  auto extractor = [&](const ColmapMatcherOptions&, const std::vector<std::string>& names, const std::string& path) {
    requested.insert(requested.end(), names.begin(), names.end());
    auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kAppend);
    for (const std::string& name : names) {
      const int i = static_cast<int>(std::find(p.names.begin(), p.names.end(), name) - p.names.begin());
      const std::vector<float> d = CircleDescriptor(i, n);
      file->Write(name, d.data(), 16, 10, 10, DescriptorDtype::kFloat16);
    }
    return static_cast<int64_t>(names.size());
  };
  options.model.weights_path = "unused.safetensors";
  ColmapMatcherStats stats = MatchColmapDatabase(options, extractor);
  EXPECT_EQ(requested, (std::vector<std::string>{p.names[0], p.names[1], p.names[2], p.names[3]}));
  EXPECT_EQ(stats.num_extracted, 4);
  EXPECT_EQ(stats.num_cached, 0);
  EXPECT_EQ(stats.missing_on_disk, (std::vector<std::string>{p.names[4], p.names[5]}));
  EXPECT_EQ(stats.skipped_images, stats.missing_on_disk);
  EXPECT_EQ(stats.not_in_database, (std::vector<std::string>{"extra.png"}));
  EXPECT_EQ(stats.num_matched_images, 4);
  for (const ImagePair& pair : ReadPairs(stats.pairs_path)) {
    EXPECT_NE(pair.name1, p.names[4]);
    EXPECT_NE(pair.name2, p.names[5]);
  }

  // Second run: everything cached, the extractor is not called. A cached image that is missing on
  // disk is still matched.
  requested.clear();
  {
    auto file = DescriptorFile::Open(p.cache, DescriptorFile::Mode::kAppend);
    const std::vector<float> d = CircleDescriptor(4, n);
    file->Write(p.names[4], d.data(), 16, 10, 10, DescriptorDtype::kFloat16);
  }
  stats = MatchColmapDatabase(options, extractor);
  EXPECT_TRUE(requested.empty());
  EXPECT_EQ(stats.num_cached, 5);
  EXPECT_EQ(stats.num_matched_images, 5);
  EXPECT_EQ(stats.skipped_images, (std::vector<std::string>{p.names[5]}));
}

TEST(ColmapMatcher, ClearErrorsForBadInputs) {
  Project p = MakeProject(ColmapSchemaVersion::k38, 4, true);
  ColmapMatcherOptions options = DryRunOptions(p, 2);
  options.image_path = JoinPaths(p.dir, "no_such_dir");
  std::string what = ThrownMessage<IoError>([&] { MatchColmapDatabase(options); });
  EXPECT_NE(what.find("no_such_dir"), std::string::npos) << what;

  options = DryRunOptions(p, 2);
  options.database_path = JoinPaths(p.dir, "nope.db");
  what = ThrownMessage<IoError>([&] { MatchColmapDatabase(options); });
  EXPECT_NE(what.find("nope.db"), std::string::npos) << what;

  // A corrupt cache is reported, never overwritten.
  options = DryRunOptions(p, 2);
  { std::ofstream(p.cache, std::ios::trunc) << "not hdf5"; }
  what = ThrownMessage<FormatError>([&] { MatchColmapDatabase(options); });
  EXPECT_NE(what.find(p.cache), std::string::npos) << what;
  EXPECT_EQ(ReadFileToString(p.cache), "not hdf5");

  // Names with whitespace cannot go into a pair list.
  const std::string db2 = JoinPaths(p.dir, "spaces.db");
  CreateColmapDatabase(db2, ColmapSchemaVersion::k38, {{1, "a b.jpg"}, {2, "c.jpg"}}, {}, {});
  options.database_path = db2;
  what = ThrownMessage<InvalidArgument>([&] { MatchColmapDatabase(options); });
  EXPECT_NE(what.find("'a b.jpg'"), std::string::npos) << what;

  // Empty database.
  const std::string db3 = JoinPaths(p.dir, "empty.db");
  CreateColmapDatabase(db3, ColmapSchemaVersion::k4x, {}, {}, {});
  options.database_path = db3;
  what = ThrownMessage<InvalidArgument>([&] { MatchColmapDatabase(options); });
  EXPECT_NE(what.find("no images"), std::string::npos) << what;

  options = DryRunOptions(p, 0);
  EXPECT_THROW(MatchColmapDatabase(options), InvalidArgument);
}

}  // namespace
}  // namespace megaloc

namespace megaloc {
namespace {

// With the real extraction library and the tiny model (no COLMAP needed).
class ColmapMatcherExtraction : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir();
    images_ = JoinPaths(dir_, "images");
    database_ = JoinPaths(dir_, "database.db");
    synthetic::SyntheticSceneOptions scene;
    scene.num_views = 3;
    scene.width = 96;
    scene.height = 72;
    scene.focal_length = 80;
    scene.supersampling = 1;
    scene.extension = ".png";
    scene.texture.pixels_per_meter = 16;
    synthetic::WriteImages(synthetic::GenerateSyntheticScene(scene).views, images_);
    std::ofstream(JoinPaths(images_, "broken.jpg")) << "\xff\xd8\xff\xe0 truncated";
    CreateColmapDatabase(database_, ColmapSchemaVersion::k38,
                         {{1, "view_000.png"}, {2, "view_001.png"}, {3, "view_002.png"}, {4, "broken.jpg"}}, {}, {});
  }

  ColmapMatcherOptions Options() const {
    ColmapMatcherOptions options;
    options.database_path = database_;
    options.image_path = images_;
    options.num_matched = 5;
    options.dry_run = true;
    options.num_threads = 1;
    options.num_workers = 1;
    options.model.weights_path = testing::TestDataPath("megaloc_tiny/megaloc_tiny_v2.safetensors");
    options.model.num_threads = 1;
    return options;
  }

  std::string dir_, images_, database_;
};

TEST_F(ColmapMatcherExtraction, BadImagesAreReportedAndGoodOnesKept) {
  ColmapMatcherOptions options = Options();
  const std::string what = ThrownMessage<ImageError>([&] { MatchColmapDatabase(options); });
  EXPECT_NE(what.find("1 database image(s) could not be processed"), std::string::npos) << what;
  EXPECT_NE(what.find("broken.jpg"), std::string::npos) << what;
  // The good descriptors were written before the error.
  const std::string cache = DefaultDescriptorsPath(database_);
  EXPECT_EQ(DescriptorFile::Open(cache, DescriptorFile::Mode::kRead)->ListNames(),
            (std::vector<std::string>{"view_000.png", "view_001.png", "view_002.png"}));
  EXPECT_FALSE(FileExists(DefaultPairsPath(database_)));

  options.skip_missing_images = true;
  const ColmapMatcherStats stats = MatchColmapDatabase(options);
  EXPECT_EQ(stats.num_cached, 3);
  EXPECT_EQ(stats.num_matched_images, 3);
  EXPECT_EQ(stats.skipped_images, (std::vector<std::string>{"broken.jpg"}));
  EXPECT_EQ(stats.descriptor_dim, 48);
  EXPECT_EQ(ReadPairs(stats.pairs_path).size(), 3u);

  // A cache in a directory that does not exist yet.
  options.descriptors_path = JoinPaths(dir_, "cache/sub/descriptors.h5");
  EXPECT_EQ(MatchColmapDatabase(options).num_extracted, 3);
  EXPECT_TRUE(FileExists(options.descriptors_path));
}

TEST_F(ColmapMatcherExtraction, CacheFromOtherSettingsIsRefused) {
  std::remove(JoinPaths(images_, "broken.jpg").c_str());
  const std::string db2 = JoinPaths(dir_, "three.db");
  CreateColmapDatabase(db2, ColmapSchemaVersion::k4x, {{1, "view_000.png"}, {2, "view_001.png"}, {3, "view_002.png"}},
                       {}, {});
  ColmapMatcherOptions options = Options();
  options.database_path = db2;
  ColmapMatcherStats stats = MatchColmapDatabase(options);
  EXPECT_EQ(stats.num_extracted, 3);
  const std::string cache = DefaultDescriptorsPath(db2);
  // The cache records its provenance; a full cache is checked against the current settings.
  options.preprocessing.mode = ResizeMode::kNative;
  std::string what = ThrownMessage<FormatError>([&] { MatchColmapDatabase(options); });
  EXPECT_NE(what.find("preprocessing"), std::string::npos) << what;
  EXPECT_NE(what.find(cache), std::string::npos) << what;
  options = Options();
  options.database_path = db2;
  const std::string other_weights = JoinPaths(dir_, "other.safetensors");
  std::ofstream(other_weights) << "different bytes";
  options.model.weights_path = other_weights;
  what = ThrownMessage<FormatError>([&] { MatchColmapDatabase(options); });
  EXPECT_NE(what.find("weights_sha256="), std::string::npos) << what;
  // Without --weights_path a full cache is used as is.
  options.model.weights_path.clear();
  stats = MatchColmapDatabase(options);
  EXPECT_EQ(stats.num_cached, 3);
  EXPECT_EQ(stats.num_extracted, 0);
}

}  // namespace
}  // namespace megaloc
