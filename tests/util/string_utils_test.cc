#include "megaloc/util/string_utils.h"

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "megaloc/util/csv.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "tests/common/testing.h"

namespace megaloc {
namespace {

// As Python's float(): whitespace around is fine, hex floats and nan(...) are not.
TEST(StringUtils, ParseDoubleIsPythonFloat) {
  double v = 0.0;
  EXPECT_TRUE(ParseDouble("1.5", &v));
  EXPECT_EQ(v, 1.5);
  EXPECT_TRUE(ParseDouble("  -2e3 \t", &v));
  EXPECT_EQ(v, -2000.0);
  EXPECT_TRUE(ParseDouble("+.5", &v));
  EXPECT_EQ(v, 0.5);
  EXPECT_TRUE(ParseDouble("inf", &v));
  EXPECT_TRUE(std::isinf(v));
  EXPECT_TRUE(ParseDouble("nan", &v));
  EXPECT_TRUE(std::isnan(v));
  EXPECT_TRUE(ParseDouble("1e999", &v));  // float('1e999') == inf
  EXPECT_TRUE(std::isinf(v));
  for (const char* bad : {"", " ", "0x1p3", "nan(1)", "1.5.2", "1,5", "--1", "1e", "abc", "1 2"}) {
    EXPECT_FALSE(ParseDouble(bad, &v)) << bad;
  }
  EXPECT_TRUE(ParseFiniteDouble(" 3.25", &v));
  EXPECT_EQ(v, 3.25);
  for (const char* bad : {"inf", "-inf", "nan", "1e999", "0x10"}) EXPECT_FALSE(ParseFiniteDouble(bad, &v)) << bad;
}

TEST(StringUtils, ParseInt64) {
  int64_t v = 0;
  EXPECT_TRUE(ParseInt64("42", &v));
  EXPECT_EQ(v, 42);
  EXPECT_TRUE(ParseInt64(" +7 ", &v));
  EXPECT_EQ(v, 7);
  EXPECT_TRUE(ParseInt64("-9223372036854775808", &v));
  EXPECT_EQ(v, std::numeric_limits<int64_t>::min());
  for (const char* bad : {"", "+", "+-1", "1.0", "9223372036854775808", "0x10", "1e3", "12a"}) {
    EXPECT_FALSE(ParseInt64(bad, &v)) << bad;
  }
}

TEST(Csv, HeaderQuotesAndFieldCounts) {
  const std::string path = JoinPaths(testing::TempDir(), "table.csv");
  WriteFileAtomically(path, "key,easting,note\r\n\"a,1\",12.5,\"say \"\"hi\"\"\"\n\nb,3,\n");
  const CsvTable table = ReadCsvFile(path);
  EXPECT_EQ(table.header, (std::vector<std::string>{"key", "easting", "note"}));
  ASSERT_EQ(table.rows.size(), 2u);
  EXPECT_EQ(table.rows[0].fields, (std::vector<std::string>{"a,1", "12.5", "say \"hi\""}));
  EXPECT_EQ(table.rows[1].line, 4);
  EXPECT_EQ(table.Column("easting"), 1);
  EXPECT_THROW(table.Column("northing"), FormatError);
  WriteFileAtomically(path, "a,b\n1,2,3\n");
  try {
    ReadCsvFile(path);
    FAIL() << "no error";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(path + ":2: 3 fields, the header has 2"), std::string::npos) << e.what();
  }
  WriteFileAtomically(path, "");
  EXPECT_THROW(ReadCsvFile(path), FormatError);
  EXPECT_THROW(ReadCsvFile(JoinPaths(testing::TempDir(), "missing.csv")), IoError);
}

// scantools' read_csv: comment lines, stripped fields, no quoting, rows of any length.
TEST(Csv, CaptureStyle) {
  const std::string path = JoinPaths(testing::TempDir(), "images.txt");
  WriteFileAtomically(path, "# timestamp, sensor_id, image_path\n  0 , cam , \"a.jpg\"\n\n1,cam\n");
  CsvOptions options;
  options.header = false;
  options.comments = true;
  options.quotes = false;
  options.trim = true;
  const CsvTable table = ReadCsvFile(path, options);
  ASSERT_EQ(table.rows.size(), 2u);
  EXPECT_EQ(table.rows[0].line, 2);
  EXPECT_EQ(table.rows[0].fields, (std::vector<std::string>{"0", "cam", "\"a.jpg\""}));
  EXPECT_EQ(table.rows[1].fields, (std::vector<std::string>{"1", "cam"}));
}

}  // namespace
}  // namespace megaloc
