#include <cuda_runtime.h>

#include <string>

#include "moafast/cuda_runtime_info.h"

namespace moafast::cuda {

RuntimeInfo runtime_info() {
  RuntimeInfo info{true, 0, 0, 0, "", MOAFAST_CUDA_ARCHS};
  cudaRuntimeGetVersion(&info.runtime_version);
  cudaDriverGetVersion(&info.driver_version);
  const cudaError_t status = cudaGetDeviceCount(&info.device_count);
  if (status != cudaSuccess) {
    info.device_count = 0;
    info.error = cudaGetErrorString(status);
    if (info.driver_version == 0)
      info.error = "no CUDA driver is installed (libcuda.so.1 was not found)";
    else if (status == cudaErrorInsufficientDriver)
      info.error += " (the driver supports CUDA " + std::to_string(info.driver_version) +
                    ", older than the CUDA runtime moafast was built with, " + std::to_string(info.runtime_version) +
                    "; update the driver or rebuild moafast with an older CUDA toolkit)";
    cudaGetLastError();  // clear the sticky error so later calls start clean
  } else if (info.device_count == 0) {
    info.error = "no CUDA device found";
  }
  return info;
}

}  // namespace moafast::cuda
