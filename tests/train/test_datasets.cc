// Samplers and readers on tiny synthetic datasets written in each source's real on-disk layout.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "megaloc/train/augment.h"
#include "megaloc/train/datasets.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "tests/common/testing.h"
#include "tests/train/synthetic_sources.h"

namespace megaloc {
namespace {

namespace fs = std::filesystem;
using namespace train_testing;  // NOLINT

// ------------------------------------------------------------------------------------------------
// GSV-Cities

TEST(GsvCities, ReaderAndSamplerInvariants) {
  const std::string root = MakeGsv(testing::TempDir() + "/gsv", 12);
  GsvCitiesDataset ds = LoadGsvCities(root, {"Boston", "PRS"});
  ASSERT_EQ(ds.places.size(), 2u);
  EXPECT_EQ(ds.places[0].size(), 9u);  // 12 places, 3 of them with 3 images
  EXPECT_EQ(ds.num_dropped_places, 6);
  EXPECT_EQ(ds.places[1][0].label, 100000 + 1);  // place 1 of city index 1 (place 0 has 3 images)
  SamplerOptions o;
  o.places_per_batch = 4;
  o.seed = 7;
  auto sampler = MakeGsvCitiesSampler(ds, o);
  // 18 places / 4 = 4 batches per epoch; within an epoch no place repeats; city-major order.
  std::set<int64_t> seen;
  std::vector<int64_t> first_labels;
  for (int t = 0; t < 4; ++t) {
    const auto sbs = sampler->Sample(t);
    ASSERT_EQ(sbs.size(), 1u);
    const SubBatchSpec& sb = sbs[0];
    ASSERT_EQ(sb.images.size(), 16u);
    for (int p = 0; p < 4; ++p) {
      std::set<std::string> files;
      for (int k = 0; k < 4; ++k) {
        EXPECT_EQ(sb.labels[p * 4 + k], sb.labels[p * 4]);
        files.insert(sb.images[p * 4 + k].path);
        // The file belongs to that place.
        const int64_t label = sb.labels[p * 4];
        char prefix[64];
        std::snprintf(prefix, sizeof(prefix), "_%07d_", static_cast<int>(label % 100000));
        EXPECT_NE(fs::path(sb.images[p * 4 + k].path).filename().string().find(prefix), std::string::npos);
      }
      EXPECT_EQ(files.size(), 4u) << "4 distinct images per place";
      EXPECT_TRUE(seen.insert(sb.labels[p * 4]).second) << "place repeated within an epoch";
      first_labels.push_back(sb.labels[p * 4]);
    }
  }
  // City-major: labels < 1e5 (Boston) come before labels >= 1e5 (PRS).
  for (size_t i = 1; i < first_labels.size(); ++i) {
    EXPECT_LE(first_labels[i - 1] / 100000, first_labels[i] / 100000);
  }
  // Deterministic per iteration (resume), different across epochs.
  EXPECT_EQ(sampler->Sample(2)[0].labels, MakeGsvCitiesSampler(ds, o)->Sample(2)[0].labels);
  EXPECT_NE(sampler->Sample(0)[0].labels, sampler->Sample(4)[0].labels);
}

TEST(GsvCities, BadLayoutIsAClearError) {
  const std::string root = testing::TempDir() + "/gsv_bad";
  WriteText(root + "/Dataframes/Boston.csv", "place_id,year,month,northdeg,city_id,lat,lon,panoid\n0,1,1,1,Boston,1,1,x\n");
  try {
    LoadGsvCities(root, {"Boston"});
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("Images/Boston"), std::string::npos) << e.what();
  }
  WriteImage(root + "/Images/Boston/notagsvname.jpg");
  EXPECT_THROW(LoadGsvCities(root, {"Boston"}), FormatError);
  EXPECT_THROW(LoadGsvCities(root, {"London"}), IoError);  // missing CSV
}

// ------------------------------------------------------------------------------------------------
// MSLS + CliqueMining

TEST(Msls, CliqueMiningInvariants) {
  const std::string root = testing::TempDir() + "/msls";
  MakeMslsCity(root, "trondheim", 0.0, 6);
  MakeMslsCity(root, "london", 1e6, 5);
  MakeMslsCity(root, "sf", 2e6, 4);  // validation city, excluded
  MslsDataset ds = LoadMsls(root, {"cph", "sf"});
  ASSERT_EQ(ds.cities.size(), 2u);
  EXPECT_EQ(ds.clusters.size(), 11u);
  EXPECT_EQ(ds.images.size(), 11u * 6 - 2);  // one pano dropped per city
  for (const auto& im : ds.images) EXPECT_EQ(im.path.find("query_0_0"), std::string::npos);
  const auto reps = MslsRepresentativeImages(ds, 3);
  ASSERT_EQ(reps.size(), ds.clusters.size());
  std::vector<float> desc(ds.clusters.size() * 4);
  for (size_t i = 0; i < desc.size(); ++i) desc[i] = static_cast<float>(std::sin(1.7 * i));
  CliqueMiningOptions cm;
  cm.num_batches = 5;
  cm.sampled_similar_places = 3;
  SamplerOptions o;
  o.places_per_batch = 6;
  o.seed = 1;
  auto sampler = MakeMslsCliqueSampler(ds, desc, 4, cm, o);
  std::map<std::string, std::pair<double, double>> pos;
  for (const auto& im : ds.images) pos[im.path] = {im.easting, im.northing};
  for (int t = 0; t < 7; ++t) {
    const SubBatchSpec sb = sampler->Sample(t)[0];
    ASSERT_EQ(sb.images.size(), 24u);
    for (int a = 0; a < 24; ++a) {
      EXPECT_EQ(sb.labels[a], a / 4);
      for (int b = a + 1; b < 24; ++b) {
        const auto& pa = pos.at(sb.images[a].path);
        const auto& pb = pos.at(sb.images[b].path);
        const double d = std::hypot(pa.first - pb.first, pa.second - pb.second);
        if (a / 4 == b / 4) {
          EXPECT_LT(d, 25.0) << "same place images must be pairwise < 25 m";
          EXPECT_NE(sb.images[a].path, sb.images[b].path);
        } else {
          EXPECT_GE(d, 25.0) << "different places must be >= 25 m apart";
        }
      }
    }
  }
  // Too many places for the data -> clear error, not a hang.
  o.places_per_batch = 40;
  EXPECT_THROW(MakeMslsCliqueSampler(ds, desc, 4, cm, o), InvalidArgument);
}

// ------------------------------------------------------------------------------------------------
// COLMAP binary + MegaScenes

TEST(ColmapBinary, RoundTripAndCorruption) {
  const std::string dir = testing::TempDir() + "/colmap_model";
  MakeColmapModel(dir, {"a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg", "f.jpg"});
  const auto cams = ReadColmapCamerasBinary(dir + "/cameras.bin");
  ASSERT_EQ(cams.size(), 1u);
  EXPECT_EQ(cams[0].params.size(), 4u);
  const auto images = ReadColmapImagesBinary(dir + "/images.bin");
  ASSERT_EQ(images.size(), 6u);
  EXPECT_EQ(images[4].name, "e.jpg");
  EXPECT_EQ(images[4].point3D_ids.size(), 101u);
  EXPECT_EQ(images[5].point3D_ids.size(), 0u);
  EXPECT_EQ(images[5].num_points2D, 2u);
  const auto pts = ReadColmapPoints3DBinary(dir + "/points3D.bin");
  ASSERT_EQ(pts.size(), 200u);
  EXPECT_EQ(pts[0].track_length, 5u);
  // Overlap ratios.
  EXPECT_DOUBLE_EQ(PointOverlap(images[0].point3D_ids, images[4].point3D_ids, OverlapDenominator::kMin, 200), 0.01);
  EXPECT_DOUBLE_EQ(PointOverlap(images[0].point3D_ids, images[4].point3D_ids, OverlapDenominator::kUnion, 200), 1.0 / 200);
  EXPECT_DOUBLE_EQ(PointOverlap(images[0].point3D_ids, images[1].point3D_ids, OverlapDenominator::kNumPoints, 200), 0.5);
  // Truncated file.
  std::string bytes = ReadFileToString(dir + "/images.bin");
  WriteFileAtomically(dir + "/images_trunc.bin", bytes.substr(0, bytes.size() - 5));
  try {
    ReadColmapImagesBinary(dir + "/images_trunc.bin");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("images_trunc.bin"), std::string::npos);
  }
}

