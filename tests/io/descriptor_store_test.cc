#include "megaloc/io/descriptor_store.h"

#include <hdf5.h>
#include <signal.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "megaloc/io/hdf5_compat.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "tests/common/testing.h"

namespace megaloc {
namespace {

using ::megaloc::testing::TempDir;

std::vector<float> RandomUnitVector(int dim, int seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> v(dim);
  double norm = 0;
  for (float& x : v) {
    x = normal(rng);
    norm += x * x;
  }
  for (float& x : v) x = static_cast<float>(x / std::sqrt(norm));
  return v;
}

template <typename Fn>
void ExpectThrowWith(Fn fn, const std::string& needle1, const std::string& needle2 = "") {
  try {
    fn();
    ADD_FAILURE() << "no exception; expected one mentioning " << needle1;
  } catch (const IoError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(needle1), std::string::npos) << what;
    if (!needle2.empty()) { EXPECT_NE(what.find(needle2), std::string::npos) << what; }
  }
}

// Every object path and type in the file (via the raw C API).
struct Inventory {
  std::set<std::string> datasets;
  std::set<std::string> groups;
  std::vector<std::string> objects_with_attributes;
};
herr_t InventoryCallback(hid_t obj, const char* name, const hdf5::ObjectInfo* info, void* data) {
  auto* inv = static_cast<Inventory*>(data);
  if (info->type == H5O_TYPE_DATASET) inv->datasets.insert(name);
  if (info->type == H5O_TYPE_GROUP) inv->groups.insert(name);
  if (info->num_attrs > 0) inv->objects_with_attributes.push_back(name);
  return 0;
}
Inventory TakeInventory(hid_t file) {
  Inventory inv;
  EXPECT_GE(hdf5::VisitObjects(file, InventoryCallback, &inv, H5O_INFO_ALL), 0);
  return inv;
}

TEST(DescriptorStore, HlocLayoutFieldByField) {
  const std::string path = JoinPaths(TempDir(), "feats.h5");
  const std::vector<float> a = RandomUnitVector(48, 1);
  const std::vector<float> b = RandomUnitVector(48, 2);
  {
    auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kCreate);
    file->Write("a.jpg", a.data(), 48, 640, 480);
    file->Write("seqA/sub/view_00.jpg", b.data(), 48, 300, 500);
    file->SetAttribute(kAttrModel, "MegaLoc");
    file->SetAttribute(kAttrDtype, "float16");
  }
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  const Inventory inv = TakeInventory(file);
  EXPECT_EQ(inv.datasets, (std::set<std::string>{
                              "a.jpg/global_descriptor", "a.jpg/image_size",
                              "seqA/sub/view_00.jpg/global_descriptor",
                              "seqA/sub/view_00.jpg/image_size"}));
  // '/' makes real nested groups.
  EXPECT_EQ(inv.groups, (std::set<std::string>{".", "a.jpg", "seqA", "seqA/sub",
                                               "seqA/sub/view_00.jpg"}));
  // Attributes only on the root group.
  EXPECT_EQ(inv.objects_with_attributes, std::vector<std::string>{"."});

