#include "megaloc/util/csv.h"

#include <fstream>

#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/string_utils.h"

namespace megaloc {

int CsvTable::Column(const std::string& name) const {
  for (size_t i = 0; i < header.size(); ++i) {
    if (Trim(header[i]) == name) return static_cast<int>(i);
  }
  MEGALOC_THROW(FormatError, path << ": missing column '" << name << "'");
}

std::vector<std::string> SplitCsvLine(const std::string& line, const CsvOptions& options) {
  std::vector<std::string> fields;
  std::string current;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        current += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        current += c;
      }
    } else if (c == '"' && options.quotes) {
      quoted = true;
    } else if (c == ',') {
      fields.push_back(options.trim ? Trim(current) : current);
      current.clear();
    } else if (c != '\r') {
      current += c;
    }
  }
  fields.push_back(options.trim ? Trim(current) : current);
  return fields;
}

CsvTable ReadCsvFile(const std::string& path, const CsvOptions& options) {
  if (DirectoryExists(path)) MEGALOC_THROW(IoError, path << ": is a directory, expected a CSV file");
  if (!FileExists(path)) MEGALOC_THROW(IoError, path << ": file does not exist");
  std::ifstream file(path);
  if (!file) MEGALOC_THROW(IoError, path << ": cannot open file");
  CsvTable table;
  table.path = path;
  bool have_header = !options.header;
  std::string line;
  int line_number = 0;
  while (std::getline(file, line)) {
    ++line_number;
    const std::string stripped = Trim(line);
    if (stripped.empty()) continue;
    if (options.comments && stripped[0] == '#') continue;
    std::vector<std::string> fields = SplitCsvLine(options.trim ? stripped : line, options);
    if (!have_header) {
      table.header = std::move(fields);
      have_header = true;
      continue;
    }
    if (options.header && fields.size() != table.header.size()) {
      MEGALOC_THROW(FormatError, path << ":" << line_number << ": " << fields.size() << " fields, the header has "
                                      << table.header.size());
    }
    table.rows.push_back(CsvRow{line_number, std::move(fields)});
  }
  if (file.bad()) MEGALOC_THROW(IoError, path << ": read error");
  if (!have_header) MEGALOC_THROW(FormatError, path << ": empty CSV file (no header)");
  return table;
}

}  // namespace megaloc