TEST(MegaScenes, QuadrupletsShareAtLeastOnePercent) {
  const std::string root = testing::TempDir() + "/megascenes";
  const std::vector<std::string> scenes = {"000/001", "000/002", "001/000"};
  for (const auto& s : scenes) {
    std::vector<std::string> names;
    for (int i = 0; i < 6; ++i) names.push_back("commons/Sub/0/pictures/img" + std::to_string(i) + ".jpg");
    MakeColmapModel(root + "/reconstruct/" + s + "/sparses/0", names);
    for (int i = 0; i < 6; ++i) WriteImage(root + "/images/" + s + "/" + names[i]);
  }
  MegaScenesOptions mo;
  // min denominator: image 4 shares exactly 1 % with 0..3 (1 of 100) but only with 0..3 -> the only
  // quadruplet per model is {0,1,2,3} or includes 4 with three of 0..3 (4 shares 1/100 with each).
  mo.min_overlap = 0.02;  // excludes image 4
  GroupedQuadruplets q = LoadMegaScenes(root, mo, 4, 0);
  ASSERT_EQ(q.groups.size(), 3u);
  EXPECT_EQ(q.groups[0], "000001");
  for (const auto& quad : q.quadruplets) {
    std::set<std::string> names(quad.images.begin(), quad.images.end());
    EXPECT_EQ(names.size(), 4u);
    for (const auto& n : names) {
      EXPECT_EQ(n.find("img4"), std::string::npos);
      EXPECT_EQ(n.find("img5"), std::string::npos);
      EXPECT_TRUE(FileExists(n)) << n;
    }
  }
  // The union denominator puts 0..3 at 100 %, 4 at 0.5 %: same result with 1 %.
  mo.min_overlap = 0.01;
  mo.overlap_denominator = "union";
  q = LoadMegaScenes(root, mo, 4, 0);
  for (const auto& quad : q.quadruplets)
    for (const auto& n : quad.images) EXPECT_EQ(n.find("img4"), std::string::npos);
  SamplerOptions o;
  o.places_per_batch = 3;
  auto sampler = MakeQuadrupletSampler("megascenes", q, o);
  const SubBatchSpec sb = sampler->Sample(5)[0];
  ASSERT_EQ(sb.images.size(), 12u);
  std::set<int64_t> labels(sb.labels.begin(), sb.labels.end());
  EXPECT_EQ(labels.size(), 3u) << "one class per scene id";
  o.places_per_batch = 4;
  EXPECT_THROW(MakeQuadrupletSampler("megascenes", q, o), InvalidArgument);
}