  for (const std::string name : {"a.jpg", "seqA/sub/view_00.jpg"}) {
    SCOPED_TRACE(name);
    const hid_t dset = H5Dopen2(file, (name + "/global_descriptor").c_str(), H5P_DEFAULT);
    ASSERT_GE(dset, 0);
    const hid_t type = H5Dget_type(dset);
    EXPECT_EQ(H5Tget_class(type), H5T_FLOAT);
    EXPECT_EQ(H5Tget_size(type), 2u);
    EXPECT_EQ(H5Tget_order(type), H5T_ORDER_LE);
    EXPECT_EQ(H5Tget_ebias(type), 15u);
    EXPECT_EQ(H5Tget_precision(type), 16u);
    EXPECT_EQ(H5Tget_offset(type), 0);
    EXPECT_EQ(H5Tget_norm(type), H5T_NORM_IMPLIED);
    size_t spos, epos, esize, mpos, msize;
    ASSERT_GE(H5Tget_fields(type, &spos, &epos, &esize, &mpos, &msize), 0);
    EXPECT_EQ(spos, 15u);
    EXPECT_EQ(epos, 10u);
    EXPECT_EQ(esize, 5u);
    EXPECT_EQ(mpos, 0u);
    EXPECT_EQ(msize, 10u);
    H5T_pad_t lsb, msb;
    H5Tget_pad(type, &lsb, &msb);
    EXPECT_EQ(lsb, H5T_PAD_ZERO);
    EXPECT_EQ(msb, H5T_PAD_ZERO);
    const hid_t space = H5Dget_space(dset);
    hsize_t dims[2], maxdims[2];
    ASSERT_EQ(H5Sget_simple_extent_ndims(space), 1);
    H5Sget_simple_extent_dims(space, dims, maxdims);
    EXPECT_EQ(dims[0], 48u);
    EXPECT_EQ(maxdims[0], 48u);
    const hid_t dcpl = H5Dget_create_plist(dset);
    EXPECT_EQ(H5Pget_layout(dcpl), H5D_CONTIGUOUS);
    EXPECT_EQ(H5Pget_nfilters(dcpl), 0);
    // Raw bits equal the round-to-nearest-even conversion.
    std::vector<uint16_t> bits(48);
    ASSERT_GE(H5Dread(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, bits.data()), 0);
    const std::vector<float>& ref = name == "a.jpg" ? a : b;
    for (int i = 0; i < 48; ++i) EXPECT_EQ(bits[i], FloatToHalf(ref[i]));
    EXPECT_EQ(H5Aget_num_attrs(dset), 0);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Tclose(type);
    H5Dclose(dset);

    const hid_t size_dset = H5Dopen2(file, (name + "/image_size").c_str(), H5P_DEFAULT);
    ASSERT_GE(size_dset, 0);
    const hid_t size_type = H5Dget_type(size_dset);
    EXPECT_GT(H5Tequal(size_type, H5T_STD_I64LE), 0);
    const hid_t size_space = H5Dget_space(size_dset);
    ASSERT_EQ(H5Sget_simple_extent_ndims(size_space), 1);
    H5Sget_simple_extent_dims(size_space, dims, maxdims);
    EXPECT_EQ(dims[0], 2u);
    int64_t size[2];
    ASSERT_GE(H5Dread(size_dset, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, size), 0);
    EXPECT_EQ(size[0], name == "a.jpg" ? 640 : 300);
    EXPECT_EQ(size[1], name == "a.jpg" ? 480 : 500);
    H5Sclose(size_space);
    H5Tclose(size_type);
    H5Dclose(size_dset);
  }
  // Root attributes are variable-length UTF-8 strings (what h5py writes for str values).
  const hid_t attr = H5Aopen(file, kAttrModel, H5P_DEFAULT);
  ASSERT_GE(attr, 0);
  const hid_t attr_type = H5Aget_type(attr);
  EXPECT_EQ(H5Tget_class(attr_type), H5T_STRING);
  EXPECT_GT(H5Tis_variable_str(attr_type), 0);
  EXPECT_EQ(H5Tget_cset(attr_type), H5T_CSET_UTF8);
  H5Tclose(attr_type);
  H5Aclose(attr);
  H5Fclose(file);
}

