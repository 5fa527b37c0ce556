#pragma once

// Tiny synthetic datasets in each training source's real on-disk layout (train tests only).

#include <string>
#include <vector>

namespace megaloc {
namespace train_testing {

// A small solid-colour image (PNG/JPEG by extension); creates parent folders.
void WriteImage(const std::string& path, int w = 16, int h = 12, int value = 100);
void WriteText(const std::string& path, const std::string& text);

// GSV-Cities: cities Boston and PRS, `places_per_city` places with 3..6 images (places with 3 are
// dropped by the >= 4 rule). Returns `root`.
std::string MakeGsv(const std::string& root, int places_per_city);

// MSLS city with `num_places` sites 100 m apart, 6 images each (3 query + 3 database) within ~6 m,
// one unique_cluster per site; the first query image of the city is a panorama (pano=True).
void MakeMslsCity(const std::string& root, const std::string& city, double offset, int num_places);

// COLMAP binary model (cameras.bin, images.bin, points3D.bin) with 6 images named `names`:
// images 0..3 see points 0..99, image 4 sees points 100..199 and point 0, image 5 sees none.
void MakeColmapModel(const std::string& dir, const std::vector<std::string>& names);

// MegaScenes with scenes 000/001, 000/002, 001/000 (one model each, images on disk).
void MakeMegaScenes(const std::string& root);

// ScanNet export: scans scene0000_00, scene0000_01, scene0001_00, scene0002_00 with 8 frames
// (yaw 0, 29, 31, 58, 5, 14, invalid, 3 degrees; x = 2 m * index).
void MakeScanNet(const std::string& root);
extern const std::vector<double> kScanNetYaws;

// SF-XL raw panoramas (width x height) for `classes` classes of 5 panoramas, all in EigenPlaces
// group 0 (cells 3 apart).
void MakeSfxl(const std::string& root, int classes, int width = 64, int height = 16);

}  // namespace train_testing
}  // namespace megaloc
