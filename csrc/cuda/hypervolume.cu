// Hypervolume of many small sets on CUDA: one thread per set, running the same small-set code as the CPU
// (moafast/hv_small_sets.h). Larger sets go through the host (see moafast/ops/hypervolume.py).
// Compiled-only so far: no GPU has run it; tests/test_hypervolume_cuda.py and bench/gpu_check.sh will.
#include <cuda_runtime.h>

#include <stdexcept>

#include "cuda/device_guard.cuh"
#include "moafast/hv_small_sets.h"
#include "moafast/hypervolume.h"

namespace moafast::cuda {
namespace {

constexpr int kThreads = 128;

__global__ void __launch_bounds__(kThreads) small_sets_kernel(HypervolumeArgs args) {
  const int64_t set = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (set < args.batch) hv_small::one_set<hv_small::kSweepMaxObjectives>(args, set);
}

}  // namespace

void hypervolume_small_sets(const HypervolumeArgs& args, int device, void* stream) {
  if (!hv_small::fits(args.n, args.d, hv_small::kSweepMaxObjectives))
    throw std::invalid_argument("hypervolume on CUDA takes sets of at most 16 points in 2 or 3 objectives");
  if (args.batch == 0) return;
  DeviceGuard guard(device);
  const int64_t blocks = (args.batch + kThreads - 1) / kThreads;
  small_sets_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(args);
  check(cudaGetLastError(), "hypervolume small-set kernel launch");
}

}  // namespace moafast::cuda