TEST(DescriptorStore, ReadBackFloat16AndFloat32) {
  const std::string path = JoinPaths(TempDir(), "feats.h5");
  const std::vector<float> a = RandomUnitVector(100, 3);
  {
    auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kCreate);
    file->Write("half.png", a.data(), 100, 10, 20, DescriptorDtype::kFloat16);
    file->Write("dir/single.png", a.data(), 100, 30, 40, DescriptorDtype::kFloat32);
  }
  auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kRead);
  EXPECT_FALSE(file->IsWritable());
  EXPECT_EQ(file->ListNames(), (std::vector<std::string>{"dir/single.png", "half.png"}));
  EXPECT_EQ(file->Dim("half.png"), 100);
  EXPECT_EQ(file->Dtype("half.png"), DescriptorDtype::kFloat16);
  EXPECT_EQ(file->Dtype("dir/single.png"), DescriptorDtype::kFloat32);
  const Eigen::VectorXf half = file->Read("half.png");
  const Eigen::VectorXf single = file->Read("dir/single.png");
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(half[i], HalfToFloat(FloatToHalf(a[i])));
    EXPECT_NEAR(half[i], a[i], std::abs(a[i]) * 1e-3 + 1e-7);
    EXPECT_EQ(single[i], a[i]);
  }
  EXPECT_EQ(file->ImageSize("half.png"), (std::pair<int64_t, int64_t>(10, 20)));
  EXPECT_EQ(file->ImageSize("dir/single.png"), (std::pair<int64_t, int64_t>(30, 40)));

  // Blocks: float and raw half bits; float32 rows are rounded for the half view.
  const std::vector<std::string> names = {"x", "half.png", "dir/single.png"};
  DescriptorBlock block;
  file->ReadBlock(names, 1, 3, &block);
  ASSERT_EQ(block.rows(), 2);
  ASSERT_EQ(block.cols(), 100);
  EXPECT_EQ(Eigen::VectorXf(block.row(0).transpose()), half);
  EXPECT_EQ(Eigen::VectorXf(block.row(1).transpose()), single);
  std::vector<uint16_t> bits;
  int dim = 0;
  file->ReadBlockHalf(names, 1, 3, &bits, &dim);
  ASSERT_EQ(dim, 100);
  ASSERT_EQ(bits.size(), 200u);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(bits[i], FloatToHalf(a[i]));
    EXPECT_EQ(bits[100 + i], FloatToHalf(a[i]));
  }
  file->ReadBlock(names, 2, 2, &block);
  EXPECT_EQ(block.rows(), 0);
  ExpectThrowWith([&] { file->ReadBlock(names, 0, 2, &block); }, "'x'", "no such image");
  // Writing to a read-only file is refused.
  EXPECT_THROW(file->Write("new.jpg", a.data(), 100, 1, 1), InvalidArgument);
}

// ReadBlockLocated: the first pass reads through HDF5 and records where contiguous values lie; later
// passes read those bytes directly and give the same values and the same errors.
TEST(DescriptorStore, LocatedReadsEqualHdf5Reads) {
  const std::string dir = TempDir();
  const std::string path = JoinPaths(dir, "located.h5");
  const int dim = 40;
  std::vector<std::string> names;
  {
    auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kCreate);
    for (int i = 0; i < 6; ++i) {
      names.push_back("img" + std::to_string(i) + ".jpg");
      const std::vector<float> v = RandomUnitVector(dim, 100 + i);
      file->Write(names.back(), v.data(), dim, 4, 3, i % 2 ? DescriptorDtype::kFloat32 : DescriptorDtype::kFloat16);
    }
  }
  // A chunked, compressed dataset (not readable as plain bytes): always through HDF5.
  {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(file, 0);
    const hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    const hsize_t n = dim, chunk = 16;
    H5Pset_chunk(dcpl, 1, &chunk);
    H5Pset_deflate(dcpl, 4);
    const hid_t space = H5Screate_simple(1, &n, nullptr);
    const hid_t dset = H5Dcreate2(file, "zipped.jpg/global_descriptor", H5T_IEEE_F32LE, space, lcpl, dcpl, H5P_DEFAULT);
    ASSERT_GE(dset, 0);
    const std::vector<float> v = RandomUnitVector(dim, 7);
    H5Dwrite(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
    H5Dclose(dset);
    H5Sclose(space);
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    H5Fclose(file);
    names.push_back("zipped.jpg");
  }
  auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kRead);
  DescriptorBlock expected;
  file->ReadBlock(names, 0, names.size(), &expected);
  std::vector<DescriptorFile::Location> locations(names.size());
  for (int pass = 0; pass < 3; ++pass) {
    DescriptorBlock got(static_cast<Eigen::Index>(names.size()), dim);
    // In two calls (rows 0-2 and 3-6), as a streamed search reads blocks.
    file->ReadBlockLocated(names, 0, 3, dim, names[0], &locations, got.data());
    file->ReadBlockLocated(names, 3, names.size(), dim, names[0], &locations, got.row(3).data());
    EXPECT_EQ(got, expected) << "pass " << pass;
  }
  for (size_t i = 0; i + 1 < names.size(); ++i) {
    EXPECT_GE(locations[i].offset, 0) << names[i];
    EXPECT_EQ(locations[i].dim, dim);
    EXPECT_EQ(locations[i].element_size, i % 2 ? 4 : 2);
  }
  EXPECT_EQ(locations.back().offset, DescriptorFile::Location::kThroughHdf5);

  // The bytes are what h5py's reader sees: a NaN written into them is refused on the next pass.
  {
    const int fd = ::open(path.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    const uint16_t nan_half = 0x7e00;
    ASSERT_EQ(::pwrite(fd, &nan_half, 2, locations[2].offset + 2 * 5), 2);
    ::close(fd);
  }
  std::vector<float> rows(names.size() * dim);
  ExpectThrowWith([&] { file->ReadBlockLocated(names, 0, 3, dim, names[0], &locations, rows.data()); },
                  "'img2.jpg'", "NaN or infinite values (first at index 5)");
  // Another expected dimension: the image and the reference are named.
  ExpectThrowWith([&] { file->ReadBlockLocated(names, 1, 2, dim + 1, "ref.jpg", &locations, rows.data()); },
                  "'img1.jpg'", "differs from 41, the dimension of 'ref.jpg'");
  // A file cut short after it was opened: a clear error naming the image, not garbage.
  ASSERT_EQ(::truncate(path.c_str(), locations[4].offset + 10), 0);
  ExpectThrowWith([&] { file->ReadBlockLocated(names, 4, 5, dim, names[0], &locations, rows.data()); },
                  "'img4.jpg'", "truncated or corrupt file");
}