// ------------------------------------------------------------------------------------------------
// ScanNet

std::string PoseText(double yaw_deg, double x) {
  const double a = yaw_deg * M_PI / 180.0;
  char buf[512];
  std::snprintf(buf, sizeof(buf), "%.12f 0 %.12f %.6f\n0 1 0 0\n%.12f 0 %.12f 0\n0 0 0 1\n", std::cos(a),
                std::sin(a), x, -std::sin(a), std::cos(a));
  return buf;
}

std::array<double, 9> RotY(double deg) {
  const double a = deg * M_PI / 180.0;
  return {std::cos(a), 0, std::sin(a), 0, 1, 0, -std::sin(a), 0, std::cos(a)};
}

TEST(ScanNet, AngleRule29vs31) {
  EXPECT_NEAR(CameraAngleDeg(RotY(0), RotY(29), "rotation"), 29.0, 1e-9);
  EXPECT_NEAR(CameraAngleDeg(RotY(0), RotY(31), "optical_axis"), 31.0, 1e-9);
  EXPECT_NEAR(CameraAngleDeg(RotY(10), RotY(-21), "rotation"), 31.0, 1e-9);
  EXPECT_THROW(CameraAngleDeg(RotY(0), RotY(1), "bogus"), InvalidArgument);
}

TEST(ScanNet, QuadrupletsRespectDistanceAndAngle) {
  const std::string root = testing::TempDir() + "/scannet";
  // Per scan: frames at yaw 0, 29, 31, 58, 5, 14 deg and x = 0..; frame 6 invalid (-inf).
  const std::vector<std::string> scans = {"scene0000_00", "scene0000_01", "scene0001_00", "scene0002_00"};
  const std::vector<double> yaws = {0, 29, 31, 58, 5, 14, 0, 3};
  for (const auto& s : scans) {
    for (size_t i = 0; i < yaws.size(); ++i) {
      const std::string dir = root + "/scans/" + s;
      if (i == 6) {
        WriteText(dir + "/pose/6.txt", "-inf -inf -inf -inf\n-inf -inf -inf -inf\n-inf -inf -inf -inf\n-inf -inf -inf -inf\n");
      } else {
        WriteText(dir + "/pose/" + std::to_string(i) + ".txt", PoseText(yaws[i], 2.0 * i));
      }
      WriteImage(dir + "/color/" + std::to_string(i) + ".jpg");
    }
  }
  ScanNetOptions so;
  GroupedQuadruplets q = LoadScanNet(root, so, 4, 0);
  EXPECT_EQ(q.groups, (std::vector<std::string>{"scene0000", "scene0001", "scene0002"}));
  std::map<std::string, int> index_of;
  for (size_t i = 0; i < yaws.size(); ++i) index_of[std::to_string(i) + ".jpg"] = static_cast<int>(i);
  for (const auto& quad : q.quadruplets) {
    ASSERT_EQ(quad.images.size(), 4u);
    for (size_t a = 0; a < 4; ++a) {
      EXPECT_EQ(quad.images[a].find("/6.jpg"), std::string::npos) << "invalid pose used";
      for (size_t b = a + 1; b < 4; ++b) {
        const int ia = index_of.at(fs::path(quad.images[a]).filename().string());
        const int ib = index_of.at(fs::path(quad.images[b]).filename().string());
        EXPECT_LT(std::abs(yaws[ia] - yaws[ib]), 30.0);
        EXPECT_LT(std::abs(2.0 * ia - 2.0 * ib), 10.0);
        EXPECT_EQ(fs::path(quad.images[a]).parent_path(), fs::path(quad.images[b]).parent_path())
            << "a quadruplet stays within one scan";
      }
    }
  }
  // Quadruplets of a scan are disjoint.
  std::set<std::string> used;
  for (const auto& quad : q.quadruplets)
    for (const auto& im : quad.images) EXPECT_TRUE(used.insert(im).second);
  // Split file restricts scans.
  WriteText(root + "/split.txt", "scene0001_00\n");
  so.split_file = root + "/split.txt";
  EXPECT_EQ(LoadScanNet(root, so, 4, 0).groups, (std::vector<std::string>{"scene0001"}));
  SamplerOptions o;
  o.places_per_batch = 3;
  so.split_file.clear();
  const SubBatchSpec sb = MakeQuadrupletSampler("scannet", LoadScanNet(root, so, 4, 0), o)->Sample(0)[0];
  EXPECT_EQ(std::set<int64_t>(sb.labels.begin(), sb.labels.end()).size(), 3u);
}

