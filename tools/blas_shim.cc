// sgemm_ exported from the executable (ENABLE_EXPORTS) so that LibTorch's BLAS calls resolve here
// first: they go to oneDNN's dnnl_sgemm (already a LibTorch dependency), which runs on the same
// OpenMP pool as LibTorch instead of OpenBLAS's own pthreads (docs/performance.md).
// MEGALOC_BLAS=system forwards to the next sgemm_ (the system libblas.so.3) for A/B runs.

#include <dlfcn.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

extern "C" {

int dnnl_sgemm(char transa, char transb, int64_t m, int64_t n, int64_t k, float alpha,
               const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
               int64_t ldc);

using SgemmFn = void (*)(const char*, const char*, const int*, const int*, const int*,
                         const float*, const float*, const int*, const float*, const int*,
                         const float*, float*, const int*);

static bool UseSystemBlas() {
  static const bool system = [] {
    const char* env = std::getenv("MEGALOC_BLAS");
    return env != nullptr && std::strcmp(env, "system") == 0;
  }();
  return system;
}

// Column-major C = alpha op(A) op(B) + beta C is row-major C^T = alpha op(B)^T op(A)^T + beta C^T.
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
            const float* beta, float* c, const int* ldc) {
  if (UseSystemBlas()) {
    static const SgemmFn next = reinterpret_cast<SgemmFn>(dlsym(RTLD_NEXT, "sgemm_"));
    next(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  auto op = [](char t) { return (t == 'N' || t == 'n') ? 'N' : 'T'; };
  dnnl_sgemm(op(*transb), op(*transa), *n, *m, *k, *alpha, b, *ldb, a, *lda, *beta, c, *ldc);
}

}  // extern "C"

namespace megaloc {
// Referenced by the bench so that the object file is linked.
const char* BlasShimName() { return UseSystemBlas() ? "system libblas.so.3" : "oneDNN dnnl_sgemm"; }
}  // namespace megaloc