// A file replaced under the reader's path: direct reads are not used (values still from the open file).
TEST(DescriptorStore, LocatedReadsFollowTheOpenFileNotThePath) {
  const std::string dir = TempDir();
  const std::string path = JoinPaths(dir, "first.h5");
  const std::string other = JoinPaths(dir, "second.h5");
  const std::vector<float> a = RandomUnitVector(16, 1), b = RandomUnitVector(16, 2);
  {
    auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kCreate);
    file->Write("x.jpg", a.data(), 16, 1, 1, DescriptorDtype::kFloat32);
  }
  {
    auto file = DescriptorFile::Open(other, DescriptorFile::Mode::kCreate);
    file->Write("x.jpg", b.data(), 16, 1, 1, DescriptorDtype::kFloat32);
  }
  auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kRead);
  ASSERT_EQ(std::rename(other.c_str(), path.c_str()), 0);
  const std::vector<std::string> names = {"x.jpg"};
  std::vector<DescriptorFile::Location> locations(1);
  std::vector<float> row(16);
  for (int pass = 0; pass < 2; ++pass) {
    file->ReadBlockLocated(names, 0, 1, 16, "x.jpg", &locations, row.data());
    EXPECT_EQ(row, a) << "pass " << pass;
  }
}

TEST(DescriptorStore, NamesHasOverwriteDelete) {
  const std::string path = JoinPaths(TempDir(), "feats.h5");
  const std::vector<float> a = RandomUnitVector(16, 4);
  const std::vector<float> b = RandomUnitVector(16, 5);
  auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kAppend);
  EXPECT_TRUE(file->ListNames().empty());
  EXPECT_FALSE(file->Has("a/b/c.jpg"));  // missing parents: no error
  file->Write("z.jpg", a.data(), 16, 1, 1);
  file->Write("a/b/c.jpg", a.data(), 16, 1, 1);
  file->Write("a/b.jpg", a.data(), 16, 1, 1);
  EXPECT_TRUE(file->Has("a/b/c.jpg"));
  EXPECT_FALSE(file->Has("a/b"));  // group without datasets: not a name
  EXPECT_FALSE(file->Has("a"));
  EXPECT_FALSE(file->Has("a/b/c.jpg/global_descriptor"));
  EXPECT_FALSE(file->Has("../z.jpg"));
  EXPECT_EQ(file->ListNames(), (std::vector<std::string>{"a/b.jpg", "a/b/c.jpg", "z.jpg"}));
  // Overwrite replaces the leaf group; the parents stay.
  file->Write("a/b/c.jpg", b.data(), 16, 7, 8, DescriptorDtype::kFloat32);
  EXPECT_EQ(file->Read("a/b/c.jpg")[3], b[3]);
  EXPECT_EQ(file->ImageSize("a/b/c.jpg").first, 7);
  EXPECT_EQ(file->ListNames().size(), 3u);
  file->Delete("a/b/c.jpg");
  file->Delete("not/there.jpg");  // no-op
  EXPECT_FALSE(file->Has("a/b/c.jpg"));
  EXPECT_EQ(file->ListNames(), (std::vector<std::string>{"a/b.jpg", "z.jpg"}));
  // Invalid names.
  for (const std::string bad : {"", "/abs.jpg", "a//b.jpg", "a/./b.jpg", "../up.jpg", "tail/",
                                "with space.jpg", "tab\t.jpg"}) {
    EXPECT_FALSE(DescriptorFile::CheckName(bad).empty()) << bad;
    EXPECT_THROW(file->Write(bad, a.data(), 16, 1, 1), InvalidArgument) << bad;
  }
  // Reopen in create mode truncates.
  file.reset();
  file = DescriptorFile::Open(path, DescriptorFile::Mode::kCreate);
  EXPECT_TRUE(file->ListNames().empty());
}

