// One-off generator of the bundled sample images (tests/data/sample_images/*.jpg): three synthetic
// "places", each seen from two or three slightly different viewpoints (shifted, zoomed, rotated
// crops of one wide scene with its own lighting noise), so retrieval pairs are meaningful.
//
// Build and run (from the repository root):
//   g++ -O2 -std=c++17 tests/data/sample_images/generate_sample_images.cc \
//       $(pkg-config --cflags --libs opencv4) -o /tmp/gen_samples
//   /tmp/gen_samples tests/data/sample_images
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace {

// A wide (960x480) scene: sky gradient, ground, buildings with window grids, trees, a road.
cv::Mat MakePlace(int place) {
  cv::RNG rng(1000 + place * 7);
  const int width = 960, height = 480;
  cv::Mat scene(height, width, CV_8UC3);
  const cv::Vec3b sky_top(static_cast<uchar>(200 - place * 30), static_cast<uchar>(150 + place * 20), 90);
  const cv::Vec3b sky_bottom(245, 225, static_cast<uchar>(200 - place * 40));
  const int horizon = 260 + place * 20;
  for (int y = 0; y < height; ++y) {
    const double t = std::min(1.0, static_cast<double>(y) / horizon);
    for (int x = 0; x < width; ++x) {
      cv::Vec3b c;
      if (y < horizon) {
        for (int k = 0; k < 3; ++k) c[k] = static_cast<uchar>(sky_top[k] * (1 - t) + sky_bottom[k] * t);
      } else {
        const int g = 60 + ((x / 7 + y / 5) % 9) * 3;
        c = place == 1 ? cv::Vec3b(g / 2, g + 30, g / 2) : cv::Vec3b(g, g + 10, g + 20);
      }
      scene.at<cv::Vec3b>(y, x) = c;
    }
  }
  // Buildings.
  int x = rng.uniform(0, 40);
  while (x < width - 40) {
    const int w = rng.uniform(70, 180);
    const int h = rng.uniform(120, horizon - 20);
    const cv::Scalar wall(rng.uniform(60, 220), rng.uniform(60, 220), rng.uniform(60, 220));
    const cv::Rect building(x, horizon - h, std::min(w, width - x), h);
    cv::rectangle(scene, building, wall, -1);
    cv::rectangle(scene, building, wall * 0.6, 2);
    const int rows = rng.uniform(3, 9), cols = rng.uniform(2, 6);
    const cv::Scalar glass(rng.uniform(20, 90), rng.uniform(40, 120), rng.uniform(60, 160));
    for (int r = 0; r < rows; ++r) {
      for (int c = 0; c < cols; ++c) {
        const int wx = building.x + 8 + c * (building.width - 16) / cols;
        const int wy = building.y + 10 + r * (building.height - 20) / rows;
        cv::rectangle(scene, cv::Rect(wx, wy, std::max(4, (building.width - 16) / cols - 8),
                                      std::max(4, (building.height - 20) / rows - 8)),
                      glass, -1);
      }
    }
    if (rng.uniform(0, 2) == 0) {  // a roof
      std::vector<cv::Point> roof = {{building.x, building.y},
                                     {building.x + building.width / 2, building.y - rng.uniform(20, 60)},
                                     {building.x + building.width, building.y}};
      cv::fillConvexPoly(scene, roof, wall * 0.5);
    }
    x += w + rng.uniform(5, 50);
  }
  // Trees and lamp posts.
  for (int i = 0; i < 6 + place * 3; ++i) {
    const int tx = rng.uniform(10, width - 10);
    const int ty = horizon + rng.uniform(5, 40);
    cv::line(scene, {tx, ty}, {tx, ty - 50}, cv::Scalar(30, 60, 90), 5);
    cv::circle(scene, {tx, ty - 60}, rng.uniform(18, 35), cv::Scalar(30, rng.uniform(90, 160), 40), -1);
  }
  // A road with markings.
  std::vector<cv::Point> road = {{width / 2 - 60, horizon}, {width / 2 + 60, horizon},
                                 {width / 2 + 300, height}, {width / 2 - 300, height}};
  cv::fillConvexPoly(scene, road, cv::Scalar(70, 70, 75));
  for (int y = horizon + 10; y < height; y += 30) {
    cv::line(scene, {width / 2, y}, {width / 2, y + 14}, cv::Scalar(230, 230, 230), 3);
  }
  cv::GaussianBlur(scene, scene, cv::Size(3, 3), 0.8);
  return scene;
}

// A 320x240 view: rotation, zoom and shift of the scene, then per-view lighting and noise.
cv::Mat MakeView(const cv::Mat& scene, double cx, double cy, double zoom, double angle, int seed) {
  const cv::Mat rotation = cv::getRotationMatrix2D(cv::Point2f(static_cast<float>(cx), static_cast<float>(cy)), angle, zoom);
  cv::Mat affine = rotation.clone();
  affine.at<double>(0, 2) += 160 - cx;
  affine.at<double>(1, 2) += 120 - cy;
  cv::Mat view;
  cv::warpAffine(scene, view, affine, cv::Size(320, 240), cv::INTER_LINEAR, cv::BORDER_REFLECT);
  cv::RNG rng(seed);
  view.convertTo(view, -1, rng.uniform(0.85, 1.15), rng.uniform(-15, 15));
  cv::Mat noise(view.size(), CV_16SC3);
  rng.fill(noise, cv::RNG::NORMAL, 0, 4);
  cv::Mat noisy;
  view.convertTo(noisy, CV_16SC3);
  noisy += noise;
  noisy.convertTo(view, CV_8UC3);
  return view;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
    return 1;
  }
  const std::string out = argv[1];
  struct ViewSpec { int place; double cx, cy, zoom, angle; const char* name; };
  const ViewSpec views[] = {
      {0, 420, 250, 1.00, 0.0, "place_a_view1.jpg"},  {0, 470, 240, 1.10, 3.0, "place_a_view2.jpg"},
      {0, 380, 260, 0.95, -2.5, "place_a_view3.jpg"}, {1, 520, 260, 1.00, 0.0, "place_b_view1.jpg"},
      {1, 560, 270, 1.15, -3.0, "place_b_view2.jpg"}, {1, 480, 250, 1.05, 2.0, "place_b_view3.jpg"},
      {2, 300, 300, 1.00, 1.5, "place_c_view1.jpg"},  {2, 350, 290, 1.12, -2.0, "place_c_view2.jpg"},
  };
  const std::vector<cv::Mat> places = {MakePlace(0), MakePlace(1), MakePlace(2)};
  int seed = 1;
  for (const ViewSpec& v : views) {
    const cv::Mat view = MakeView(places[v.place], v.cx, v.cy, v.zoom, v.angle, seed++);
    cv::imwrite(out + "/" + v.name, view, {cv::IMWRITE_JPEG_QUALITY, 88});
  }
  return 0;
}