// ------------------------------------------------------------------------------------------------
// SF-XL + EigenPlaces

TEST(EigenPlaces, CropOffsetsWithWrapAround) {
  // heading 180 -> yaw_off 0; bearing 0 -> crop_off 0; x0 = -256 mod 3328 = 3072 (wraps).
  EXPECT_EQ(PanoramaCropX0(0.0, 180.0, 3328, 512), 3072);
  // bearing 90 -> crop_off 832; heading 0 -> yaw_off 1664 -> 1664 + 832 - 256 = 2240.
  EXPECT_EQ(PanoramaCropX0(90.0, 0.0, 3328, 512), 2240);
  // heading 270 -> (180 - 270) mod 360 = 270 -> 2496; bearing 200 -> int(1848.88) = 1848;
  // (2496 + 1848 - 256) mod 3328 = 760.
  EXPECT_EQ(PanoramaCropX0(200.0, 270.0, 3328, 512), 760);
  const double o[2] = {0, 0}, east[2] = {10, 0}, south[2] = {0, -5};
  EXPECT_DOUBLE_EQ(BearingDeg(o, east), 90.0);
  EXPECT_DOUBLE_EQ(BearingDeg(o, south), 180.0);

  // Column ramp 3328 x 512: pixel (x, y) = (x % 256, x / 256, 7). The crop must start at x0 and wrap.
  const std::string path = testing::TempDir() + "/ramp.png";
  cv::Mat ramp(512, 3328, CV_8UC3);
  for (int y = 0; y < 512; ++y)
    for (int x = 0; x < 3328; ++x) ramp.at<cv::Vec3b>(y, x) = cv::Vec3b(7, x / 256, x % 256);  // BGR
  ASSERT_TRUE(cv::imwrite(path, ramp));
  ImageRef ref;
  ref.path = path;
  ref.panorama_crop = true;
  ref.crop_bearing_deg = 0.0;
  ref.pano_heading_deg = 180.0;
  RandAugmentOptions no_aug;
  no_aug.enabled = false;
  const std::vector<float> img = LoadTrainingImage(ref, 512, no_aug, 0);
  ASSERT_EQ(img.size(), 3u * 512 * 512);
  for (int j : {0, 100, 255, 256, 300, 511}) {
    const int x = (3072 + j) % 3328;
    const float r = img[0 * 512 * 512 + 10 * 512 + j] * 0.229f + 0.485f;
    const float g = img[1 * 512 * 512 + 10 * 512 + j] * 0.224f + 0.456f;
    EXPECT_NEAR(r * 255.0f, x % 256, 1e-3) << "column " << j;
    EXPECT_NEAR(g * 255.0f, x / 256, 1e-3) << "column " << j;
  }
}