TEST(DescriptorStore, Attributes) {
  const std::string path = JoinPaths(TempDir(), "feats.h5");
  {
    auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kCreate);
    EXPECT_FALSE(file->HasAttribute(kAttrPreprocessing));
    file->SetAttribute(kAttrPreprocessing, "resize_max=1024");
    file->SetAttribute(kAttrPreprocessing, "native");  // replace
    file->SetAttribute(kAttrDescriptorDim, "8448");
    ExpectThrowWith([&] { file->GetAttribute("nope"); }, path, "no attribute 'nope'");
  }
  auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kRead);
  EXPECT_EQ(file->GetAttribute(kAttrPreprocessing), "native");
  const auto attributes = file->Attributes();
  EXPECT_EQ(attributes.size(), 2u);
  EXPECT_EQ(attributes.at(kAttrDescriptorDim), "8448");
  EXPECT_TRUE(file->ListNames().empty());  // attributes never show up as names
}

// Files made by other tools: foreign datasets, fixed-length string / integer attributes,
// dimension mismatches and groups without a descriptor.
TEST(DescriptorStore, ForeignContentAndErrors) {
  const std::string path = JoinPaths(TempDir(), "foreign.h5");
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  {
    const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    auto make = [&](const std::string& name, hid_t type, hsize_t n, const void* data) {
      const hid_t space = H5Screate_simple(1, &n, nullptr);
      const hid_t dset = H5Dcreate2(file, name.c_str(), type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
      ASSERT_GE(dset, 0);
      H5Dwrite(dset, type == H5T_IEEE_F32LE ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT64, H5S_ALL, H5S_ALL,
               H5P_DEFAULT, data);
      H5Dclose(dset);
      H5Sclose(space);
    };
    const std::vector<float> v8(8, 0.5f), v9(9, 0.25f);
    const int64_t size[2] = {5, 6};
    make("ok8.jpg/global_descriptor", H5T_IEEE_F32LE, 8, v8.data());
    make("ok8.jpg/image_size", H5T_STD_I64LE, 2, size);
    make("ok9.jpg/global_descriptor", H5T_IEEE_F32LE, 9, v9.data());
    make("nodesc.jpg/keypoints", H5T_IEEE_F32LE, 8, v8.data());
    make("onlydesc.jpg/global_descriptor", H5T_IEEE_F32LE, 8, v8.data());
    const int64_t n = 42;
    const hid_t scalar = H5Screate(H5S_SCALAR);
    const hid_t attr = H5Acreate2(file, "count", H5T_STD_I64LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(attr, H5T_NATIVE_INT64, &n);
    H5Aclose(attr);
    const hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, 5);
    const hid_t sattr = H5Acreate2(file, "fixed", str, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(sattr, str, "hello");
    H5Aclose(sattr);
    H5Tclose(str);
    H5Sclose(scalar);
    H5Pclose(lcpl);
    H5Fclose(file);
  }
  {
    auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kRead);
    // hloc's listing: every dataset's parent.
    EXPECT_EQ(file->ListNames(), (std::vector<std::string>{"nodesc.jpg", "ok8.jpg", "ok9.jpg",
                                                          "onlydesc.jpg"}));
    EXPECT_FALSE(file->Has("nodesc.jpg"));
    ExpectThrowWith([&] { file->Read("nodesc.jpg"); }, path, "'nodesc.jpg': group has no 'global_descriptor'");
    ExpectThrowWith([&] { file->ImageSize("ok9.jpg"); }, "'ok9.jpg'", "image_size");
    EXPECT_EQ(file->GetAttribute("count"), "42");
    EXPECT_EQ(file->GetAttribute("fixed"), "hello");
    DescriptorBlock block;
    const std::vector<std::string> names = {"ok8.jpg", "ok9.jpg"};
    ExpectThrowWith([&] { file->ReadBlock(names, 0, 2, &block); }, "'ok9.jpg'", "dimension 9 differs from 8");
    EXPECT_EQ(file->Read("ok8.jpg")[0], 0.5f);
  }
  // Append mode repairs groups with one of the two datasets only (a crash leftover).
  {
    auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kAppend);
    EXPECT_FALSE(file->Has("onlydesc.jpg"));
    EXPECT_FALSE(file->Has("ok9.jpg"));
    EXPECT_TRUE(file->Has("ok8.jpg"));
    EXPECT_EQ(file->ListNames(), (std::vector<std::string>{"nodesc.jpg", "ok8.jpg"}));
  }
}

