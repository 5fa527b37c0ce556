#pragma once

// Position priors from a COLMAP database, in their own object file: `megaloc pairs
// --pose_priors_database` uses it without the matcher's extraction code (and LibTorch).

#include <cstdint>
#include <string>

#include "megaloc/retrieval/position_priors.h"

namespace megaloc {

// Position priors of the images of a COLMAP database (`pose_priors`, COLMAP >= 3.10, read-only):
// WGS84 rows as ECEF, CARTESIAN and UNDEFINED rows as cartesian metres (as COLMAP's spatial
// matcher reads them). Throws InvalidArgument if the database mixes the two frames; returns no
// priors for a database without the table (`num_rows`, if given, gets the rows read).
PositionPriors ReadColmapPositionPriors(const std::string& database_path, int64_t* num_rows = nullptr);

}  // namespace megaloc