TEST(EigenPlaces, GroupsClassesAndFocalPoints) {
  // A grid of 6 x 6 cells of 15 m; each cell has 5 panoramas on a line along east (street), one
  // cell has only 4 (dropped).
  std::vector<SfxlPanorama> panos;
  for (int ce = 0; ce < 6; ++ce)
    for (int cn = 0; cn < 6; ++cn) {
      const int n = (ce == 2 && cn == 3) ? 4 : 5;
      for (int k = 0; k < n; ++k) {
        SfxlPanorama p;
        p.path = "p" + std::to_string(ce) + "_" + std::to_string(cn) + "_" + std::to_string(k);
        p.easting = 549990 + 15.0 * ce + 1.0 + 2.5 * k;
        p.northing = 4180005 + 15.0 * cn + 7.0 + 0.01 * k * k;
        p.heading_deg = 10.0 * k;
        panos.push_back(p);
      }
    }
  EigenPlacesOptions eo;
  EigenPlacesDataset ds = BuildEigenPlaces(panos, eo);
  ASSERT_EQ(ds.groups.size(), 9u);
  size_t classes = 0;
  for (const auto& g : ds.groups) {
    classes += g.size();
    for (size_t a = 0; a < g.size(); ++a) {
      const auto& ca = g[a];
      EXPECT_GE(ca.panoramas.size(), 5u);
      double mu[2] = {0, 0};
      for (int i : ca.panoramas) mu[0] += ds.panoramas[i].easting / ca.panoramas.size(), mu[1] += ds.panoramas[i].northing / ca.panoramas.size();
      // Lateral focal point 10 m across the street (north/south), frontal along it.
      EXPECT_NEAR(std::hypot(ca.focal_lateral[0] - mu[0], ca.focal_lateral[1] - mu[1]), 10.0, 1e-9);
      EXPECT_NEAR(std::hypot(ca.focal_frontal[0] - mu[0], ca.focal_frontal[1] - mu[1]), 10.0, 1e-9);
      EXPECT_LT(std::abs(ca.focal_lateral[0] - mu[0]), 0.5);
      EXPECT_LT(std::abs(ca.focal_frontal[1] - mu[1]), 0.5);
      for (size_t b = a + 1; b < g.size(); ++b) {
        // Same-group classes: panoramas >= (N-1)*M = 30 m apart on at least one axis.
        for (int i : ca.panoramas)
          for (int j : g[b].panoramas) {
            const double de = std::abs(ds.panoramas[i].easting - ds.panoramas[j].easting);
            const double dn = std::abs(ds.panoramas[i].northing - ds.panoramas[j].northing);
            EXPECT_GE(std::max(de, dn), 30.0);
            const double ce = std::abs(std::floor(ds.panoramas[i].easting / 15) - std::floor(ds.panoramas[j].easting / 15));
            const double cn = std::abs(std::floor(ds.panoramas[i].northing / 15) - std::floor(ds.panoramas[j].northing / 15));
            EXPECT_EQ(std::fmod(ce, 3.0), 0.0);
            EXPECT_EQ(std::fmod(cn, 3.0), 0.0);
          }
      }
    }
  }
  EXPECT_EQ(classes, 35u);
  SamplerOptions o;
  o.places_per_batch = 4;
  eo.iterations_per_group = 2;
  auto sampler = MakeEigenPlacesSampler(ds, eo, o);
  EXPECT_EQ(sampler->NumSubBatches(), 2);
  const auto sbs = sampler->Sample(3);
  ASSERT_EQ(sbs.size(), 2u);
  EXPECT_EQ(sbs[0].source, "sfxl_lateral");
  EXPECT_EQ(sbs[1].source, "sfxl_frontal");
  for (const auto& sb : sbs) {
    ASSERT_EQ(sb.images.size(), 16u);
    for (int p = 0; p < 4; ++p) {
      std::set<std::string> files;
      for (int k = 0; k < 4; ++k) {
        EXPECT_TRUE(sb.images[p * 4 + k].panorama_crop);
        files.insert(sb.images[p * 4 + k].path);
        EXPECT_EQ(sb.labels[p * 4 + k], sb.labels[p * 4]);
      }
      EXPECT_EQ(files.size(), 4u);
    }
  }
}

