#pragma once

// Which images of a collection to process: recursive enumeration of an image root, image-list
// files, and deterministic sharding (docs/cli.md#megaloc-extract).

#include <cstdint>
#include <string>
#include <vector>

namespace megaloc {

// File extensions picked up by ListImages, lower-case, without the dot, matched
// case-insensitively: hloc's jpg, jpeg, png (hloc also globs JPG and PNG; it misses .JPEG, .Png,
// ...) plus bmp, tif, tiff, webp, ppm, pgm, pbm, pnm (formats OpenCV decodes).
std::vector<std::string> DefaultImageExtensions();

// Recursively lists the image files under `image_root` whose extension (case-insensitive) is in
// `extensions`, as paths relative to the root with '/' separators, sorted by bytes (= hloc's
// `sorted()` on POSIX strings) and unique. Follows symbolic links to files and directories (a
// directory reached twice through a cycle is skipped). Hidden files are included, as in hloc.
// A dangling symbolic link with an image extension is listed too (hloc's glob lists it); reading
// it fails for that image alone (ReadRgbImage: "dangling symbolic link").
// Throws IoError if `image_root` is not a readable directory. Names are not validated here (see
// DescriptorFile::CheckName).
std::vector<std::string> ListImages(
    const std::string& image_root,
    const std::vector<std::string>& extensions = DefaultImageExtensions());

// Reads an image-list file as hloc's `parse_image_list`: per line the first whitespace-separated
// token; blank lines and lines whose first non-blank character is '#' are skipped. Order is kept,
// later duplicates are dropped. Every name must be a valid relative name (DescriptorFile::CheckName)
// and an existing file under `image_root` (skipped if `image_root` is empty). Throws IoError
// (unreadable list, missing image or dangling symbolic link: "<list>:<line>: ...") or FormatError
// (invalid name).
std::vector<std::string> ReadImageList(const std::string& list_path,
                                       const std::string& image_root);

// Deterministic sharding for --shard K/N. An image belongs to shard
// 1 + (FNV-1a-64(name bytes) mod N), so its shard depends only on its own name: shards stay
// disjoint and complete, and adding images to a collection never moves existing ones to another
// shard (a resumed/extended run on the same shard skips what it already wrote).
uint64_t ShardHash(const std::string& name);
int ShardOf(const std::string& name, int num_shards);
// The names of shard `shard_index` (1-based) of `num_shards`, in input order.
std::vector<std::string> SelectShard(const std::vector<std::string>& names, int shard_index,
                                     int num_shards);

}  // namespace megaloc