TEST(DescriptorStore, BadFilesGiveClearErrors) {
  const std::string dir = TempDir();
  ExpectThrowWith([&] { DescriptorFile::Open(JoinPaths(dir, "missing.h5"), DescriptorFile::Mode::kRead); },
                  "missing.h5", "no such descriptor file");
  WriteFileAtomically(JoinPaths(dir, "text.h5"), "this is not hdf5\n");
  for (auto mode : {DescriptorFile::Mode::kRead, DescriptorFile::Mode::kAppend}) {
    ExpectThrowWith([&] { DescriptorFile::Open(JoinPaths(dir, "text.h5"), mode); }, "text.h5",
                    "not an HDF5 file");
  }
  WriteFileAtomically(JoinPaths(dir, "empty.h5"), "");
  ExpectThrowWith([&] { DescriptorFile::Open(JoinPaths(dir, "empty.h5"), DescriptorFile::Mode::kRead); },
                  "empty.h5", "empty file");
  // Appending to a zero-byte file (nothing to lose) starts a fresh file.
  EXPECT_TRUE(DescriptorFile::Open(JoinPaths(dir, "empty.h5"), DescriptorFile::Mode::kAppend)
                  ->ListNames()
                  .empty());
  EXPECT_TRUE(DescriptorFile::Open(JoinPaths(dir, "empty.h5"), DescriptorFile::Mode::kRead)
                  ->ListNames()
                  .empty());
  ExpectThrowWith([&] { DescriptorFile::Open(dir, DescriptorFile::Mode::kAppend); }, dir, "directory");
  ExpectThrowWith([&] { DescriptorFile::Open(JoinPaths(dir, "no/such/dir/x.h5"), DescriptorFile::Mode::kCreate); },
                  "x.h5", "cannot create");
  // A truncated file: either Open or the first read fails with FormatError, never a crash.
  const std::string good = JoinPaths(dir, "good.h5");
  {
    auto file = DescriptorFile::Open(good, DescriptorFile::Mode::kCreate);
    for (int i = 0; i < 20; ++i) {
      const std::vector<float> v = RandomUnitVector(256, i);
      file->Write("img" + std::to_string(i) + ".jpg", v.data(), 256, 1, 1);
    }
  }
  const std::string content = ReadFileToString(good);
  for (const double fraction : {0.1, 0.5, 0.9}) {
    const std::string truncated = JoinPaths(dir, "truncated.h5");
    WriteFileAtomically(truncated, content.substr(0, static_cast<size_t>(content.size() * fraction)));
    try {
      auto file = DescriptorFile::Open(truncated, DescriptorFile::Mode::kRead);
      for (const std::string& name : file->ListNames()) file->Read(name);
      ADD_FAILURE() << "truncated file at " << fraction << " read without error";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find("truncated.h5"), std::string::npos) << e.what();
    }
  }
}

