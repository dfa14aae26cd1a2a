// Linked only when the module is built without CUDA: every CUDA entry point reports that.
#include <stdexcept>

#include "moafast/cuda_runtime_info.h"
#include "moafast/hypervolume.h"
#include "moafast/logprobs.h"
#include "moafast/tilted_sampling.h"

namespace moafast::cuda {
namespace {
[[noreturn]] void not_compiled() {
  throw std::runtime_error(
      "moafast was built without CUDA kernels (nvcc was not found or MOAFAST_CUDA=OFF); "
      "rebuild with nvcc on PATH and MOAFAST_CUDA=ON: pip install --no-build-isolation -e .");
}
}  // namespace

RuntimeInfo runtime_info() { return RuntimeInfo{false, 0, 0, 0, "built without CUDA kernels", ""}; }
void logprobs_forward(const LogprobsForwardArgs&, int, void*) { not_compiled(); }
void logprobs_backward(const LogprobsBackwardArgs&, int, void*) { not_compiled(); }
void hypervolume_small_sets(const HypervolumeArgs&, int, void*) { not_compiled(); }
void tilted_sampling(const TiltedSamplingArgs&, const TiltedSamplingWorkspace&, int, void*) { not_compiled(); }

}  // namespace moafast::cuda
