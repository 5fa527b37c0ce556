// The MegaLoc extraction library (src/megaloc/extraction) as colmap_matcher's descriptor extractor.

#include <algorithm>
#include <sstream>

#include "megaloc/extraction/extraction.h"
#include "megaloc/util/logging.h"
#include "megaloc/colmap/matcher.h"

namespace megaloc {

int64_t ExtractColmapDescriptors(const ColmapMatcherOptions& options, const std::vector<std::string>& names,
                                 const std::string& descriptors_path) {
  if (names.empty()) return 0;
  ExtractionOptions extraction;
  extraction.image_path = options.image_path;
  extraction.output_path = descriptors_path;
  extraction.image_names = names;
  extraction.model = options.model;
  extraction.preprocessing = options.preprocessing;
  extraction.batch_size = options.batch_size;
  extraction.num_workers = options.num_workers;
  extraction.dtype = options.as_half ? DescriptorDtype::kFloat16 : DescriptorDtype::kFloat32;
  const ExtractionStats stats = RunExtraction(extraction);
  if (stats.num_failed > 0 && !options.skip_missing_images) {
    std::ostringstream reasons;
    for (size_t i = 0; i < stats.failures.size() && i < 5; ++i) reasons << "\n  " << stats.failures[i].reason;
    if (stats.failures.size() > 5) reasons << "\n  ... (" << stats.failures.size() - 5 << " more)";
    MEGALOC_THROW(ImageError, stats.num_failed << " database image(s) could not be processed (the "
                                               << stats.num_extracted << " others were written to "
                                               << descriptors_path
                                               << "); fix or remove them, or pass --skip_missing_images 1 to "
                                                  "match without them:"
                                               << reasons.str());
  }
  return static_cast<int64_t>(stats.num_extracted);
}

}  // namespace megaloc
