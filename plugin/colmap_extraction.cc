// The MegaLoc extraction library as the colmap_matcher's descriptor extractor.

#include "megaloc/util/logging.h"
#include "plugin/colmap_matcher.h"

namespace megaloc {

int64_t ExtractColmapDescriptors(const ColmapMatcherOptions& options, const std::vector<std::string>& names,
                                 const std::string& descriptors_path) {
  MEGALOC_THROW(Error, "descriptor extraction is not available in this build yet (" << names.size()
                                                                                   << " image(s) to extract into "
                                                                                   << descriptors_path << ")");
}

}  // namespace megaloc