TEST(EigenPlaces, ReadsSfxlFileNames) {
  const std::string root = testing::TempDir() + "/sf_xl";
  const std::string name =
      "@0549804.92@4180345.27@10@S@37.76747@-122.43349@a_b-c@0@247.72@-1.5@@@@@201311@@.jpg";
  WriteImage(root + "/raw/train/panoramas/" + name, 64, 8);
  const SfxlPanorama p = ParseSfxlName(root + "/raw/train/panoramas/" + name);
  EXPECT_DOUBLE_EQ(p.easting, 549804.92);
  EXPECT_DOUBLE_EQ(p.northing, 4180345.27);
  EXPECT_DOUBLE_EQ(p.heading_deg, 247.72);
  EigenPlacesOptions eo;
  eo.min_images_per_class = 1;
  EigenPlacesDataset ds = LoadSfxlEigenPlaces(root, eo);
  EXPECT_EQ(ds.panoramas.size(), 1u);
  // A one-image class: its principal axes are the identity's (the full 2 x 2 U of an all-zero
  // matrix), so the focal points lie focal_distance_m north and west of the image.
  int num_classes = 0;
  for (const auto& group : ds.groups) {
    for (const EigenPlacesClass& cls : group) {
      ++num_classes;
      EXPECT_DOUBLE_EQ(cls.focal_lateral[0], 549804.92);
      EXPECT_DOUBLE_EQ(cls.focal_lateral[1], 4180345.27 + eo.focal_distance_m);
      EXPECT_DOUBLE_EQ(cls.focal_frontal[0], 549804.92 - eo.focal_distance_m);
      EXPECT_DOUBLE_EQ(cls.focal_frontal[1], 4180345.27);
    }
  }
  EXPECT_EQ(num_classes, 1);
  EXPECT_THROW(ParseSfxlName("/x/not@an@sfxl.jpg"), FormatError);
}

