// What the CUDA runtime linked into this module can see. Implemented in csrc/cuda/runtime.cu,
// or by csrc/cuda_stubs.cpp when the module was built without CUDA.
#pragma once

#include <string>

namespace moafast::cuda {

struct RuntimeInfo {
  bool compiled;              // CUDA kernels are part of this build
  int runtime_version;        // e.g. 13000; 0 when not compiled
  int driver_version;         // 0 when no driver is present
  int device_count;           // usable devices; 0 on any error
  std::string error;          // why device_count is 0, empty when devices were found
  std::string architectures;  // the architectures the kernels were compiled for
};

RuntimeInfo runtime_info();

}  // namespace moafast::cuda
