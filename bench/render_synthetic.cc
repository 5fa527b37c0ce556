// Renders the synthetic SfM scenes of the pair-graph benchmark (bench/pair_graph_sfm.sh):
//
//   render_synthetic loop <image_dir>      video-like sequence with a loop: 18 frames along an arc
//                                          around the scene, then 18 frames back along a lower, closer
//                                          arc (the way back revisits the places of the way out);
//                                          names seq/frame_000.jpg ... seq/frame_035.jpg (one sequence)
//   render_synthetic clusters <image_dir>  unordered set: two clusters of 8 views (8 degrees apart) on
//                                          both sides of the scene joined by 2 bridging views, under
//                                          names whose order says nothing (img_<permutation>.jpg)
//
// Views are 640x480 JPEGs of the default scene of tests/common/synthetic (seed 7); the ground truth
// is written as a COLMAP text model to <image_dir>/../gt.

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "megaloc/util/file_utils.h"
#include "tests/common/synthetic/renderer.h"

namespace synth = megaloc::synthetic;

namespace {

std::vector<synth::SyntheticView> Arc(int num_views, double start, double arc, double radius, double height) {
  synth::SyntheticSceneOptions options;
  options.num_views = num_views;
  options.start_degrees = start;
  options.arc_degrees = arc;
  options.orbit_radius = radius;
  options.camera_height = height;
  return synth::GenerateSyntheticScene(options).views;
}


}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 || (std::string(argv[1]) != "loop" && std::string(argv[1]) != "clusters")) {
    std::cerr << "usage: render_synthetic loop|clusters <image_dir>\n";
    return 2;
  }
  const std::string kind = argv[1];
  const std::string image_dir = argv[2];
  std::vector<synth::SyntheticView> views;
  try {
    if (kind == "loop") {
      views = Arc(18, -150.0, 120.0, 7.0, 2.5);
      std::vector<synth::SyntheticView> back = Arc(18, -150.0, 120.0, 5.5, 1.8);
      std::reverse(back.begin(), back.end());
      views.insert(views.end(), back.begin(), back.end());
      for (size_t i = 0; i < views.size(); ++i) {
        char name[64];
        std::snprintf(name, sizeof(name), "seq/frame_%03zu.jpg", i);
        views[i].name = name;
      }
    } else {
      views = Arc(8, -170.0, 56.0, 7.0, 2.5);
      for (auto& v : Arc(2, -99.0, 14.0, 7.0, 2.5)) views.push_back(v);
      for (auto& v : Arc(8, -70.0, 56.0, 7.0, 2.5)) views.push_back(v);
      std::vector<int> order(views.size());
      std::iota(order.begin(), order.end(), 0);
      std::shuffle(order.begin(), order.end(), std::mt19937(12345));
      for (size_t i = 0; i < views.size(); ++i) {
        char name[64];
        std::snprintf(name, sizeof(name), "img_%03d.jpg", order[i]);
        views[i].name = name;
      }
    }
    synth::WriteImages(views, image_dir);
    synth::WriteColmapTextModel(views, megaloc::JoinPaths(image_dir, "../gt"));
  } catch (const std::exception& error) {
    std::cerr << "ERROR: " << error.what() << "\n";
    return 1;
  }
  std::cout << kind << ": " << views.size() << " views in " << image_dir << "\n";
  return 0;
}
