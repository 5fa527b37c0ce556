#pragma once

// One RAII guard for bfloat16 autocast, used by inference (MegaLocModel) and training (Trainer).
// LibTorch >= 2.4 takes the device type (`set_autocast_enabled(at::kCPU, ...)`) and deprecates the
// per-device calls of 1.13 (`set_cpu_enabled`, `set_enabled`); which form this LibTorch has is found at
// configure time (MEGALOC_TORCH_HAVE_DEVICE_AUTOCAST, src/cmake/FindDependencies.cmake).
// Internal header (LibTorch): not installed.

#include <ATen/autocast_mode.h>

namespace megaloc {

class Bf16AutocastScope {
 public:
  // Enables bf16 autocast on `device_type` (at::kCPU or at::kCUDA) for the scope if `enable`.
  Bf16AutocastScope(bool enable, at::DeviceType device_type) : enabled_(enable), device_type_(device_type) {
    if (enabled_) Set(true);
  }
  ~Bf16AutocastScope() {
    if (enabled_) {
      Set(false);
      at::autocast::clear_cache();
    }
  }
  Bf16AutocastScope(const Bf16AutocastScope&) = delete;
  Bf16AutocastScope& operator=(const Bf16AutocastScope&) = delete;

 private:
  void Set(bool on) const {
#ifdef MEGALOC_TORCH_HAVE_DEVICE_AUTOCAST
    if (on) at::autocast::set_autocast_dtype(device_type_, at::kBFloat16);
    at::autocast::set_autocast_enabled(device_type_, on);
#else
    if (device_type_ == at::kCUDA) {
      if (on) at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
      at::autocast::set_enabled(on);
    } else {
      if (on) at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
      at::autocast::set_cpu_enabled(on);
    }
#endif
  }

  bool enabled_;
  at::DeviceType device_type_;
};

}  // namespace megaloc
