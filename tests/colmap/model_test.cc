// COLMAP model files (src/megaloc/colmap/model.h): camera-model table, binary and text readers and
// writers, errors naming file and line.
#include "megaloc/colmap/model.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "tests/common/testing.h"

namespace megaloc {
namespace {


TEST(ColmapCameraModels, TableMatchesColmap) {
  // Ids, names and parameter counts of COLMAP's camera_models.h.
  const std::vector<std::pair<std::string, int>> expected = {
      {"SIMPLE_PINHOLE", 3}, {"PINHOLE", 4},         {"SIMPLE_RADIAL", 4},  {"RADIAL", 5},
      {"OPENCV", 8},         {"OPENCV_FISHEYE", 8},  {"FULL_OPENCV", 12},   {"FOV", 5},
      {"SIMPLE_RADIAL_FISHEYE", 4}, {"RADIAL_FISHEYE", 5}, {"THIN_PRISM_FISHEYE", 12},
      {"RAD_TAN_THIN_PRISM_FISHEYE", 16}};
  ASSERT_EQ(ColmapCameraModels().size(), expected.size());
  for (size_t id = 0; id < expected.size(); ++id) {
    const ColmapCameraModel* by_name = FindColmapCameraModel(expected[id].first);
    ASSERT_NE(by_name, nullptr) << expected[id].first;
    EXPECT_EQ(by_name->id, static_cast<int>(id));
    EXPECT_EQ(by_name->num_params, expected[id].second);
    EXPECT_EQ(FindColmapCameraModel(static_cast<int>(id)), by_name);
  }
  EXPECT_EQ(FindColmapCameraModel("pinhole"), nullptr);
  EXPECT_EQ(FindColmapCameraModel(-1), nullptr);
  EXPECT_EQ(FindColmapCameraModel(99), nullptr);
}

TEST(ColmapModel, BinaryRoundTrip) {
  const std::string dir = testing::TempDir();
  std::vector<ColmapCamera> cameras(1);
  cameras[0].camera_id = 3;
  cameras[0].model_id = 1;
  cameras[0].width = 640;
  cameras[0].height = 480;
  cameras[0].params = {500, 501, 320, 240};
  std::vector<ColmapImage> images(2);
  images[0].image_id = 1;
  images[0].qvec = {1, 0, 0, 0};
  images[0].tvec = {0.5, -1, 2};
  images[0].camera_id = 3;
  images[0].name = "seq/a.jpg";
  images[1] = images[0];
  images[1].image_id = 2;
  images[1].name = "b.jpg";
  const std::vector<std::vector<uint64_t>> observations = {{7, kColmapInvalidPoint3DId, 7, 2}, {}};
  WriteColmapCamerasBinary(JoinPaths(dir, "cameras.bin"), cameras);
  WriteColmapImagesBinary(JoinPaths(dir, "images.bin"), images, observations);
  std::vector<ColmapPoint3D> points(2);
  points[0].point3D_id = 2;
  points[1].point3D_id = 7;
  points[1].xyz = {1, 2, 3};
  WriteColmapPoints3DBinary(JoinPaths(dir, "points3D.bin"), points, {{{1, 3}}, {{1, 0}, {1, 2}}});

  const auto cameras_read = ReadColmapCamerasBinary(JoinPaths(dir, "cameras.bin"));
  ASSERT_EQ(cameras_read.size(), 1u);
  EXPECT_EQ(cameras_read[0].camera_id, 3u);
  EXPECT_EQ(cameras_read[0].params, cameras[0].params);
  const auto images_read = ReadColmapImagesBinary(JoinPaths(dir, "images.bin"));
  ASSERT_EQ(images_read.size(), 2u);
  EXPECT_EQ(images_read[0].name, "seq/a.jpg");
  EXPECT_EQ(images_read[0].tvec, images[0].tvec);
  EXPECT_EQ(images_read[0].num_points2D, 4u);
  EXPECT_EQ(images_read[0].num_observations, 3u);
  EXPECT_EQ(images_read[0].point3D_ids, (std::vector<uint64_t>{2, 7}));
  EXPECT_EQ(images_read[1].num_points2D, 0u);
  EXPECT_EQ(ReadColmapNumImagesBinary(JoinPaths(dir, "images.bin")), 2u);
  const auto points_read = ReadColmapPoints3DBinary(JoinPaths(dir, "points3D.bin"));
  ASSERT_EQ(points_read.size(), 2u);
  EXPECT_EQ(points_read[1].track_length, 2u);
  EXPECT_EQ(points_read[1].xyz, points[1].xyz);

  // Truncated files and unknown camera models name the file.
  const std::string truncated = JoinPaths(dir, "truncated.bin");
  WriteFileAtomically(truncated, ReadFileToString(JoinPaths(dir, "images.bin")).substr(0, 30));
  EXPECT_NE(testing::ThrownMessage<FormatError>([&] { ReadColmapImagesBinary(truncated); }).find(truncated),
            std::string::npos);
  WriteFileAtomically(truncated, std::string(3, '\0'));
  EXPECT_THROW(ReadColmapNumImagesBinary(truncated), FormatError);
  EXPECT_THROW(ReadColmapNumImagesBinary(JoinPaths(dir, "missing.bin")), IoError);
  cameras[0].model_id = 42;
  cameras[0].params.clear();
  WriteColmapCamerasBinary(truncated, cameras);
  EXPECT_NE(testing::ThrownMessage<FormatError>([&] { ReadColmapCamerasBinary(truncated); }).find("camera model id 42"),
            std::string::npos);
}

TEST(ColmapModel, TextWriterOutputIsReadBack) {
  const std::string dir = JoinPaths(testing::TempDir(), "model");
  std::vector<ColmapCamera> cameras(1);
  cameras[0].camera_id = 1;
  cameras[0].model_id = FindColmapCameraModel("PINHOLE")->id;
  cameras[0].width = 100;
  cameras[0].height = 80;
  cameras[0].params = {0.1, 1.0 / 3.0, 50, 40};
  std::vector<ColmapImage> images(1);
  images[0].image_id = 4;
  images[0].qvec = {0.5, 0.5, 0.5, 0.5};
  images[0].tvec = {1.0 / 7.0, 2, 3};
  images[0].camera_id = 1;
  images[0].name = "dir/x.png";
  WriteColmapTextModel(dir, cameras, images);
  const std::string cameras_txt = ReadFileToString(JoinPaths(dir, "cameras.txt"));
  EXPECT_NE(cameras_txt.find("1 PINHOLE 100 80 0.10000000000000001 0.33333333333333331 50 40"), std::string::npos)
      << cameras_txt;
  const auto read = ReadColmapImagesText(JoinPaths(dir, "images.txt"));
  ASSERT_EQ(read.size(), 1u);
  EXPECT_EQ(read[0].image_id, 4u);
  EXPECT_EQ(read[0].name, "dir/x.png");
  EXPECT_EQ(read[0].tvec, images[0].tvec);  // 17 significant digits: exact
  EXPECT_EQ(read[0].num_points2D, 0u);
  EXPECT_TRUE(ReadColmapPoints3DText(JoinPaths(dir, "points3D.txt")).empty());

  images[0].name = "with space.png";
  EXPECT_THROW(WriteColmapTextModel(dir, cameras, images), InvalidArgument);
  images[0].name = "ok.png";
  cameras[0].params.pop_back();
  EXPECT_THROW(WriteColmapTextModel(dir, cameras, images), InvalidArgument);
}

TEST(ColmapModel, TextReadersCountObservationsAndNameLines) {
  const std::string dir = testing::TempDir();
  const std::string images_txt = JoinPaths(dir, "images.txt");
  WriteFileAtomically(images_txt,
                      "# Image list\n"
                      "1 1 0 0 0 0 0 0 1 a.jpg\n"
                      "10.5 20.5 -1 11 12 3 13 14 3\n"
                      "2 1 0 0 0 1 2 3 1 b.jpg\n"
                      "\n");
  const auto images = ReadColmapImagesText(images_txt);
  ASSERT_EQ(images.size(), 2u);
  EXPECT_EQ(images[0].num_points2D, 3u);
  EXPECT_EQ(images[0].num_observations, 2u);
  EXPECT_EQ(images[0].point3D_ids, (std::vector<uint64_t>{3}));
  EXPECT_EQ(images[1].tvec, (std::array<double, 3>{1, 2, 3}));

  WriteFileAtomically(images_txt, "1 1 0 0 0 0 0 0 1 a.jpg\n1 2 -1 4\n");
  std::string what = testing::ThrownMessage<FormatError>([&] { ReadColmapImagesText(images_txt); });
  EXPECT_NE(what.find(images_txt + ":2"), std::string::npos) << what;
  WriteFileAtomically(images_txt, "1 1 0 0 0 0x1p3 0 0 1 a.jpg\n\n");
  what = testing::ThrownMessage<FormatError>([&] { ReadColmapImagesText(images_txt); });
  EXPECT_NE(what.find(images_txt + ":1"), std::string::npos) << what;
  WriteFileAtomically(images_txt, "1 1 0 0 0 0 0 0 1 a.jpg\n");  // no POINTS2D line
  EXPECT_THROW(ReadColmapImagesText(images_txt), FormatError);
  EXPECT_THROW(ReadColmapImagesText(JoinPaths(dir, "missing.txt")), IoError);

  const std::string points_txt = JoinPaths(dir, "points3D.txt");
  WriteFileAtomically(points_txt, "# points\n5 1 2 3 255 0 0 0.5 1 0 2 1\n6 0 0 0 1 1 1 0.1\n");
  const auto points = ReadColmapPoints3DText(points_txt);
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(points[0].point3D_id, 5u);
  EXPECT_EQ(points[0].track_length, 2u);
  EXPECT_EQ(points[1].track_length, 0u);
  WriteFileAtomically(points_txt, "5 1 2 3 255 0 0 0.5 1\n");
  EXPECT_THROW(ReadColmapPoints3DText(points_txt), FormatError);
}

}  // namespace
}  // namespace megaloc