// A writer killed with SIGKILL at a random moment leaves a readable file holding at least every
// image flushed before the kill, each complete; appending afterwards works.
TEST(DescriptorStore, SurvivesKillDuringWrites) {
  const std::string dir = TempDir();
  const std::vector<float> v = RandomUnitVector(512, 9);
  std::mt19937 rng(7);
  for (int trial = 0; trial < 12; ++trial) {
    const std::string path = JoinPaths(dir, "kill" + std::to_string(trial) + ".h5");
    int pipe_fds[2];
    ASSERT_EQ(pipe(pipe_fds), 0);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(pipe_fds[0]);
      try {
        auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kCreate);
        for (int i = 0;; ++i) {
          file->Write("seq" + std::to_string(i % 7) + "/img" + std::to_string(i) + ".jpg",
                      v.data(), 512, i, 1);
          if (i % 4 == 3) {
            file->Flush();
            const int flushed = i + 1;
            if (write(pipe_fds[1], &flushed, sizeof(flushed)) != sizeof(flushed)) _exit(3);
          }
        }
      } catch (...) {
        _exit(2);
      }
    }
    close(pipe_fds[1]);
    // Let the child flush a random number of batches, then kill it mid-stream.
    const int wait_batches = 1 + static_cast<int>(rng() % 12);
    int flushed = 0;
    for (int i = 0; i < wait_batches; ++i) {
      ASSERT_EQ(read(pipe_fds[0], &flushed, sizeof(flushed)), static_cast<ssize_t>(sizeof(flushed)));
    }
    usleep(rng() % 2000);
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status));
    close(pipe_fds[0]);

    auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kAppend);
    const std::vector<std::string> names = file->ListNames();
    EXPECT_GE(static_cast<int>(names.size()), flushed) << "trial " << trial;
    for (const std::string& name : names) {
      ASSERT_TRUE(file->Has(name)) << name;
      EXPECT_EQ(file->Read(name)[5], HalfToFloat(FloatToHalf(v[5])));
      file->ImageSize(name);
    }
    file->Write("after.jpg", v.data(), 512, 1, 1);
    file->Flush();
    EXPECT_TRUE(file->Has("after.jpg"));
  }
}

}  // namespace
}  // namespace megaloc

namespace megaloc {
namespace {

// A writer killed after its journal is complete but before it was applied: the next open replays
// it (the commit is not lost); an incomplete journal is ignored by readers and discarded by writers.
TEST(DescriptorStore, JournalReplayAndDiscard) {
  const std::string path = JoinPaths(TempDir(), "journal.h5");
  const std::vector<float> a = RandomUnitVector(64, 11);
  const std::vector<float> b = RandomUnitVector(64, 12);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    try {
      auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kCreate);
      for (int i = 0; i < 3; ++i) file->Write("x/" + std::to_string(i) + ".jpg", a.data(), 64, 1, 2);
      file->Flush();
      file->Write("x/1.jpg", b.data(), 64, 3, 4);  // overwrite: rewrites committed metadata
      file->Write("y/new.jpg", b.data(), 64, 5, 6);
      setenv("MEGALOC_TEST_CRASH_AFTER_JOURNAL", "1", 1);
      file->Flush();
    } catch (...) {
    }
    _exit(2);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_TRUE(FileExists(path + ".journal"));
  {
    auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kRead);
    EXPECT_FALSE(FileExists(path + ".journal"));
    EXPECT_EQ(file->ListNames(),
              (std::vector<std::string>{"x/0.jpg", "x/1.jpg", "x/2.jpg", "y/new.jpg"}));
    EXPECT_EQ(file->Read("x/1.jpg")[0], HalfToFloat(FloatToHalf(b[0])));
    EXPECT_EQ(file->ImageSize("x/1.jpg"), (std::pair<int64_t, int64_t>(3, 4)));
    EXPECT_EQ(file->Read("x/0.jpg")[0], HalfToFloat(FloatToHalf(a[0])));
  }
  // An incomplete journal (a kill while writing it).
  const std::string content = ReadFileToString(path);
  WriteFileAtomically(path + ".journal", std::string("MGLJRNL1") + std::string(40, 'x'));
  {
    auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kRead);
    EXPECT_EQ(file->ListNames().size(), 4u);
  }
  EXPECT_TRUE(FileExists(path + ".journal"));  // readers leave it to writers
  {
    auto file = DescriptorFile::Open(path, DescriptorFile::Mode::kAppend);
    EXPECT_EQ(file->ListNames().size(), 4u);
  }
  EXPECT_FALSE(FileExists(path + ".journal"));
  EXPECT_EQ(ReadFileToString(path).size(), content.size());
}

