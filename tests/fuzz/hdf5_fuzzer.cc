// libFuzzer harness: the HDF5 descriptor reader (src/megaloc/io/descriptor_store.cc), read-only.
// The input is written to a temporary .h5 file, opened with DescriptorFile::Open(kRead), and every
// name, attribute, descriptor (one by one, as a float block and as a half block) and image size is
// read. libhdf5 itself is not instrumented: findings inside it show as plain SEGV/abort stacks.

#include <string>
#include <vector>

#include "megaloc/io/descriptor_store.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = megaloc::fuzz::WriteInput(data, size, ".h5");
  megaloc::fuzz::ExpectCleanError(path, [&] {
    auto file = megaloc::DescriptorFile::Open(path, megaloc::DescriptorFile::Mode::kRead);
    file->Attributes();
    file->ListNames();
    const std::vector<std::string> names = file->ListDescriptorNames();
    for (const std::string& name : names) {
      file->Has(name);
      file->Dim(name);
      file->Dtype(name);
      file->Read(name);
      file->ImageSize(name);
    }
    megaloc::DescriptorBlock block;
    file->ReadBlock(names, 0, names.size(), &block);
    std::vector<uint16_t> halves;
    int dim = 0;
    file->ReadBlockHalf(names, 0, names.size(), &halves, &dim);
  });
  return 0;
}