// Validation sets and recall@N: tests/eval/vpr_recall_test.cc (megaloc/eval, shared with vpr_eval).

// ------------------------------------------------------------------------------------------------
// RandAugment

TEST(RandAugment, OpsAndDeterminism) {
  RandAugmentOptions o;
  const int w = 32, h = 24;
  std::vector<uint8_t> base(w * h * 3);
  for (size_t i = 0; i < base.size(); ++i) base[i] = static_cast<uint8_t>((i * 37) % 256);
  // Posterize at bin 9/31 keeps 7 bits; Solarize threshold 178.5.
  auto img = base;
  ApplyAugmentOp(AugmentOp::kPosterize, 1, o, w, h, &img);
  for (size_t i = 0; i < img.size(); ++i) EXPECT_EQ(img[i], base[i] & 0xFE);
  img = base;
  ApplyAugmentOp(AugmentOp::kSolarize, 1, o, w, h, &img);
  for (size_t i = 0; i < img.size(); ++i) EXPECT_EQ(img[i], base[i] >= 179 ? 255 - base[i] : base[i]);
  img = base;
  ApplyAugmentOp(AugmentOp::kBrightness, -1, o, w, h, &img);  // factor 0.73
  EXPECT_EQ(img[5], static_cast<uint8_t>(std::round(base[5] * 0.73)));
  // Translate by int(150/331*32*0.3) = 4 px: column 4 of the output = column 0 of the input.
  img = base;
  ApplyAugmentOp(AugmentOp::kTranslateX, 1, o, w, h, &img);
  EXPECT_EQ(img[(3 * w + 4) * 3], base[(3 * w + 0) * 3]);
  EXPECT_EQ(img[(3 * w + 0) * 3], 0);
  for (int op = 0; op < kNumAugmentOps; ++op) {
    img = base;
    ApplyAugmentOp(static_cast<AugmentOp>(op), -1, o, w, h, &img);
    EXPECT_EQ(img.size(), base.size());
  }
  // Same seed -> same tensor; different seed -> different.
  const std::string path = testing::TempDir() + "/aug.png";
  cv::Mat m(40, 50, CV_8UC3);
  cv::randu(m, 0, 255);
  ASSERT_TRUE(cv::imwrite(path, m));
  ImageRef ref;
  ref.path = path;
  EXPECT_EQ(LoadTrainingImage(ref, 28, o, 5), LoadTrainingImage(ref, 28, o, 5));
  EXPECT_NE(LoadTrainingImage(ref, 28, o, 5), LoadTrainingImage(ref, 28, o, 6));
  ref.path = testing::TempDir() + "/missing.jpg";
  EXPECT_THROW(LoadTrainingImage(ref, 28, o, 5), ImageError);
}

}  // namespace
}  // namespace megaloc