// Only one writer at a time.
TEST(DescriptorStore, SecondWriterIsRefused) {
  const std::string path = JoinPaths(TempDir(), "locked.h5");
  auto writer = DescriptorFile::Open(path, DescriptorFile::Mode::kCreate);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    try {
      DescriptorFile::Open(path, DescriptorFile::Mode::kAppend);
      _exit(0);
    } catch (const FormatError& e) {
      if (std::string(e.what()).find("another process") == std::string::npos) _exit(8);
    } catch (...) {
      _exit(9);
    }
    try {  // nor may it be replaced
      DescriptorFile::Open(path, DescriptorFile::Mode::kCreate);
      _exit(10);
    } catch (const IoError& e) {
      _exit(std::string(e.what()).find("another process") != std::string::npos ? 7 : 11);
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 7);
}

}  // namespace
}  // namespace megaloc

namespace megaloc {
namespace {

hid_t CreateLatestFormatFile(const std::string& path) {
  const hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);  // like h5py libver="latest"
  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  return file;
}

// Files written by hloc (h5py, libver="latest": superblock v3 with "open for writing" flags):
// appending to them, then being killed, leaves a file every HDF5 program still opens; a file left
// with the flags set by another killed writer is still readable and appendable here.
TEST(DescriptorStore, SuperblockV3WriteFlags) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  const std::string dir = TempDir();
  const std::vector<float> v = RandomUnitVector(32, 21);
  const std::string ours = JoinPaths(dir, "v3_ours.h5");
  ASSERT_GE(H5Fclose(CreateLatestFormatFile(ours)), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    try {
      auto file = DescriptorFile::Open(ours, DescriptorFile::Mode::kAppend);
      file->Write("a.jpg", v.data(), 32, 1, 1);
      file->Flush();
      raise(SIGKILL);
    } catch (...) {
    }
    _exit(2);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  // Plain HDF5 (default driver, as h5py) opens it.
  hid_t plain = H5Fopen(ours.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  EXPECT_GE(plain, 0) << "superblock flags reached the disk";
  if (plain >= 0) H5Fclose(plain);
  EXPECT_TRUE(DescriptorFile::Open(ours, DescriptorFile::Mode::kRead)->Has("a.jpg"));

  // Another tool's writer killed with the flags set.
  const std::string theirs = JoinPaths(dir, "v3_theirs.h5");
  ASSERT_GE(H5Fclose(CreateLatestFormatFile(theirs)), 0);
  pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const hid_t file = H5Fopen(theirs.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    H5Fflush(file, H5F_SCOPE_GLOBAL);
    raise(SIGKILL);
    _exit(2);
  }
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  plain = H5Fopen(theirs.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  EXPECT_LT(plain, 0) << "expected HDF5 to refuse the flagged file";
  if (plain >= 0) H5Fclose(plain);
  EXPECT_TRUE(DescriptorFile::Open(theirs, DescriptorFile::Mode::kRead)->ListNames().empty());
  {
    auto file = DescriptorFile::Open(theirs, DescriptorFile::Mode::kAppend);
    file->Write("b.jpg", v.data(), 32, 1, 1);
  }
  plain = H5Fopen(theirs.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  EXPECT_GE(plain, 0);  // closed cleanly by our writer: flags cleared
  if (plain >= 0) H5Fclose(plain);
  EXPECT_TRUE(DescriptorFile::Open(theirs, DescriptorFile::Mode::kRead)->Has("b.jpg"));
}

}  // namespace
}  // namespace megaloc
