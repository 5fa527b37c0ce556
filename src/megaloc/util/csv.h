#pragma once

// One reader for the CSV files of the datasets and benchmarks we read: MSLS / GSV-Cities tables
// (a header row, double-quoted fields as pandas writes them) and LaMAR Capture files (scantools'
// read_csv: '#' comment lines, fields split on ',' and stripped, no quoting).

#include <string>
#include <vector>

namespace megaloc {

struct CsvOptions {
  // The first non-skipped row names the columns (CsvTable::header); every later row must have as
  // many fields. Default: true (pandas.read_csv).
  bool header = true;
  // Lines whose first non-blank character is '#' are skipped (scantools). Default: false.
  bool comments = false;
  // '"' starts a quoted field in which ',' is literal and '""' is one '"'. Default: true.
  bool quotes = true;
  // Fields (and the line) are stripped of surrounding whitespace. Default: false.
  bool trim = false;
};

struct CsvRow {
  int line = 0;  // 1-based line number in the file
  std::vector<std::string> fields;
};

struct CsvTable {
  std::string path;
  std::vector<std::string> header;
  std::vector<CsvRow> rows;

  // Index of a header column (compared after trimming). Throws FormatError naming the file.
  int Column(const std::string& name) const;
};

// Reads `path`; blank lines are skipped. Throws IoError (missing / unreadable file) or FormatError
// (no header, a row with a different field count), naming the file and line.
CsvTable ReadCsvFile(const std::string& path, const CsvOptions& options = CsvOptions());

// Splits one line (no embedded newlines) as ReadCsvFile does; '\r' is dropped.
std::vector<std::string> SplitCsvLine(const std::string& line, const CsvOptions& options = CsvOptions());

}  // namespace megaloc
