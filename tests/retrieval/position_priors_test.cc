// Position priors: WGS84 -> ECEF against known coordinates and hand-computed distances, the CSV
// reader, EXIF GPS through Exiv2 (when built with it).

#include "megaloc/retrieval/position_priors.h"

#include <cmath>
#include <string>

#include <gtest/gtest.h>

#ifdef MEGALOC_EXIV2_ENABLED
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include <exiv2/exiv2.hpp>
#pragma GCC diagnostic pop
#endif

#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "tests/common/testing.h"

namespace megaloc {
namespace {

constexpr double kA = 6378137.0;           // WGS84 semi-major axis
constexpr double kB = 6356752.314245179;   // WGS84 semi-minor axis a (1 - f)

std::string WriteText(const std::string& name, const std::string& text) {
  const std::string path = JoinPaths(testing::TempDir(), name);
  WriteFileAtomically(path, text);
  return path;
}

TEST(PositionPriors, Wgs84ToEcefKnownPoints) {
  const Eigen::Vector3d origin = Wgs84ToEcef(0.0, 0.0, 0.0);
  EXPECT_NEAR(origin.x(), kA, 1e-6);
  EXPECT_NEAR(origin.y(), 0.0, 1e-6);
  EXPECT_NEAR(origin.z(), 0.0, 1e-6);
  const Eigen::Vector3d east = Wgs84ToEcef(0.0, 90.0, 0.0);
  EXPECT_NEAR(east.x(), 0.0, 1e-6);
  EXPECT_NEAR(east.y(), kA, 1e-6);
  const Eigen::Vector3d pole = Wgs84ToEcef(90.0, 0.0, 0.0);
  EXPECT_NEAR(pole.z(), kB, 1e-6);
  EXPECT_NEAR(pole.head<2>().norm(), 0.0, 1e-6);
  const Eigen::Vector3d up = Wgs84ToEcef(0.0, 180.0, 1000.0);
  EXPECT_NEAR(up.x(), -(kA + 1000.0), 1e-6);
}

TEST(PositionPriors, DistancesAgainstHandComputedValues) {
  PositionPriors priors;
  priors.Set("eq0", Wgs84ToEcef(0.0, 0.0, 0.0), PositionFrame::kEcef);
  priors.Set("eq90", Wgs84ToEcef(0.0, 90.0, 0.0), PositionFrame::kEcef);
  priors.Set("north", Wgs84ToEcef(0.001, 0.0, 0.0), PositionFrame::kEcef);
  priors.Set("alps", Wgs84ToEcef(45.0, 7.0, 500.0), PositionFrame::kEcef);
  priors.Set("alps_up", Wgs84ToEcef(45.0, 7.0, 600.0), PositionFrame::kEcef);
  // Chord between two equator points 90 degrees apart: a * sqrt(2).
  EXPECT_NEAR(PriorDistance(priors, "eq0", "eq90"), kA * std::sqrt(2.0), 1e-6);
  // 0.001 degree of latitude at the equator: meridian radius a (1 - e^2) = 6335439.327 m times
  // 1.745329e-5 rad = 110.574 m.
  EXPECT_NEAR(PriorDistance(priors, "eq0", "north"), 110.574, 1e-3);
  // Straight up: the altitude difference.
  EXPECT_NEAR(PriorDistance(priors, "alps", "alps_up"), 100.0, 1e-6);
  EXPECT_LT(PriorDistance(priors, "alps", "missing"), 0.0);
  // ENU: 100 m up, 0 east/north.
  const Eigen::Vector3d enu = EcefToEnu(*priors.Find("alps_up"), 45.0, 7.0, 500.0);
  EXPECT_NEAR(enu.x(), 0.0, 1e-6);
  EXPECT_NEAR(enu.y(), 0.0, 1e-6);
  EXPECT_NEAR(enu.z(), 100.0, 1e-6);
  // 0.001 degree north at the equator in ENU: north ~ 110.574 m.
  EXPECT_NEAR(EcefToEnu(*priors.Find("north"), 0.0, 0.0, 0.0).y(), 110.574, 1e-3);
  // Frames cannot be mixed.
  EXPECT_THROW(priors.Set("xyz", Eigen::Vector3d(1, 2, 3), PositionFrame::kCartesian), InvalidArgument);
}

TEST(PositionPriors, ReadsCsv) {
  const std::string wgs = WriteText("wgs.csv",
                                    "# GPS\nname,lat,lon,alt\n"
                                    "a.jpg, 0.0, 0.0, 0\n"
                                    "b.jpg,0.001,0,0\n\n");
  const PositionPriors p = ReadPositionPriorsCsv(wgs);
  EXPECT_EQ(p.Size(), 2u);
  EXPECT_EQ(p.Frame(), PositionFrame::kEcef);
  EXPECT_NEAR(PriorDistance(p, "a.jpg", "b.jpg"), 110.574, 1e-3);

  const std::string xyz = WriteText("xyz.csv", "a.jpg,0,0,0\nb.jpg,3,4,12\n");
  const PositionPriors c = ReadPositionPriorsCsv(xyz);
  EXPECT_EQ(c.Frame(), PositionFrame::kCartesian);
  EXPECT_DOUBLE_EQ(PriorDistance(c, "a.jpg", "b.jpg"), 13.0);
  // Forced WGS84 without a header.
  const PositionPriors forced = ReadPositionPriorsCsv(xyz, CsvCoordinates::kWgs84);
  EXPECT_EQ(forced.Frame(), PositionFrame::kEcef);

  EXPECT_THROW(ReadPositionPriorsCsv(WriteText("bad1.csv", "a.jpg,1,2\n")), FormatError);
  EXPECT_THROW(ReadPositionPriorsCsv(WriteText("bad2.csv", "a.jpg,1,x,2\n")), FormatError);
  EXPECT_THROW(ReadPositionPriorsCsv(WriteText("bad3.csv", "name,lat,lon,alt\na.jpg,91,0,0\n")),
               FormatError);
  EXPECT_THROW(ReadPositionPriorsCsv(WriteText("bad4.csv", "a.jpg,1,2,3\na.jpg,1,2,3\n")), FormatError);
  EXPECT_THROW(ReadPositionPriorsCsv(WriteText("bad5.csv", "name,lat,lon,alt\n"), CsvCoordinates::kCartesian),
               FormatError);
  EXPECT_THROW(ReadPositionPriorsCsv(WriteText("bad6.csv", "name,u,v,w\n")), FormatError);
  EXPECT_THROW(ReadPositionPriorsCsv(JoinPaths(testing::TempDir(), "missing.csv")), IoError);
  try {
    ReadPositionPriorsCsv(WriteText("bad7.csv", "a.jpg,0,0,0\nb.jpg,1,2\n"));
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("bad7.csv:2:"), std::string::npos) << e.what();
  }
}

TEST(PositionPriors, ExifGps) {
  if (!IsExifGpsAvailable()) {
    EXPECT_THROW(ReadExifPositionPriors(testing::TempDir(), {"x.jpg"}), std::runtime_error);
    GTEST_SKIP() << "built without Exiv2";
  }
#ifdef MEGALOC_EXIV2_ENABLED
  const std::string dir = testing::TempDir();
  const std::string source = testing::TestDataPath("sample_images/place_a_view1.jpg");
  WriteFileAtomically(JoinPaths(dir, "gps.jpg"), ReadFileToString(source));
  WriteFileAtomically(JoinPaths(dir, "plain.jpg"), ReadFileToString(source));
  WriteFileAtomically(JoinPaths(dir, "broken.jpg"), "not an image");
  {
    // 45 deg 30' 0" S, 7 deg 15' 36" W, 120.5 m: -45.5, -7.26 degrees.
    auto image = Exiv2::ImageFactory::open(JoinPaths(dir, "gps.jpg"));
    image->readMetadata();
    Exiv2::ExifData& exif = image->exifData();
    exif["Exif.GPSInfo.GPSLatitudeRef"] = "S";
    exif["Exif.GPSInfo.GPSLatitude"] = "45/1 30/1 0/1";
    exif["Exif.GPSInfo.GPSLongitudeRef"] = "W";
    exif["Exif.GPSInfo.GPSLongitude"] = "7/1 15/1 3600/100";
    exif["Exif.GPSInfo.GPSAltitude"] = "241/2";
    image->writeMetadata();
  }
  ExifGpsStats stats;
  const PositionPriors priors =
      ReadExifPositionPriors(dir, {"gps.jpg", "plain.jpg", "broken.jpg"}, &stats);
  EXPECT_EQ(stats.num_images, 3);
  EXPECT_EQ(stats.num_with_gps, 1);
  EXPECT_EQ(stats.unreadable, std::vector<std::string>{"broken.jpg"});
  ASSERT_NE(priors.Find("gps.jpg"), nullptr);
  EXPECT_EQ(priors.Find("plain.jpg"), nullptr);
  const Eigen::Vector3d expected = Wgs84ToEcef(-45.5, -7.26, 120.5);
  EXPECT_NEAR((*priors.Find("gps.jpg") - expected).norm(), 0.0, 1e-6);
#endif
}

}  // namespace
}  // namespace megaloc
