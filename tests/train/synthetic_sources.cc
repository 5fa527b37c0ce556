#include "tests/train/synthetic_sources.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>

#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "megaloc/train/datasets.h"

namespace megaloc {
namespace train_testing {

namespace fs = std::filesystem;

void WriteImage(const std::string& path, int w, int h, int value) {
  fs::create_directories(fs::path(path).parent_path());
  cv::Mat img(h, w, CV_8UC3, cv::Scalar(value, 255 - value, (value * 7) % 256));
  ASSERT_TRUE(cv::imwrite(path, img)) << path;
}

void WriteText(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

std::string MakeGsv(const std::string& root, int places_per_city) {
  const std::vector<std::pair<std::string, std::string>> cities = {{"Boston", "Boston"},
                                                                   {"PRS", "PRS"}};
  for (const auto& [city, id] : cities) {
    std::string csv = "place_id,year,month,northdeg,city_id,lat,lon,panoid\n";
    for (int p = 0; p < places_per_city; ++p) {
      const int n = 3 + p % 4;  // 3..6 images; places with 3 are dropped
      for (int k = 0; k < n; ++k) {
        char name[256];
        // panoid with '_' and '-' (split with maxsplit 7 must keep it whole).
        std::snprintf(name, sizeof(name), "%s_%07d_%04d_%02d_%03d_42.3%d_-71.0%d_pa_no-%d%d.jpg",
                      id.c_str(), p, 2010 + k, 1 + k, 10 * k, p, k, p, k);
        WriteImage(root + "/Images/" + id + "/" + name, 8, 8, p * 10 + k);
        csv += std::to_string(p) + "," + std::to_string(2010 + k) + ",1,0," + id + ",42.3,-71.0,x\n";
      }
    }
    WriteText(root + "/Dataframes/" + city + ".csv", csv);
  }
  return root;
}

// City with `num_places` well-separated sites (100 m apart) of 6 images each within ~6 m; every
// site is one unique_cluster; one panorama per city is marked pano=True.
void MakeMslsCity(const std::string& root, const std::string& city, double offset, int num_places) {
  for (const std::string sub : {"query", "database"}) {
    const std::string dir = root + "/train_val/" + city + "/" + sub;
    std::string raw = ",key,lon,lat,ca,captured_at,pano\n";
    std::string post = ",key,easting,northing,night,control_panel,view_direction,unique_cluster\n";
    int row = 0;
    for (int p = 0; p < num_places; ++p) {
      for (int k = 0; k < 3; ++k) {
        const std::string key = city + "_" + sub + "_" + std::to_string(p) + "_" + std::to_string(k);
        const bool pano = (p == 0 && k == 0 && sub == "query");
        raw += std::to_string(row) + "," + key + ",0,0,0,0," + (pano ? "True" : "False") + "\n";
        const double e = offset + 100.0 * p + 2.0 * k + (sub == "query" ? 0.5 : 0.0);
        const double n = 5000.0 + 3.0 * (k % 2);
        char buf[256];
        std::snprintf(buf, sizeof(buf), "%d,%s,%.3f,%.3f,False,False,Forward,%d\n", row, key.c_str(), e, n,
                      p);
        post += buf;
        WriteImage(dir + "/images/" + key + ".jpg", 8, 8, p * 13 + k);
        ++row;
      }
    }
    WriteText(dir + "/raw.csv", raw);
    WriteText(dir + "/postprocessed.csv", post);
    WriteText(dir + "/seq_info.csv", ",key,sequence_key,frame_number\n");
  }
}

// Model with 6 images: images 0..3 observe points 0..99 (100 % overlap), image 4 observes points
// 100..199 and 0 (1 shared with each of 0..3), image 5 observes nothing valid.
void MakeColmapModel(const std::string& dir, const std::vector<std::string>& names) {
  fs::create_directories(dir);
  ColmapCamera cam;
  cam.camera_id = 1;
  cam.model_id = 1;  // PINHOLE
  cam.width = 64;
  cam.height = 48;
  cam.params = {50, 50, 32, 24};
  WriteColmapCamerasBinary(dir + "/cameras.bin", {cam});
  std::vector<ColmapImage> images(6);
  std::vector<std::vector<uint64_t>> obs(6);
  for (int i = 0; i < 6; ++i) {
    images[i].image_id = i + 1;
    images[i].qvec = {1, 0, 0, 0};
    images[i].camera_id = 1;
    images[i].name = names[i];
  }
  for (int i = 0; i < 4; ++i)
    for (uint64_t p = 0; p < 100; ++p) obs[i].push_back(p);
  for (uint64_t p = 100; p < 200; ++p) obs[4].push_back(p);
  obs[4].push_back(0);
  obs[5] = {std::numeric_limits<uint64_t>::max(), std::numeric_limits<uint64_t>::max()};
  WriteColmapImagesBinary(dir + "/images.bin", images, obs);
  std::vector<ColmapPoint3D> points(200);
  std::vector<std::vector<std::pair<uint32_t, uint32_t>>> tracks(200);
  for (uint64_t p = 0; p < 200; ++p) {
    points[p].point3D_id = p;
    for (int i = 0; i < 5; ++i) {
      for (size_t k = 0; k < obs[i].size(); ++k) {
        if (obs[i][k] == p) tracks[p].push_back({static_cast<uint32_t>(i + 1), static_cast<uint32_t>(k)});
      }
    }
  }
  WriteColmapPoints3DBinary(dir + "/points3D.bin", points, tracks);
}


void MakeMegaScenes(const std::string& root) {
  for (const std::string s : {"000/001", "000/002", "001/000"}) {
    std::vector<std::string> names;
    for (int i = 0; i < 6; ++i) names.push_back("commons/Sub/0/pictures/img" + std::to_string(i) + ".jpg");
    MakeColmapModel(root + "/reconstruct/" + s + "/sparses/0", names);
    for (int i = 0; i < 6; ++i) WriteImage(root + "/images/" + s + "/" + names[i], 16, 12, 20 * i + s[2]);
  }
}

const std::vector<double> kScanNetYaws = {0, 29, 31, 58, 5, 14, 0, 3};

void MakeScanNet(const std::string& root) {
  for (const std::string s : {"scene0000_00", "scene0000_01", "scene0001_00", "scene0002_00"}) {
    for (size_t i = 0; i < kScanNetYaws.size(); ++i) {
      const std::string dir = root + "/scans/" + s;
      if (i == 6) {
        WriteText(dir + "/pose/6.txt",
                  "-inf -inf -inf -inf\n-inf -inf -inf -inf\n-inf -inf -inf -inf\n-inf -inf -inf -inf\n");
      } else {
        const double a = kScanNetYaws[i] * M_PI / 180.0;
        char buf[512];
        std::snprintf(buf, sizeof(buf), "%.12f 0 %.12f %.6f\n0 1 0 0\n%.12f 0 %.12f 0\n0 0 0 1\n",
                      std::cos(a), std::sin(a), 2.0 * i, -std::sin(a), std::cos(a));
        WriteText(dir + "/pose/" + std::to_string(i) + ".txt", buf);
      }
      WriteImage(dir + "/color/" + std::to_string(i) + ".jpg", 16, 12, static_cast<int>(30 * i) % 256);
    }
  }
}

void MakeSfxl(const std::string& root, int classes, int width, int height) {
  for (int c = 0; c < classes; ++c) {
    // Cells (3c, 0) in 15 m units -> group (0, 0); panoramas along a street (east).
    for (int k = 0; k < 5; ++k) {
      const double e = 549990.0 + 45.0 * c + 1.0 + 2.5 * k;
      const double n = 4180005.0 + 7.0 + 0.1 * k * k;
      char name[256];
      std::snprintf(name, sizeof(name), "@%.2f@%.2f@10@S@37.7@-122.4@pano%d_%d@0@%.2f@0@@@@@201901@@.jpg", e, n,
                    c, k, 30.0 * k);
      WriteImage(root + "/raw/train/panoramas/" + name, width, height, (c * 40 + k * 7) % 256);
    }
  }
}

}  // namespace train_testing
}  // namespace megaloc
